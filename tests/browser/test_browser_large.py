"""Large layers in a real JupyterLab page (issue 10): previews, painting what is seen, fetching.

A VGG-style network on 224×224×3 with 64 channels per conv (``tests/large_networks.py``) is
shown in its own notebook and kernel. The page must paint only the maps on their layer's page
and on screen (counted through the overview's paint hooks, docs/widget-spec.md), and the
explanation of a conv neuron, whose 64 input maps the page only holds as previews, must fetch
them and give Python's own `explain_neuron` value within 1e-4.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, REPO, WidgetPage, element_screenshot, write_notebook

pytestmark = pytest.mark.browser

NB = "large.ipynb"
CELL = (
    f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r})\n"
    "from large_networks import vgg, CLASSES, SHAPE\n"
    "from cnn_explainer_widget import CNNExplainer, explain_neuron\n"
    "large = CNNExplainer(model=vgg(), classes=CLASSES, input_shape=SHAPE)\n"
    "large"
)
WAIT_MS = 30_000
TOL = 1e-4

#: Per map neuron of the overview: layer, index, shown (on its page), painted generation.
PAINTED_JS = """(root) => {
  const ov = root.querySelector('.cnnx-overview');
  const out = {gen: Number(ov.dataset.paintGen), paints: Number(ov.dataset.paints || 0), maps: []};
  for (const el of root.querySelectorAll('.cnnx-neuron:is(.cnnx-ov-map, .cnnx-ov-input)')) {
    out.maps.push([el.dataset.layer, Number(el.dataset.index), el.style.display !== 'none',
                   Number(el.dataset.painted || 0)]);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def large(chromium, lab_server):
    write_notebook(lab_server.root / NB, [CELL])
    page = chromium.new_page()
    page.set_viewport_size({"width": 1400, "height": 900})
    wp = WidgetPage(lab_server, page, NB)
    wp.show_widget()
    yield wp
    (ARTIFACTS / "large-console.log").write_text("\n".join(wp.console))
    wp.close()
    page.close()
    for s in lab_server.api("sessions"):
        if s["path"] == NB:
            lab_server.api(f"sessions/{s['id']}", "DELETE")


def _painted(root, gen: int) -> dict[str, set[int]]:
    state = root.evaluate(PAINTED_JS)
    out: dict[str, set[int]] = {}
    for layer, index, _, painted in state["maps"]:
        if painted == gen:
            out.setdefault(layer, set()).add(index)
    return out


def test_only_the_maps_on_screen_are_painted(large):
    root, k = large.root, large.kernel
    assert k.eval_json("'previews' in large._activations")
    state = root.evaluate(PAINTED_JS)
    gen = state["gen"]
    shown = {(la, i) for la, i, on, _ in state["maps"] if on}
    painted = {(la, i) for la, i, _, p in state["maps"] if p == gen}
    assert painted and painted <= shown, sorted(painted - shown)[:5]
    # 64 channels per layer, ten on a page: the other pages were never painted
    assert not {(la, i) for la, i in painted if la.startswith("conv") and i >= 10}
    assert len([m for m in state["maps"] if m[0] == "conv_1"]) == 64
    element_screenshot(large.page, root, ARTIFACTS / "large-overview.png")

    # turning conv_1's page paints the channels it shows (relu_1 and max_pool_1 page with it)
    pager = root.locator('.cnnx-ov-pager[data-layer="conv_1"]')
    pager.locator(".cnnx-ov-page-next").click()
    expect(pager.locator(".cnnx-ov-page-text")).to_have_text(re.compile(r"^10[–-]19/64$"))
    after = root.evaluate(PAINTED_JS)
    now = {(la, i) for la, i, _, p in after["maps"] if p == gen}
    assert {("conv_1", i) for i in range(10, 20)} <= now
    assert {("relu_1", i) for i in range(10, 20)} <= now
    assert after["paints"] - state["paints"] == len(now - painted)  # nothing painted twice
    pager.locator(".cnnx-ov-page-prev").click()

    # scrolled out of sight, a new image paints nothing; scrolled back, what shows is painted
    large.page.evaluate(
        "(root) => { root.closest('.jp-WindowedPanel-outer, .jp-Notebook').scrollTop = 0; "
        "root.closest('.jp-Cell').style.marginTop = '3000px'; }",
        root.element_handle(),
    )
    seq = k.eval_json("large._activations['seq']")
    k.run("large.image = large.image[::-1].copy()")
    expect(root).to_have_attribute("data-seq", str(seq + 1), timeout=WAIT_MS)
    state = root.evaluate(PAINTED_JS)
    assert state["gen"] == gen + 1
    assert not _painted(root, gen + 1), "maps off screen were painted"
    large.page.evaluate(
        "(root) => { root.closest('.jp-Cell').style.marginTop = ''; }", root.element_handle()
    )
    root.scroll_into_view_if_needed()
    large.page.wait_for_function(
        "(root) => root.querySelectorAll('.cnnx-neuron[data-painted=\"' + "
        "root.querySelector('.cnnx-overview').dataset.paintGen + '\"]').length > 0",
        arg=root.element_handle(),
        timeout=WAIT_MS,
    )
    state = root.evaluate(PAINTED_JS)
    painted = {(la, i) for la, i, on, p in state["maps"] if p == state["gen"]}
    assert painted <= {(la, i) for la, i, on, _ in state["maps"] if on}


def test_a_conv_neuron_fetches_its_inputs_and_is_exact(large):
    root, k = large.root, large.kernel
    root.scroll_into_view_if_needed()
    fetched = int(root.get_attribute("data-fetched") or 0)
    root.locator('.cnnx-neuron[data-layer="conv_2"][data-index="5"]').click()
    out = root.locator('.cnnx-detail[data-layer="conv_2"] .cnnx-math-output').first
    expect(out).to_be_visible(timeout=WAIT_MS)
    expect(root).to_have_attribute("data-fetched", str(fetched + 1))
    expect(out).to_have_attribute("data-value", re.compile(r"\S"))
    for _ in range(3):  # the window slides: read position and value together, a few times
        y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
        want = k.eval_json(
            f"float(explain_neuron(large.network, large.activations, 'conv_2', 5, {y}, {x}).value)"
        )
        assert abs(value - want) <= TOL, (y, x, value, want)
        large.page.wait_for_timeout(300)
    heap = large.page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
    print(f"JS heap with the conv_2 view open: {heap / 1e6 if heap else float('nan'):.0f} MB")
    element_screenshot(large.page, root, ARTIFACTS / "large-conv-view.png")
    root.press("Escape")
