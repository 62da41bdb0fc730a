"""Networks that are graphs in a real JupyterLab page (issue 10's front end).

The front end's ``graph`` fixture network (`scripts/make_js_fixture.py` ``graph_network``: a
residual block with batch norm, a depthwise convolution with stride and asymmetric padding, a
dilated convolution, a channel concatenation and a global average pool, on a 12×10 input),
built from `Layer` records, is shown by a cell the user runs in the page. The overview must
draw its skip connections as curves that pass no heatmap, a ⊕ where the residual add's inputs
meet, and hovering the add must mark both summands; the add, batch-norm, depthwise, dilated,
concat and global-pool views must open in place, name their kind, have labelled controls,
readable text in light and dark, and show Python's own value. Screenshots (light and dark) are
kept in tests/artifacts/ (``graph-*.png``).
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, REPO, element_screenshot
from .test_browser_legibility import TEXTS_JS, _check
from .test_browser_own_networks import OwnCell
from .test_browser_theme import DARK, LIGHT, set_theme

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
FIRST_DRAW_MS = 60_000
TOL = 1e-4

#: Points along every skip edge that lie inside a visible neuron (2 px inside its box).
SKIP_THROUGH_JS = """(root) => {
  const boxes = [...root.querySelectorAll('.cnnx-overview .cnnx-neuron')]
    .filter(e => getComputedStyle(e).display !== 'none')
    .map(e => ({name: e.getAttribute('aria-label'), r: e.getBoundingClientRect()}));
  const out = {paths: 0, points: 0, through: []};
  for (const p of root.querySelectorAll('.cnnx-ov-edge-skip')) {
    const d = p.getAttribute('d');
    if (!d) continue;
    const m = p.getScreenCTM();
    for (const part of d.split('M').filter(Boolean)) {
      out.paths += 1;
      const sub = document.createElementNS('http://www.w3.org/2000/svg', 'path');
      sub.setAttribute('d', 'M' + part);
      p.parentNode.appendChild(sub);
      const n = sub.getTotalLength();
      for (let s = 0; s <= n; s += 2) {
        const q = sub.getPointAtLength(s).matrixTransform(m);
        out.points += 1;
        for (const b of boxes) {
          if (q.x > b.r.left + 2 && q.x < b.r.right - 2 && q.y > b.r.top + 2 && q.y < b.r.bottom - 2) {
            out.through.push([p.dataset.to, b.name]);
          }
        }
      }
      sub.remove();
    }
  }
  return out;
}"""


#: A two-block residual network on 32×32 RGB built from `Layer` records in the page's kernel:
#: the second block downsamples, its shortcut a 1×1 stride-2 conv reading the first block's
#: output (a conv whose input is a layer further back), 12 channels (paged).
RESNET = """
import numpy as _np
from cnn_explainer_widget import Network as _Network
from cnn_explainer_widget.layers import Layer as _L
def _resnet():
    rng = _np.random.default_rng(3)
    params = {}
    def conv(name, cin, shape, out, k=3, stride=(1, 1), **kw):
        p = k // 2
        params[name] = {"kernel": rng.normal(0, 0.5 / k, (k, k, cin, out[2])).astype(_np.float32),
                        "bias": rng.normal(0, 0.05, out[2]).astype(_np.float32)}
        return _L(name, "conv", shape, out, (k, k), stride, ((p, p), (p, p)) if stride == (1, 1)
                  else ((p - 1 if p else 0, p), (p - 1 if p else 0, p)), **kw)
    def norm(name, shape):
        c = shape[-1]
        params[name] = {"mean": rng.normal(0, 0.2, c).astype(_np.float32),
                        "var": rng.uniform(0.5, 1.5, c).astype(_np.float32),
                        "scale": rng.uniform(0.7, 1.3, c).astype(_np.float32),
                        "bias": rng.normal(0, 0.1, c).astype(_np.float32)}
        return _L(name, "batchnorm", shape, shape, options={"epsilon": 1e-5})
    def relu(name, shape, **kw):
        return _L(name, "activation", shape, shape, function="relu", **kw)
    a, b = (32, 32, 8), (16, 16, 12)
    layers = [
        conv("conv_1", 3, (32, 32, 3), a), norm("bn_1", a), relu("relu_1", a),
        conv("conv_2", 8, a, a), norm("bn_2", a), relu("relu_2", a),
        conv("conv_3", 8, a, a), norm("bn_3", a),
        _L("add_1", "add", a, a, inputs=("bn_3", "relu_1")), relu("relu_3", a),
        conv("conv_4", 8, a, b, stride=(2, 2)), norm("bn_4", b), relu("relu_4", b),
        conv("conv_5", 12, b, b), norm("bn_5", b),
        conv("shortcut", 8, a, b, k=1, stride=(2, 2), inputs=("relu_3",)),
        _L("add_2", "add", b, b, inputs=("bn_5", "shortcut")), relu("relu_5", b),
        _L("gap", "global_pool", b, (12,), function="avg"),
        _L("output", "dense", (12,), (4,)), _L("softmax", "softmax", (4,), (4,)),
    ]
    params["output"] = {"kernel": rng.normal(0, 0.5, (12, 4)).astype(_np.float32),
                        "bias": _np.zeros(4, _np.float32)}
    return _Network(layers, params, (32, 32, 3), ["cat", "dog", "car", "tree"], name="resnet")
"""


@pytest.fixture(scope="module")
def graph_view(widget):
    """``graph_w = CNNExplainer(model=graph_network())`` run in an extra cell of the page."""
    k = widget.kernel
    path = REPO / "scripts" / "make_js_fixture.py"
    k.run(
        "import importlib.util as _ilu\n"
        f"_gspec = _ilu.spec_from_file_location('cnnx_js_fixture', {str(path)!r})\n"
        "_gfx = _ilu.module_from_spec(_gspec); _gspec.loader.exec_module(_gfx)\n"
        "from cnn_explainer_widget import CNNExplainer\n"
    )
    cell = OwnCell(widget)
    cell.run("graph_w = CNNExplainer(model=_gfx.graph_network())\ngraph_w")
    root = cell.cell.locator(".cnnx-root[data-ready='1']")
    expect(root).to_have_count(1, timeout=FIRST_DRAW_MS)
    yield widget, cell, root
    set_theme(widget.page, LIGHT)
    cell.delete()
    widget.root.wait_for(state="visible")


def test_graph_overview_draws_skip_connections_around_the_maps(graph_view):
    view, _, root = graph_view
    page = view.page
    root.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    skips = root.locator(".cnnx-ov-edge-skip")
    targets = {p.get_attribute("data-to") for p in skips.all() if p.get_attribute("d")}
    # add_1 reads relu_1 from three columns back; concat_1 reads depthwise_1 from two back
    assert targets == {"add_1", "concat_1"}, targets
    through = root.evaluate(SKIP_THROUGH_JS)
    assert through["paths"] >= 8 and through["points"] > 200, through
    assert through["through"] == [], through["through"][:5]
    # a ⊕ before every add neuron shown, and hovering one marks both of its summands
    shown = root.locator('.cnnx-neuron[data-layer="add_1"]:visible')
    assert root.locator(".cnnx-ov-merges circle").count() == shown.count() > 0
    root.locator('.cnnx-neuron[data-layer="add_1"][data-index="1"]').hover()
    src = root.evaluate(
        "r => [...r.querySelectorAll('.cnnx-ov-src')].map(e => e.dataset.layer + ':' + e.dataset.index).sort()"
    )
    assert src == ["bn_2:1", "relu_1:1"], src
    page.mouse.move(0, 0)
    # for screen readers, what the edges show: the add's summands in its label
    add = root.locator('.cnnx-neuron[data-layer="add_1"][data-index="1"]')
    assert add.get_attribute("aria-label") == (
        "add_1 neuron 1 (sum of bn_2 neuron 1 + relu_1 neuron 1)"
    )
    # from the keyboard: focus, Enter opens the add's view, Esc goes back to the neuron
    add.focus()
    page.keyboard.press("Enter")
    expect(root.locator('.cnnx-detail[data-layer="add_1"]')).to_have_attribute(
        "data-kind", "add", timeout=WAIT_MS
    )
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    page.keyboard.press("Escape")
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    assert page.evaluate("document.activeElement.dataset.layer") == "add_1"
    page.evaluate("document.activeElement.blur()")
    view.kernel.run("graph_w.selected = None")
    page.mouse.move(0, 0)
    for theme, name in ((LIGHT, "light"), (DARK, "dark")):
        set_theme(page, theme)
        page.mouse.move(0, 0)
        element_screenshot(page, root, ARTIFACTS / f"graph-overview-{name}.png", margin=10)
        _check(root.locator(".cnnx-overview").evaluate(TEXTS_JS), f"graph overview, {name}")
    set_theme(page, LIGHT)


#: (layer, neuron, data-kind, what must be there, Python's value at (y, x) of the shown output).
VIEWS = [
    ("add_1", 1, "add", ".cnnx-add-term", "graph_w.activations['add_1'][{y}, {x}, 1]"),
    ("bn_1", 2, "batchnorm", ".cnnx-bn-folded-out", "graph_w.activations['bn_1'][{y}, {x}, 2]"),
    ("depthwise_1", 5, "conv", ".cnnx-kgrid", "graph_w.activations['depthwise_1'][{y}, {x}, 5]"),
    ("dilated_1", 2, "conv", ".cnnx-kgrid", "graph_w.activations['dilated_1'][{y}, {x}, 2]"),
    ("concat_1", 9, "concat", ".cnnx-concat-src", "graph_w.activations['concat_1'][{y}, {x}, 9]"),
    ("gap", 3, "global_pool", ".cnnx-pool-detail", "graph_w.activations['gap'][3]"),
]


@pytest.mark.parametrize(
    ("layer", "index", "kind", "part", "expr"), VIEWS, ids=[v[0] for v in VIEWS]
)
def test_graph_view_explains_the_neuron(graph_view, layer, index, kind, part, expr):
    view, _, root = graph_view
    k, page = view.kernel, view.page
    root.scroll_into_view_if_needed()
    root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]').click()
    detail = root.locator(f'.cnnx-detail[data-layer="{layer}"]')
    expect(detail).to_have_attribute("data-kind", kind, timeout=WAIT_MS)
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    page.mouse.move(0, 0)
    assert (
        detail.get_attribute("aria-label")
        == f"how {layer} neuron {index} is computed; Esc goes back"
    )
    labels = detail.locator(".cnnx-el-hit").evaluate_all(
        "es => es.map(e => e.getAttribute('aria-label'))"
    )
    assert labels and all(labels), labels
    if layer == "add_1":
        assert any(t.startswith("summand 1: bn_2 neuron 1") for t in labels), labels
        assert any(t.startswith("summand 2: relu_1 neuron 1") for t in labels), labels
    if layer == "depthwise_1":  # 4 groups, 8 outputs: neuron 5 reads input channel 2 only
        assert detail.locator(".cnnx-el-kernel").count() == 1
        assert [t for t in labels if t.startswith("input ")] == [
            "input relu_2 neuron 2; Enter shows the numbers, arrow keys move the window"
        ], labels
    if layer == "dilated_1":  # a 3×3 kernel with dilation 2: nine taps per window, with holes
        assert detail.locator(".cnnx-el-window-dilated").count() == 8  # one per input channel
        assert detail.locator(".cnnx-el-window-dilated").first.locator(".cnnx-el-tap").count() == 9
    _check(detail.evaluate(TEXTS_JS), f"{layer} elastic, light")
    element_screenshot(page, root, ARTIFACTS / f"graph-{layer}-elastic-light.png", margin=10)

    detail.locator(".cnnx-el-hit >> nth=-1").click()
    expect(root).to_have_attribute("data-level", "formula", timeout=WAIT_MS)
    card = detail.locator(".cnnx-formula-card")
    expect(card.locator(part).first).to_be_visible(timeout=WAIT_MS)
    page.mouse.move(0, 0)
    overflow = card.evaluate("e => e.scrollHeight - e.clientHeight")
    assert overflow <= 1, f"the card's content is cut by {overflow}px"
    out = card.locator(".cnnx-math-output")
    expect(out).to_have_count(1)
    expect(out).to_have_attribute("data-value", re.compile(r"\S"))
    y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
    expected = k.eval_json(f"float({expr.format(y=y, x=x)})")
    assert abs(value - expected) <= TOL, (layer, y, x, value, expected)
    if layer == "bn_1":  # the folded a·x + b gives the same value
        folded = float(card.locator(".cnnx-bn-folded-out").get_attribute("data-value"))
        assert abs(folded - expected) <= TOL
    _check(detail.evaluate(TEXTS_JS), f"{layer} formula, light")
    element_screenshot(page, root, ARTIFACTS / f"graph-{layer}-formula-light.png", margin=10)
    try:
        set_theme(page, DARK)
        page.mouse.move(0, 0)
        _check(detail.evaluate(TEXTS_JS), f"{layer} formula, dark")
        element_screenshot(page, root, ARTIFACTS / f"graph-{layer}-formula-dark.png", margin=10)
    finally:
        set_theme(page, LIGHT)
        detail.locator(".cnnx-card-back").click()
        expect(root).to_have_attribute("data-level", "elastic", timeout=WAIT_MS)
        k.run("graph_w.selected = None")
        expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)


def test_residual_network_overview_and_a_shortcut_conv(graph_view):
    """Two residual blocks: nested skip lanes that cross no map, and the 1×1 shortcut conv (it
    reads relu_3, six columns back) explained with relu_3's channels as its inputs."""
    view, cell, _ = graph_view
    k, page = view.kernel, view.page
    k.run(RESNET)
    cell.run("resnet_w = CNNExplainer(model=_resnet())\nresnet_w")
    root = cell.cell.locator(".cnnx-root[data-ready='1']")
    expect(root).to_have_count(1, timeout=FIRST_DRAW_MS)
    root.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    targets = {
        p.get_attribute("data-to")
        for p in root.locator(".cnnx-ov-edge-skip").all()
        if p.get_attribute("d")
    }
    assert targets == {"add_1", "shortcut", "add_2"}, targets
    through = root.evaluate(SKIP_THROUGH_JS)
    assert through["paths"] > 20 and through["through"] == [], through["through"][:5]
    for theme, name in ((LIGHT, "light"), (DARK, "dark")):
        set_theme(page, theme)
        page.mouse.move(0, 0)
        element_screenshot(page, root, ARTIFACTS / f"graph-resnet-overview-{name}.png", margin=10)
    set_theme(page, LIGHT)

    root.locator('.cnnx-neuron[data-layer="shortcut"][data-index="3"]').click()
    detail = root.locator('.cnnx-detail[data-layer="shortcut"]')
    expect(detail).to_have_attribute("data-kind", "conv", timeout=WAIT_MS)
    expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
    labels = detail.locator(".cnnx-el-hit").evaluate_all(
        "es => es.map(e => e.getAttribute('aria-label'))"
    )
    inputs = [t for t in labels if t.startswith("input ")]
    assert inputs and all(t.startswith("input relu_3 neuron") for t in inputs), labels
    page.mouse.move(0, 0)
    element_screenshot(page, root, ARTIFACTS / "graph-resnet-shortcut-elastic.png", margin=10)
    detail.locator(".cnnx-el-hit >> nth=-1").click()
    out = detail.locator(".cnnx-formula-card .cnnx-math-output")
    expect(out).to_have_count(1, timeout=WAIT_MS)
    y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
    expected = k.eval_json(f"float(resnet_w.activations['shortcut'][{y}, {x}, 3])")
    assert abs(value - expected) <= TOL, (y, x, value, expected)
    k.run("resnet_w.selected = None")
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)


#: A user's own residual network, a plain `nnx.Module` (not built from records): the widget
#: reads it by tracing. Its batch norm has running statistics of its own, so normalising
#: changes the values.
TRACED = """
import jax as _jax, jax.numpy as _jnp, numpy as _np
from flax import nnx as _nnx
class Block(_nnx.Module):
    def __init__(self, c, rngs):
        self.conv1 = _nnx.Conv(c, c, (3, 3), rngs=rngs)
        self.bn1 = _nnx.BatchNorm(c, rngs=rngs)
        self.depthwise = _nnx.Conv(c, c, (3, 3), feature_group_count=c, rngs=rngs)
    def __call__(self, x):
        y = _nnx.relu(self.bn1(self.conv1(x)))
        return _nnx.relu(x + self.depthwise(y))
class Net(_nnx.Module):
    def __init__(self, rngs):
        self.stem = _nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
        self.block = Block(8, rngs)
        self.head = _nnx.Linear(8, 4, rngs=rngs)
    def __call__(self, x):
        x = _nnx.relu(self.stem(x))
        x = self.block(x)
        return self.head(_jnp.mean(x, axis=(1, 2)))
traced_m = Net(_nnx.Rngs(0))
_r = _np.random.default_rng(5)
traced_m.block.bn1.mean.value = _jnp.asarray(_r.normal(0, 0.3, 8), _jnp.float32)
traced_m.block.bn1.var.value = _jnp.asarray(_r.uniform(0.5, 2.0, 8), _jnp.float32)
traced_m.eval()
"""


def test_a_traced_nnx_module_is_drawn_and_explained(graph_view):
    """A plain `nnx.Module` with a residual block, batch norm, a depthwise conv and a
    `jnp.mean` head: the page draws its skip connection, the tooltip says where a layer comes
    from in the user's code, and the add and batch-norm views give the module's own values."""
    view, cell, _ = graph_view
    k, page = view.kernel, view.page
    k.run(TRACED)
    cell.run(
        "traced_w = CNNExplainer(model=traced_m, input_shape=(32, 32, 3), "
        "classes=['a', 'b', 'c', 'd'])\ntraced_w"
    )
    root = cell.cell.locator(".cnnx-root[data-ready='1']")
    expect(root).to_have_count(1, timeout=FIRST_DRAW_MS)
    # the page shows the module's own prediction
    module_top = k.eval_json(
        "['a', 'b', 'c', 'd'][int(_np.argmax(traced_m(traced_w.activations['input'][None])[0]))]"
    )
    assert root.get_attribute("data-prediction") == module_top
    root.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    targets = {
        p.get_attribute("data-to")
        for p in root.locator(".cnnx-ov-edge-skip").all()
        if p.get_attribute("d")
    }
    assert targets == {"add_1"}, targets
    assert root.evaluate(SKIP_THROUGH_JS)["through"] == []
    # the batch norm's tooltip names the submodule and the line of the user's code
    root.locator('.cnnx-neuron[data-layer="block.bn1"][data-index="2"]').hover()
    tip = root.locator(".cnnx-ov-tooltip")
    expect(tip).to_contain_text("Block.bn1", timeout=WAIT_MS)
    expect(tip).to_contain_text("in Block.__call__")
    page.mouse.move(0, 0)
    element_screenshot(page, root, ARTIFACTS / "graph-traced-overview.png", margin=10)
    # the module's own intermediate values, for the values the page shows
    k.run(
        "_x = traced_w.activations['input'][None]\n"
        "_h = _nnx.relu(traced_m.stem(_x))\n"
        "_bn = traced_m.block.bn1(traced_m.block.conv1(_h))\n"
        "_add = _h + traced_m.block.depthwise(_nnx.relu(_bn))\n"
    )
    for layer, index, kind, own in (
        ("add_1", 5, "add", "_add"),
        ("block.bn1", 2, "batchnorm", "_bn"),
    ):
        root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]').click()
        detail = root.locator(f'.cnnx-detail[data-layer="{layer}"]')
        expect(detail).to_have_attribute("data-kind", kind, timeout=WAIT_MS)
        expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
        detail.locator(".cnnx-el-hit >> nth=-1").click()
        out = detail.locator(".cnnx-formula-card .cnnx-math-output")
        expect(out).to_have_count(1, timeout=WAIT_MS)
        y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
        expected = k.eval_json(f"float({own}[0, {y}, {x}, {index}])")
        assert abs(value - expected) <= TOL, (layer, y, x, value, expected)
        page.mouse.move(0, 0)
        element_screenshot(page, root, ARTIFACTS / f"graph-traced-{kind}.png", margin=10)
        k.run("traced_w.selected = None")
        expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
