"""Every piece of text in the widget is readable: at least 4.5:1 contrast against what it is drawn
on (computed styles, in JupyterLab Light and Dark; disabled controls are exempt, as in WCAG
1.4.3), at least 11 px, and no two texts overlap, down to a 360 px wide cell (measured text
boxes). Real JupyterLab + Chromium.
"""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, element_screenshot, wait_for
from .test_browser_theme import DARK, LIGHT, contrast, set_theme

pytestmark = pytest.mark.browser

WAIT_MS = 20_000

#: Every visible text node in the widget: its text, its box (clipped by any ancestor that hides
#: overflow), its computed colour and font size, and the background it is drawn on (the colours
#: of the element and its ancestors composited from the nearest opaque one down).
TEXTS_JS = """(root) => {
  // computed colours come as rgb()/rgba() (0-255) or, from color-mix, color(srgb r g b / a) (0-1)
  const rgba = (s) => { const v = (s.match(/[\\d.]+/g) || []).map(Number);
                        const k = s.startsWith('color(') ? 255 : 1;
                        return [(v[0] ?? 0) * k, (v[1] ?? 0) * k, (v[2] ?? 0) * k,
                                v.length > 3 ? v[3] : 1]; };
  const over = (top, under) => { const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]); };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let bg = [255, 255, 255, 1];
    if (!layers.length || layers[layers.length - 1][3] < 1) {
      bg = rgba(getComputedStyle(document.body).backgroundColor);
      if (bg[3] < 1) bg = [255, 255, 255, 1];
    }
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    if (!text) continue;
    const el = n.parentElement;
    const cs = getComputedStyle(el);
    if (cs.visibility !== 'visible' || el.closest('[hidden]') || el.closest('[aria-hidden="true"]')) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    let r = range.getBoundingClientRect();
    let box = {l: r.left, t: r.top, r: r.right, b: r.bottom};
    for (let e = el; e && e !== document.body; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
        const c = e.getBoundingClientRect();
        box = {l: Math.max(box.l, c.left), t: Math.max(box.t, c.top),
               r: Math.min(box.r, c.right), b: Math.min(box.b, c.bottom)};
      }
      if (s.display === 'none') { box = null; break; }
    }
    if (!box || box.r - box.l < 1 || box.b - box.t < 1) continue;
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const color = rgba(cs.color);
    color[3] *= opacity;
    out.push({text: text.slice(0, 40), cls: el.className || el.tagName, box,
              disabled: !!el.closest(':disabled'),
              color, bg: background(el), size: parseFloat(cs.fontSize)});
  }
  return out;
}"""


def _overlaps(texts: list[dict], tol: float = 0.5) -> list[tuple[str, str]]:
    bad = []
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            x = min(a["box"]["r"], b["box"]["r"]) - max(a["box"]["l"], b["box"]["l"])
            y = min(a["box"]["b"], b["box"]["b"]) - max(a["box"]["t"], b["box"]["t"])
            if x > tol and y > tol:
                bad.append((f"{a['cls']}:{a['text']}", f"{b['cls']}:{b['text']}"))
    return bad


def _show_everything(view) -> None:
    """Open what a user can open without a click on a neuron: the hyperparameter explorer with
    an invalid setting (its warning), an error message and an image notice."""
    k, root = view.kernel, view.root
    if root.locator(".cnnx-hyper-panel").is_hidden():
        root.locator(".cnnx-hyper-btn").click()
    panel = root.locator(".cnnx-hyper-panel")
    stride = panel.locator(".cnnx-hyper-param").nth(3).locator("input[type=number]")
    stride.fill("3")
    stride.press("Tab")
    expect(panel.locator(".cnnx-hyper-msg")).to_be_visible(timeout=WAIT_MS)
    k.run(
        "import numpy as _np\n"
        "w.set_image(_np.full((48, 80, 3), 128, _np.uint8), name='grey 80x48')\n"
        "w.error = 'Could not use broken.png: not a readable image'"
    )
    expect(root.locator(".cnnx-image-notice")).to_be_visible(timeout=WAIT_MS)
    expect(root.locator(".cnnx-error")).to_be_visible(timeout=WAIT_MS)


def _restore(view) -> None:
    k, root = view.kernel, view.root
    k.run(
        "from cnn_explainer_widget.images import default_image_path\n"
        "w.set_image(default_image_path('boat_1.jpeg'), name='lifeboat')\nw.error = ''"
    )
    panel = root.locator(".cnnx-hyper-panel")
    if panel.is_visible():
        stride = panel.locator(".cnnx-hyper-param").nth(3).locator("input[type=number]")
        stride.fill("1")
        stride.press("Tab")
        panel.locator(".cnnx-hyper-close").click()


def test_all_text_has_contrast_in_light_and_dark(view):
    root, page = view.root, view.page
    try:
        _show_everything(view)
        for theme in (LIGHT, DARK):
            set_theme(page, theme)
            texts = root.evaluate(TEXTS_JS)
            assert len(texts) > 60, len(texts)  # the overview's titles, legends, classes, …
            low = [
                (t["cls"], t["text"], round(contrast(t["color"], t["bg"]), 2))
                for t in texts
                if contrast(t["color"], t["bg"]) < 4.5 and not t["disabled"]
            ]
            assert not low, (theme, low)
            small = [(t["cls"], t["text"], t["size"]) for t in texts if t["size"] < 11]
            assert not small, (theme, small)
            name = "light" if theme == LIGHT else "dark"
            element_screenshot(page, root, ARTIFACTS / f"legibility-{name}.png")
    finally:
        set_theme(page, LIGHT)
        _restore(view)


def test_no_text_overlaps_down_to_360px(view):
    root, page = view.root, view.page
    host = root.locator("xpath=..")
    try:
        _show_everything(view)
        for width in (360, 480, 700):
            host.evaluate("(el, w) => { el.style.width = w + 'px'; }", width)
            wait_for(
                lambda w=width: abs(root.bounding_box()["width"] - w) < 2,
                10,
                what=f"the widget at {width} px",
            )
            # the overview re-lays out on the next frames; wait until its boxes settle
            wait_for(lambda: root.evaluate(TEXTS_JS) == root.evaluate(TEXTS_JS), 10)
            texts = root.evaluate(TEXTS_JS)
            clash = _overlaps(texts)
            element_screenshot(page, root, ARTIFACTS / f"legibility-{width}px.png")
            assert not clash, (width, clash[:10])
            small = [(t["cls"], t["text"], t["size"]) for t in texts if t["size"] < 11]
            assert not small, (width, small)
            outside = [
                t["text"]
                for t in texts
                if t["box"]["l"] < root.bounding_box()["x"] - 1
                or t["box"]["r"] > root.bounding_box()["x"] + width + 1
            ]
            assert not outside, (width, outside)
    finally:
        host.evaluate("(el) => { el.style.width = ''; }")
        _restore(view)


#: An explanation of each kind, and what opens its formula level (as the elastic tests do).
VIEWS = [
    ("conv_1_1", 2, ".cnnx-el-hit >> nth=-1"),
    ("max_pool_1", 5, ".cnnx-el-hit >> nth=-1"),
    ("output", 6, ".cnnx-el-softmax"),
]


def _check(texts: list[dict], where: str) -> None:
    assert texts, where
    low = [
        (t["cls"], t["text"], round(contrast(t["color"], t["bg"]), 2))
        for t in texts
        if contrast(t["color"], t["bg"]) < 4.5 and not t["disabled"]
    ]
    assert not low, (where, low)
    small = [(t["cls"], t["text"], t["size"]) for t in texts if t["size"] < 11]
    assert not small, (where, small)


@pytest.mark.parametrize(("layer", "index", "opener"), VIEWS, ids=[v[0] for v in VIEWS])
def test_explanation_text_has_contrast_and_size(view, layer, index, opener):
    """The elastic view and its formula card, in light and dark: 4.5:1 and 11 px for all text."""
    k, root, page = view.kernel, view.root, view.page
    root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]').first.click()
    detail = root.locator(f'.cnnx-detail[data-layer="{layer}"]')
    expect(detail).to_be_visible(timeout=WAIT_MS)
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    page.mouse.move(0, 0)
    try:
        _check(detail.evaluate(TEXTS_JS), f"{layer} elastic, light")
        detail.locator(opener).click()
        expect(root).to_have_attribute("data-level", "formula", timeout=WAIT_MS)
        page.mouse.move(0, 0)
        _check(detail.evaluate(TEXTS_JS), f"{layer} formula, light")
        set_theme(page, DARK)
        _check(detail.evaluate(TEXTS_JS), f"{layer} formula, dark")
        element_screenshot(
            page, root, ARTIFACTS / f"legibility-{layer}-formula-dark.png", margin=10
        )
        detail.locator(".cnnx-card-back").click()  # the theme menu took the focus: no Esc
        expect(root).to_have_attribute("data-level", "elastic", timeout=WAIT_MS)
        expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
        _check(detail.evaluate(TEXTS_JS), f"{layer} elastic, dark")
    finally:
        set_theme(page, LIGHT)
        k.run("w.selected = None")
        expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
