"""Why / what if / which images in a real JupyterLab page: what the browser does reaches Python,
and what Python computes is what the page shows.

Waits are on the widget's DOM hooks (``data-prediction``, ``data-off``, ``data-overlay-shown``,
``data-seq``) or on the kernel, never on fixed sleeps.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, IMAGES, element_screenshot, wait_for

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
OFF = re.compile(r"\bcnnx-whyif-off\b")
STATE = "{'ablated': w.ablated, 'prediction': w.prediction, 'seq': w._activations['seq']}"


def python_state(k, pred, what: str) -> dict:
    """Poll the kernel until ``pred(state)`` holds (the page marks a click before Python hears)."""
    box: dict = {}

    def check() -> bool:
        box["v"] = k.eval_json(STATE)
        return pred(box["v"])

    try:
        wait_for(check, 20, 0.05, what)
    except TimeoutError as exc:
        raise AssertionError(f"{what}: last state {box.get('v')!r}") from exc
    return box["v"]


def neuron(root, layer: str, index: int):
    return root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]').first


@pytest.fixture
def espresso(view):
    k = view.kernel
    k.run(
        f"w.ablated = {{}}; w.overlay = 'none'; w.overlay_target = None; "
        f"w.image = {str(IMAGES / 'espresso_1.jpeg')!r}"
    )
    expect(view.root).to_have_attribute("data-prediction", "espresso", timeout=WAIT_MS)
    yield view
    k.run("w.ablated = {}; w.overlay = 'none'; w.overlay_target = None; w.selected = None")


def test_switch_a_neuron_off_and_on(espresso):
    k, root, page = espresso.kernel, espresso.root, espresso.page
    panel = root.locator(".cnnx-whyif")
    before = k.eval_json(STATE)
    assert before["prediction"] == "espresso" and before["ablated"] == {}

    # Off with the mouse: the power control on the neuron (espresso's logit unit).
    target = neuron(root, "output", 6)
    target.hover()
    target.locator("button.cnnx-whyif-toggle").click()
    expect(panel).to_have_attribute("data-off", "1", timeout=WAIT_MS)
    expect(target).to_have_class(OFF)
    after = python_state(k, lambda s: s["ablated"] == {"output": [6]}, "w.ablated after the click")
    assert after["prediction"] != "espresso"
    # The page shows the prediction Python computed, from the recomputed activations.
    expect(root).to_have_attribute("data-seq", str(after["seq"]), timeout=WAIT_MS)
    expect(root).to_have_attribute("data-prediction", after["prediction"], timeout=WAIT_MS)
    assert k.eval_json("w.selected") is None  # the control does not select the neuron
    element_screenshot(page, panel, ARTIFACTS / "whyif-neuron-off-panel.png", margin=120)
    element_screenshot(page, root, ARTIFACTS / "whyif-neuron-off.png", margin=40)

    # On again with the keyboard: O on the focused neuron.
    target.focus()
    page.keyboard.press("o")
    expect(panel).to_have_attribute("data-off", "0", timeout=WAIT_MS)
    expect(root).to_have_attribute("data-prediction", "espresso", timeout=WAIT_MS)
    python_state(k, lambda s: s["ablated"] == {} and s["prediction"] == "espresso", "back on")

    # From Python: a hidden neuron off is marked in the page; Reset switches all back on.
    k.run("w.ablated = {'conv_2_2': [1, 4]}")
    expect(neuron(root, "conv_2_2", 4)).to_have_class(OFF, timeout=WAIT_MS)
    expect(root.locator(".cnnx-neuron.cnnx-whyif-off")).to_have_count(2)
    root.locator("button.cnnx-whyif-reset").click()
    expect(panel).to_have_attribute("data-off", "0", timeout=WAIT_MS)
    python_state(k, lambda s: s["ablated"] == {}, "w.ablated after Reset")


def test_overlay_toggle(espresso):
    k, root, page = espresso.kernel, espresso.root, espresso.page
    panel = root.locator(".cnnx-whyif")
    figure = root.locator(".cnnx-whyif-figure")
    expect(figure).to_be_hidden()
    root.locator("select.cnnx-whyif-overlay").select_option("saliency")
    # The page shows the map only when the kernel has computed it: Python heard first.
    expect(panel).to_have_attribute("data-overlay-shown", "saliency:espresso", timeout=WAIT_MS)
    assert k.eval_json("w.overlay") == "saliency"
    expect(figure).to_be_visible()
    # The legend's numbers are the kernel's: 0 … max |∂ logit / ∂ pixel|.
    top = k.eval_json("w._overlay['max']")
    expect(root.locator(".cnnx-whyif-tick-2")).to_have_attribute("data-value", str(top))
    expect(root.locator('.cnnx-neuron[data-layer="input"] canvas.cnnx-whyif-heat')).to_have_count(3)
    element_screenshot(page, panel, ARTIFACTS / "whyif-saliency.png", margin=120)
    # ... and in the input's explanation view.
    k.run("w.selected = {'layer': 'input', 'index': 0}")
    # The elastic input view's colour image carries the overlay, laid exactly on it.
    picture = root.locator('canvas.cnnx-el-image[aria-label="the input image"]')
    detail_heat = picture.locator("xpath=..").locator(":scope > canvas.cnnx-whyif-heat")
    expect(detail_heat).to_have_count(1, timeout=WAIT_MS)
    pic_box, heat_box = picture.bounding_box(), detail_heat.bounding_box()
    assert pic_box and heat_box
    for key in ("x", "y", "width", "height"):
        assert abs(pic_box[key] - heat_box[key]) <= 1.5, (key, pic_box, heat_box)
    element_screenshot(page, picture, ARTIFACTS / "whyif-detail.png", 60)
    k.run("w.selected = None")

    root.locator("select.cnnx-whyif-overlay").select_option("grad_cam")
    root.locator("select.cnnx-whyif-target").select_option("pizza")
    expect(panel).to_have_attribute("data-overlay-shown", "grad_cam:pizza", timeout=WAIT_MS)
    assert k.eval_json("[w.overlay, w.overlay_target, w._overlay['layer']]") == [
        "grad_cam",
        "pizza",
        "relu_2_2",
    ]
    element_screenshot(page, panel, ARTIFACTS / "whyif-grad-cam-pizza.png", margin=120)
    element_screenshot(page, root, ARTIFACTS / "whyif-grad-cam-overview.png", margin=40)

    root.locator("select.cnnx-whyif-overlay").select_option("none")
    expect(figure).to_be_hidden(timeout=WAIT_MS)
    expect(root.locator("canvas.cnnx-whyif-heat")).to_have_count(0)
    wait_for(lambda: k.eval_json("w.overlay") == "none", 20, 0.05, "w.overlay after Off")


def test_top_images_strip_click_shows_the_image(espresso):
    k, root, page = espresso.kernel, espresso.root, espresso.page
    k.run(
        "import numpy as np\n"
        "from cnn_explainer_widget import load_image\n"
        "from cnn_explainer_widget.images import DEFAULT_IMAGES, default_image_path\n"
        "_imgs = np.stack([load_image(default_image_path(f)) for f, _ in DEFAULT_IMAGES])\n"
        "w.selected = {'layer': 'relu_2_2', 'index': 3}\n"
        "_top = w.show_top_activations(_imgs, k=4, progress=False)"
    )
    top = k.eval_json("_top")
    items = root.locator("button.cnnx-whyif-top")
    expect(items).to_have_count(4, timeout=WAIT_MS)
    assert [items.nth(i).get_attribute("data-image-index") for i in range(4)] == [
        str(t[0]) for t in top
    ]
    element_screenshot(page, root.locator(".cnnx-whyif-strip"), ARTIFACTS / "whyif-top.png", 120)
    seq = k.eval_json("w._activations['seq']")
    items.nth(1).click()
    expect(root).to_have_attribute("data-seq", str(seq + 1), timeout=WAIT_MS)
    name = k.eval_json("w.image_name")
    assert name.startswith(f"top 2 of relu_2_2[3] (image {top[1][0]})"), name
    assert k.eval_json("bool(np.allclose(w.image, _imgs[_top[1][0]]))")
