"""Users' own networks in a real JupyterLab page ("Your own network").

The three architectures of ``tests/test_own_networks.py`` (a stride-2 SAME net on 48×48 RGB, a
grayscale net with average pooling and no softmax, a deeper and wider net with 16/32 channels and
assorted activations) are each shown by a cell the user runs in the page. The browser must draw
every layer of the payload (wide layers are paged: every channel must be reachable through the
pager), the user's class names and Python's prediction, and the conv math view must give
Python's activation at the shown position, padded borders included.

The widget cell is added below the shared notebook's cells and deleted afterwards, so the rest of
the suite sees the notebook as it was. All waits are on DOM hooks or the kernel.
"""

from __future__ import annotations

import json
import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, REPO, element_screenshot, wait_for

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
#: A new architecture pays its own JAX compile on this 2-core machine.
FIRST_DRAW_MS = 60_000
TOL = 1e-4

#: Conv neurons whose math is checked per architecture: (layer, index, positions from Python).
#: Positions include the padded corners (SAME padding (1, 2) for strided_same's 5×5 stride-2
#: conv; asymmetric ((0, 1), (2, 0)) for deep_wide's conv_2; stride (2, 3) for its conv_4).
CONV_CHECKS = {
    "strided_same": [
        ("conv_1", 2, [(0, 0), (23, 23), (0, 23)]),
        ("conv_2", 11, [(0, 0), (11, 11)]),  # channel 11 is on conv_2's second page
    ],
    "avgpool_gray": [
        ("conv_1", 1, [(0, 0), (29, 29)]),
        ("conv_2", 7, [(0, 0), (14, 14)]),  # SAME padding (1, 1)
    ],
    "deep_wide": [
        ("conv_2", 5, [(0, 0), (22, 23), (0, 23)]),
        ("conv_4", 30, [(0, 0), (5, 3)]),  # channel 30: fourth page of conv_4
    ],
    # A 20×36 input: conv_1's 3×5 kernel, stride (1, 2), SAME padding ((1, 1), (1, 2)).
    "non_square": [
        ("conv_1", 1, [(0, 0), (19, 17), (0, 17)]),
        ("conv_2", 5, [(0, 0), (7, 3)]),
    ],
}

#: Every neuron element of the root, by layer: all indices, and those currently displayed.
NEURONS_JS = """(root) => {
  const out = {};
  for (const el of root.querySelectorAll('.cnnx-neuron[data-layer]')) {
    const layer = el.dataset.layer;
    const entry = out[layer] || (out[layer] = {all: [], shown: []});
    const i = Number(el.dataset.index);
    entry.all.push(i);
    if (getComputedStyle(el).display !== 'none' && el.getBoundingClientRect().width > 0) {
      entry.shown.push(i);
    }
  }
  return out;
}"""

#: Rough overlap check of the overview's column titles and visible neurons (element boxes).
OVERLAPS_JS = """(root) => {
  const boxes = (sel) => [...root.querySelectorAll(sel)]
    .filter(e => getComputedStyle(e).display !== 'none')
    .map(e => { const r = e.getBoundingClientRect();
                return {name: e.textContent || e.getAttribute('aria-label'), l: r.left, r: r.right,
                        t: r.top, b: r.bottom}; });
  const cut = (a, b) => Math.min(a.r, b.r) - Math.max(a.l, b.l) > 1
                      && Math.min(a.b, b.b) - Math.max(a.t, b.t) > 1;
  const titles = boxes('.cnnx-ov-col-name');
  const neurons = boxes('.cnnx-neuron');
  const hits = [];
  titles.forEach((a, i) => titles.slice(i + 1).forEach(b => { if (cut(a, b)) hits.push([a.name, b.name]); }));
  titles.forEach(a => neurons.forEach(b => { if (cut(a, b)) hits.push([a.name, b.name]); }));
  const ov = root.querySelector('.cnnx-overview').getBoundingClientRect();
  const outside = [...titles, ...neurons].filter(b => b.l < ov.left - 1 || b.r > ov.right + 1)
    .map(b => b.name);
  return {hits, outside};
}"""


def _load_builders(k) -> None:
    """Import the three builders of tests/test_own_networks.py into the page's kernel."""
    path = REPO / "tests" / "test_own_networks.py"
    k.run(
        "import importlib.util as _ilu, sys as _sys\n"
        f"_spec = _ilu.spec_from_file_location('cnnx_own_networks', {str(path)!r})\n"
        "_own = _ilu.module_from_spec(_spec); _sys.modules['cnnx_own_networks'] = _own\n"
        "_spec.loader.exec_module(_own)\n"
        "from cnn_explainer_widget import CNNExplainer\n"
    )


class OwnCell:
    """One extra cell below the notebook's own cells, typed and run in the page like a user."""

    def __init__(self, view) -> None:
        self.view = view
        self.page = view.page
        self.cells = view.panel.locator(".jp-Cell")
        self.base = self.cells.count()
        self.index: int | None = None

    @property
    def cell(self):
        assert self.index is not None
        return self.cells.nth(self.index)

    def run(self, code: str) -> None:
        page = self.page
        if self.index is None:
            self.cells.last.locator(".cm-content").click()
            page.keyboard.press("Escape")  # command mode
            page.keyboard.press("b")  # insert a cell below and select it
            expect(self.cells).to_have_count(self.base + 1)
            self.index = self.base
            page.keyboard.press("Enter")  # edit mode in the new cell
        else:
            self.cell.locator(".cm-content").click()
            page.keyboard.press("ControlOrMeta+a")
        page.keyboard.insert_text(code)  # as typed, without the editor's auto-closing
        expect(self.cell.locator(".cm-content")).to_contain_text(code.split("\n")[0])
        page.keyboard.press("ControlOrMeta+Enter")  # run in place: no new cell below

    def delete(self) -> None:
        if self.index is None:
            return
        self.cell.locator(".cm-content").click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("d")
        self.page.keyboard.press("d")
        expect(self.cells).to_have_count(self.base, timeout=WAIT_MS)
        self.index = None


@pytest.fixture(scope="module")
def own_cell(widget):
    """The extra cell (deleted after this module); the builders are imported in the kernel."""
    _load_builders(widget.kernel)
    cell = OwnCell(widget)
    yield cell
    cell.delete()
    # the notebook's first widget is still the suite's shared one
    widget.root.wait_for(state="visible")


def _show(own_cell, arch: str):
    """Run ``own_<arch> = CNNExplainer(model=..., classes=..., input_shape=...)`` in the page."""
    var = f"own_{arch}"
    own_cell.run(
        f"_m, _shape, _classes = _own.{arch}()\n"
        f"{var} = CNNExplainer(model=_m, classes=_classes, input_shape=_shape)\n"
        f"{var}"
    )
    root = own_cell.cell.locator(".cnnx-root[data-ready='1']")
    expect(root).to_have_count(1, timeout=FIRST_DRAW_MS)
    return var, root


def _page_through(root) -> dict[str, set[int]]:
    """Turn every pager through all its pages; return the neuron indices shown per layer."""
    shown: dict[str, set[int]] = {}

    def collect() -> None:
        for layer, entry in root.evaluate(NEURONS_JS).items():
            shown.setdefault(layer, set()).update(entry["shown"])

    collect()
    pagers = root.locator(".cnnx-ov-pager")
    for p in range(pagers.count()):
        pager = pagers.nth(p)
        nxt, prev = pager.locator(".cnnx-ov-page-next"), pager.locator(".cnnx-ov-page-prev")
        expect(prev).to_be_disabled()
        turns = 0
        while nxt.is_enabled():
            text = pager.locator(".cnnx-ov-page-text").inner_text()
            nxt.click()
            expect(pager.locator(".cnnx-ov-page-text")).not_to_have_text(text)
            collect()
            turns += 1
            assert turns < 50, "pager never reaches its last page"
        while prev.is_enabled():  # back to the first page, as the user found it
            prev.click()
        expect(pager.locator(".cnnx-ov-page-text")).to_have_text(re.compile(r"^0[–-]"))
    return shown


def _check_math(k, root, var: str, layer: str, index: int) -> tuple[int, int, float]:
    out = root.locator(f'.cnnx-detail[data-layer="{layer}"] .cnnx-math-output').first
    expect(out).to_be_visible(timeout=WAIT_MS)
    expect(out).to_have_attribute("data-value", re.compile(r"\S"))
    # the window may be sliding: read position and value together
    y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
    expected = k.eval_json(f"float({var}.activations[{layer!r}][{y}, {x}, {index}])")
    assert abs(value - expected) <= TOL, (layer, index, y, x, value, expected)
    return y, x, value


@pytest.mark.parametrize("arch", list(CONV_CHECKS))
def test_own_network_is_drawn_and_explained(widget, own_cell, arch):
    k = widget.kernel
    var, root = _show(own_cell, arch)
    net = k.eval_json(
        f"{{'layers': [[la['name'], la['kind'], la['output_shape']]"
        f" for la in {var}._network['layers']], 'input': {var}._network['input_shape'],"
        f" 'classes': {var}.classes, 'prediction': {var}.prediction,"
        f" 'seq': {var}._activations['seq']}}"
    )
    expect(root).to_have_attribute("data-seq", str(net["seq"]))
    expect(root).to_have_attribute("data-prediction", net["prediction"])

    # every layer of the payload is a column with one neuron element per channel / unit
    expected = {"input": net["input"][2]}
    for name, kind, shape in net["layers"]:
        if kind not in ("flatten", "softmax"):
            expected[name] = shape[-1]
    drawn = root.evaluate(NEURONS_JS)
    assert {layer: sorted(e["all"]) for layer, e in drawn.items()} == {
        layer: list(range(n)) for layer, n in expected.items()
    }
    # wide layers are paged: the pagers name the full count, and paging shows every channel
    for p in root.locator(".cnnx-ov-pager").all():
        layer = p.get_attribute("data-layer")
        expect(p.locator(".cnnx-ov-page-text")).to_have_text(
            re.compile(rf"^0[–-]\d+/{expected[layer]}$")
        )
    shown = _page_through(root)
    missing = {
        layer: sorted(set(range(n)) - shown.get(layer, set()))
        for layer, n in expected.items()
        if set(range(n)) - shown.get(layer, set())
    }
    assert not missing, f"channels never shown on any page: {missing}"

    # the output column names the user's classes, in order
    names = root.locator('.cnnx-neuron[data-layer="output"] .cnnx-ov-class-name')
    expect(names).to_have_text(net["classes"])
    expect(root.locator('.cnnx-neuron[data-layer="output"].cnnx-ov-top')).to_have_attribute(
        "data-index", str(net["classes"].index(net["prediction"]))
    )

    layout = root.evaluate(OVERLAPS_JS)
    element_screenshot(widget.page, root, ARTIFACTS / f"own-{arch}.png")
    assert not layout["hits"], f"overlapping titles/neurons: {layout['hits'][:10]}"
    assert not layout["outside"], f"outside the overview: {layout['outside'][:10]}"

    # a click on a conv neuron opens its math; Python's activation at the shown position
    checks = CONV_CHECKS[arch]
    layer, index, positions = checks[0]
    root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]').click()
    sel = wait_for(lambda: k.eval_json(f"{var}.selected"), 20, what=f"{var}.selected")
    assert (sel["layer"], sel["index"]) == (layer, index), sel
    expect(root).to_have_attribute("data-detail", layer, timeout=WAIT_MS)
    _check_math(k, root, var, layer, index)

    # positions set from Python, padded borders included; then a neuron on a later page
    for layer, index, positions in checks:
        for y, x in positions:
            k.run(
                f"{var}.selected = {json.dumps({'layer': layer, 'index': index, 'y': y, 'x': x})}"
            )
            out = root.locator(f'.cnnx-detail[data-layer="{layer}"] .cnnx-math-output').first
            expect(out).to_have_attribute("data-y", str(y), timeout=WAIT_MS)
            expect(out).to_have_attribute("data-x", str(x), timeout=WAIT_MS)
            _check_math(k, root, var, layer, index)
        selected = root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]')
        expect(selected).to_be_visible()  # its page was turned to it
        expect(selected).to_have_class(re.compile(r"\bcnnx-ov-selected\b"))
    detail = root.locator(".cnnx-detail").first
    widget.page.mouse.move(0, 0)  # no hover pop-up (kernel weights) left over from the clicks
    element_screenshot(widget.page, detail, ARTIFACTS / f"own-{arch}-conv.png")
    k.run(f"{var}.selected = None")
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
