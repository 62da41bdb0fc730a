"""The elastic explanation views in a real JupyterLab page (1400×900, file browser open).

For each kind of neuron (conv, activation, pooling, output/softmax, input) a click opens the
explanation *inside* the overview's area: the transition runs (frames are drawn) and settles, the
widget grows by at most a third of its height, the formula card opens from the elastic view and
fits the visible notebook area, its numbers are Python's, and Esc twice returns the overview
exactly as it was (every element's inline style and box, and the pixels). Under reduced motion the
same click settles at once with no animation frame. An own network (16/32 channels, a hidden
dense layer) opens the same way. Screenshots go to tests/artifacts/elastic-*.png.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, element_screenshot
from .test_browser_own_networks import _show, own_cell  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

WAIT_MS = 20_000

#: The overview's own state: every child's inline style and class, each neuron's and title's box
#: (relative to the overview: the toolbar above it may change, e.g. the first-click hint goes).
STATE_JS = """(root) => {
  const ov = root.querySelector('.cnnx-overview');
  const o = ov.getBoundingClientRect();
  const kids = [...ov.children].filter(e => !e.classList.contains('cnnx-ov-tooltip'))
    .map(e => `${e.className}|${e.getAttribute('style') || ''}`);
  const boxes = [...ov.querySelectorAll('.cnnx-neuron, .cnnx-ov-col-title')].map(e => {
    const r = e.getBoundingClientRect();
    if (!r.width) return null;  // not displayed
    return [Math.round(r.x - o.x), Math.round(r.y - o.y), Math.round(r.width), Math.round(r.height)];
  });
  return {kids, boxes, height: Math.round(o.height),
          count: [...ov.querySelectorAll('*')].filter(e => !e.closest('.cnnx-ov-tooltip')).length};
}"""

#: Whether every part of the explanation lies inside the overview's box.
INSIDE_JS = """(root) => {
  const ov = root.querySelector('.cnnx-overview').getBoundingClientRect();
  const bad = [];
  for (const e of root.querySelectorAll(
      '.cnnx-detail .cnnx-el-map, .cnnx-detail .cnnx-el-hit, .cnnx-detail .cnnx-el-mark:not([hidden]),'
      + ' .cnnx-detail .cnnx-el-flatten, .cnnx-detail .cnnx-formula-card, .cnnx-detail .cnnx-el-legend')) {
    const r = e.getBoundingClientRect();
    if (r.left < ov.left - 1 || r.right > ov.right + 1 || r.top < ov.top - 1 || r.bottom > ov.bottom + 1)
      bad.push([e.className, Math.round(r.left), Math.round(r.top), Math.round(r.right), Math.round(r.bottom)]);
  }
  return bad;
}"""

#: (layer, index, kind, Python expression of the value at the shown (y, x), how to open the card)
KINDS = [
    ("conv_1_1", 2, "conv", "w.activations['conv_1_1'][{y}, {x}, 2]", ".cnnx-el-hit >> nth=-1"),
    (
        "relu_1_1",
        2,
        "activation",
        "w.activations['relu_1_1'][{y}, {x}, 2]",
        ".cnnx-el-hit >> nth=-1",
    ),
    ("max_pool_1", 5, "pool", "w.activations['max_pool_1'][{y}, {x}, 5]", ".cnnx-el-hit >> nth=-1"),
    ("output", 6, "output", "w.activations['logits'][6]", ".cnnx-el-softmax"),
    ("input", 0, "input", "w.activations['input'][{y}, {x}, 0]", ".cnnx-el-hit >> nth=0"),
]


def _changed_pixels(a: bytes, b: bytes) -> float:
    """Fraction of 4×4 blocks of two screenshots whose mean colour differs clearly (> 24).

    Block means ignore anti-aliasing (text and edges shift by a sub-pixel when the toolbar above
    the overview changes height) but not a map, label or neuron that moved or changed colour.
    """
    import io

    from PIL import Image, ImageChops

    ia, ib = (Image.open(io.BytesIO(x)).convert("RGB") for x in (a, b))
    if ia.size != ib.size:
        return 1.0
    size = (ia.size[0] // 4, ia.size[1] // 4)
    sa, sb = (im.resize(size, Image.Resampling.BOX) for im in (ia, ib))
    diff = ImageChops.difference(sa, sb).convert("L")
    import numpy as np

    return float((np.asarray(diff) > 24).mean())


def root_height(root) -> float:
    return root.bounding_box()["height"]


def neuron(root, layer: str, index: int):
    return root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]').first


def _visible_notebook_height(page) -> float:
    return page.locator(".jp-NotebookPanel:visible .jp-WindowedPanel-outer").bounding_box()[
        "height"
    ]


@pytest.fixture
def lab_1400x900(view):
    """The suite's page at 1400×900 (JupyterLab's file browser is open), back to its size after."""
    page = view.page
    size = page.viewport_size
    page.set_viewport_size({"width": 1400, "height": 900})
    page.mouse.move(0, 0)
    root = view.root
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    if root.get_attribute("data-hint") == "1":
        # the first click removes the newcomer's hint above the overview (which moves it down a
        # line): do that first, so a test's before/after compare the same page
        neuron(root, "conv_1_1", 0).click()
        page.keyboard.press("Escape")
        expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
        expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.mouse.move(0, 0)
    yield view
    page.set_viewport_size(size)


@pytest.mark.parametrize(
    ("layer", "index", "kind", "expr", "opener"), KINDS, ids=[k[2] for k in KINDS]
)
def test_click_opens_the_elastic_view_in_place_and_esc_restores(
    lab_1400x900, layer, index, kind, expr, opener
):
    view = lab_1400x900
    k, page, root = view.kernel, view.page, view.root
    assert page.locator(".jp-FileBrowser").first.is_visible()  # the file browser is open
    root.scroll_into_view_if_needed()
    overview = root.locator(".cnnx-overview")
    before = root.evaluate(STATE_JS)
    height_before = root_height(root)
    shot_before = overview.screenshot()

    neuron(root, layer, index).click()
    detail = root.locator(f'.cnnx-detail[data-layer="{layer}"]')
    expect(detail).to_have_attribute("data-kind", kind)
    expect(root).to_have_attribute("data-detail", layer)
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    frames = int(root.get_attribute("data-frames"))
    # it ran, it was not a jump (reduced motion draws none; a loaded machine drops frames)
    assert frames >= 2, f"the transition drew {frames} frames"
    # drawn inside the overview's area; the widget did not grow by more than a third
    assert root.evaluate(INSIDE_JS) == []
    opened = root.evaluate(STATE_JS)
    assert root_height(root) <= height_before * 4 / 3, (height_before, root_height(root))
    assert opened["kids"] != before["kids"]  # the overview itself moved
    page.mouse.move(0, 0)
    element_screenshot(page, root, ARTIFACTS / f"elastic-{kind}.png", margin=10)

    # the formula level opens from the elastic view, next to it, inside the visible area
    detail.locator(opener).click()
    expect(root).to_have_attribute("data-level", "formula")
    card = detail.locator(".cnnx-formula-card")
    expect(card).to_be_visible()
    assert root.evaluate(INSIDE_JS) == []
    card_box, ov_box = card.bounding_box(), overview.bounding_box()
    assert card_box["height"] <= ov_box["height"]
    overflow = card.evaluate("e => e.scrollHeight - e.clientHeight")
    assert overflow <= 1, f"the card's content is cut by {overflow}px"  # paged, never scrolled
    assert root_height(root) <= height_before * 4 / 3
    widget_h = root.bounding_box()["height"]
    assert widget_h <= _visible_notebook_height(page), "the explanation needs scrolling"
    page.mouse.move(0, 0)
    element_screenshot(page, root, ARTIFACTS / f"elastic-{kind}-formula.png", margin=10)

    # the numbers shown are the network's own
    out = card.locator(".cnnx-math-output").first
    expect(out).to_have_attribute("data-value", re.compile(r"\S"))
    y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
    expected = k.eval_json(f"float({expr.format(y=y, x=x)})")
    assert abs(value - expected) <= 1e-4, (y, x, value, expected)

    # Esc steps back one level, then to the overview, exactly as it was
    page.keyboard.press("Escape")
    expect(root).to_have_attribute("data-level", "elastic")
    expect(card).to_have_count(0)
    page.keyboard.press("Escape")
    expect(root).to_have_attribute("data-detail", "")
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    assert k.eval_json("w.selected") is None or root.get_attribute("data-detail") == ""
    # focus went back to the neuron that was opened (keyboard users continue from there)
    assert page.evaluate("document.activeElement.dataset.layer") == layer
    page.evaluate("document.activeElement.blur()")
    page.mouse.move(0, 0)
    after = root.evaluate(STATE_JS)
    assert after == before
    shot_after = overview.screenshot()
    changed = _changed_pixels(shot_before, shot_after)
    if changed:
        (ARTIFACTS / f"elastic-{kind}-before.png").write_bytes(shot_before)
        (ARTIFACTS / f"elastic-{kind}-after.png").write_bytes(shot_after)
    # (anti-aliasing may differ by a sub-pixel shift when the toolbar above changed height)
    assert changed < 0.002, (
        f"{changed:.2%} of the overview's pixels changed (elastic-*-before/after)"
    )


def test_softmax_term_and_logit_mark_highlight_each_other(lab_1400x900):
    root, page = lab_1400x900.root, lab_1400x900.page
    neuron(root, "output", 6).click()
    detail = root.locator('.cnnx-detail[data-layer="output"]')
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    detail.locator(".cnnx-el-softmax").click()
    term = detail.locator('.cnnx-soft-den .cnnx-soft-term[data-index="3"]')
    mark = detail.locator('.cnnx-el-mark[data-index="3"]')
    term.hover()
    expect(mark).to_have_class(re.compile(r"\bcnnx-el-mark-hot\b"))
    mark.hover()
    expect(term).to_have_class(re.compile(r"\bcnnx-hot\b"))
    page.mouse.move(0, 0)
    expect(mark).not_to_have_class(re.compile(r"\bcnnx-el-mark-hot\b"))
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)


def test_window_slides_by_itself_and_hover_pauses_it(lab_1400x900):
    root, page = lab_1400x900.root, lab_1400x900.page
    neuron(root, "conv_1_2", 1).click()
    detail = root.locator('.cnnx-detail[data-layer="conv_1_2"]')
    out = detail.locator(".cnnx-el-readout .cnnx-math-output")
    expect(out).to_have_attribute("data-x", re.compile(r"\d"))
    first = out.evaluate("e => +e.dataset.y * 1000 + +e.dataset.x")
    page.wait_for_timeout(400)
    later = out.evaluate("e => +e.dataset.y * 1000 + +e.dataset.x")
    assert later != first, "the window did not move by itself"
    play = detail.locator("button.cnnx-play")
    expect(play).to_have_text(re.compile("Pause"))
    # a full sweep at the default speed takes 10 s: 60×60 positions at 360 a second
    rate = root.evaluate("r => r.querySelector('.cnnx-detail select.cnnx-select').value")
    assert float(rate) <= 10
    # hover pauses and moves the window to the hovered cell
    hit = detail.locator(".cnnx-el-hit").nth(1)  # channel 0's intermediate map
    box = hit.bounding_box()
    page.mouse.move(box["x"] + 0.25 * box["width"], box["y"] + 0.75 * box["height"])
    expect(play).to_have_text(re.compile("Play"))
    expect(out).to_have_attribute("data-y", str(int(0.75 * 60)))  # conv_1_2 maps are 60×60
    expect(out).to_have_attribute("data-x", str(int(0.25 * 60)))
    # the window outline is at least 2 px and on the input, intermediate and output maps
    widths = detail.locator(".cnnx-el-window").evaluate_all(
        "es => es.map(e => parseFloat(getComputedStyle(e).borderTopWidth))"
    )
    assert len(widths) >= 3 and min(widths) >= 2, widths
    # a click on a map opens the numbers; a click on empty space steps back one level at a time
    hit.click()
    expect(root).to_have_attribute("data-level", "formula")
    ov = root.locator(".cnnx-overview").bounding_box()
    empty = (ov["x"] + ov["width"] - 4, ov["y"] + ov["height"] - 4)  # right of the legends
    page.mouse.click(*empty)
    expect(root).to_have_attribute("data-level", "elastic")
    page.mouse.click(*empty)
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    page.mouse.move(0, 0)


def test_reduced_motion_opens_and_closes_without_animation(lab_1400x900):
    root, page = lab_1400x900.root, lab_1400x900.page
    page.emulate_media(reduced_motion="reduce")
    try:
        neuron(root, "conv_2_1", 4).click()
        expect(root).to_have_attribute("data-detail", "conv_2_1")
        # settled in the click's own task: no frame of animation was drawn
        assert root.get_attribute("data-settled") == "1"
        assert root.get_attribute("data-frames") == "0"
        play = root.locator(".cnnx-detail button.cnnx-play")
        expect(play).to_be_disabled()
        assert "reduced motion" in (play.get_attribute("title") or "")
        out = root.locator(".cnnx-detail .cnnx-el-readout .cnnx-math-output")
        x0 = out.get_attribute("data-x")
        page.wait_for_timeout(300)
        assert out.get_attribute("data-x") == x0  # the window does not move by itself
        page.keyboard.press("Escape")
        expect(root).to_have_attribute("data-detail", "")
        assert root.get_attribute("data-frames") == "0"
    finally:
        page.emulate_media(reduced_motion="no-preference")


def test_own_network_opens_elastic_views(lab_1400x900, own_cell):  # noqa: F811
    """deep_wide: 16/32-channel convs (paged input rows), a hidden dense layer, an output."""
    k, page = lab_1400x900.kernel, lab_1400x900.page
    var, root = _show(own_cell, "deep_wide")
    root.scroll_into_view_if_needed()
    layers = k.eval_json(f"[la['name'] for la in {var}._network['layers']]")
    conv = "conv_2"  # reads leaky_relu_1's 16 channels
    assert {conv, "dense_1", "leaky_relu_2", "output"} <= set(layers), layers
    before = root.evaluate(STATE_JS)
    height_before = root_height(root)
    for layer, index in [
        (conv, 5),
        ("dense_1", 3),
        ("leaky_relu_2", 3),
        ("output", 2),
        ("input", 1),
    ]:
        # a plain click, as a user would: on a small cell (dense_1's dots) it must open the
        # explanation, not hit the what-if on/off button (small cells have none)
        neuron(root, layer, index).click()
        expect(root).to_have_attribute("data-detail", layer)
        assert k.eval_json(f"{var}.ablated") == {}, layer
        expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
        assert root.evaluate(INSIDE_JS) == [], layer
        assert root_height(root) <= height_before * 4 / 3
        page.mouse.move(0, 0)
        element_screenshot(page, root, ARTIFACTS / f"elastic-own-{layer}.png", margin=10)
        page.keyboard.press("Escape")
        expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
        expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    # the conv's 16 input channels do not fit one column: its rows are paged
    neuron(root, conv, 5).focus()
    page.keyboard.press("Enter")
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    pager = root.locator(".cnnx-detail .cnnx-el-pager")
    expect(pager).to_contain_text("of 16")
    pager.locator("button").last.click()
    expect(pager).to_contain_text(re.compile(r"\d+–15 of 16"))
    page.keyboard.press("Escape")
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    page.evaluate("document.activeElement.blur()")
    page.mouse.move(0, 0)
    after = root.evaluate(STATE_JS)
    diff = [(a, b) for a, b in zip(before["kids"], after["kids"], strict=False) if a != b]
    diff += [(a, b) for a, b in zip(before["boxes"], after["boxes"], strict=False) if a != b]
    assert after == before, (diff[:5], before["count"], after["count"])
