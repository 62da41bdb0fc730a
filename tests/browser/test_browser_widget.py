"""The widget in a real JupyterLab page: what the user does in the browser is seen in Python, and
what Python does is seen in the browser.

All waits are on the widget's DOM hooks (docs/widget-spec.md, "Test hooks") or on the kernel;
none is a fixed sleep.
"""

from __future__ import annotations

import base64
import re
import time

import pytest
from PIL import Image

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason; the rest still run
    expect = None

from .cnnx_lab import ARTIFACTS, IMAGES, wait_for

pytestmark = pytest.mark.browser

#: Short waits once the widget is up (the first render has its own 90 s).
WAIT_MS = 20_000
ACTIVATION_BYTES = 101_348 * 4  # Tiny VGG: input, conv maps, output (ReLU/pool maps are recipes)

NEURON_EXPR = (
    "None if w.selected_neuron is None else {'layer': w.selected_neuron.layer,"
    " 'index': w.selected_neuron.index, 'kind': w.selected_neuron.kind,"
    " 'shape': list(getattr(w.selected_neuron.activation, 'shape', ()))}"
)
IMAGE_EXPR = (
    "{'sha': __import__('hashlib').sha256(w.image.tobytes()).hexdigest(),"
    " 'name': w.image_name, 'seq': w._activations['seq'], 'prediction': w.prediction,"
    " 'error': w.error}"
)


def neuron(root, layer: str, index: int):
    return root.locator(f'[data-layer="{layer}"][data-index="{index}"]').first


def python_value(k, expr: str, pred, what: str, timeout: float = 20.0):
    """Poll the kernel until ``pred(value)`` holds; return the value."""
    box = {}

    def check():
        box["v"] = k.eval_json(expr)
        return pred(box["v"])

    try:
        wait_for(check, timeout, 0.05, what)
    except TimeoutError as exc:
        raise AssertionError(f"{what}: last value {box.get('v')!r}") from exc
    return box["v"]


def png(path, width: int, height: int):
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 5) % 256, (y * 9) % 256, 255 - (x + y) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    image.save(path, format="PNG")
    return path


# ---- browser -> Python ------------------------------------------------------------------------


def test_click_neuron_is_read_back_in_python(view):
    k, root = view.kernel, view.root
    target = neuron(root, "conv_1_2", 4)
    expect(target).to_have_attribute("role", "button")
    expect(target).to_have_attribute("tabindex", "0")
    expect(target).to_have_attribute("aria-label", "conv_1_2 neuron 4")
    expect(neuron(root, "output", 6)).to_have_attribute("aria-label", "output neuron 6 (espresso)")
    expect(neuron(root, "input", 2)).to_have_attribute("role", "button")
    target.click()
    sel = python_value(k, "w.selected", lambda v: v is not None, "w.selected after the click")
    assert {k_: sel[k_] for k_ in ("layer", "index")} == {"layer": "conv_1_2", "index": 4}, sel
    assert k.eval_json(NEURON_EXPR) == {
        "layer": "conv_1_2",
        "index": 4,
        "kind": "conv",
        "shape": [60, 60],
    }


def test_keyboard_enter_on_neuron_selects_it(view):
    k, root = view.kernel, view.root
    target = neuron(root, "relu_2_1", 7)
    target.focus()
    view.page.keyboard.press("Enter")
    sel = python_value(k, "w.selected", lambda v: v is not None, "w.selected after Enter")
    assert (sel["layer"], sel["index"]) == ("relu_2_1", 7), sel


# ---- Python -> browser ------------------------------------------------------------------------


def test_image_change_from_python_redraws_overview(view):
    k, root = view.kernel, view.root
    before = k.eval_json(IMAGE_EXPR)
    expect(root).to_have_attribute("data-seq", str(before["seq"]))
    name, label = ("koala_1.jpeg", "koala") if before["prediction"] == "espresso" else (
        "espresso_1.jpeg", "espresso")  # fmt: skip
    n_frames = len(view.frames)
    k.run(f"w.image = {str(IMAGES / name)!r}")
    after = k.eval_json(IMAGE_EXPR)
    assert after["seq"] == before["seq"] + 1 and after["prediction"] == label
    expect(root).to_have_attribute("data-seq", str(after["seq"]), timeout=WAIT_MS)
    expect(root).to_have_attribute("data-prediction", after["prediction"], timeout=WAIT_MS)
    # the new activations came as one binary websocket frame, not as base64 text
    # (Playwright reports frames as events: wait until the big one has been reported)
    wait_for(
        lambda: any(len(p) >= ACTIVATION_BYTES for _, d, p in view.frames[n_frames:] if d == "in"),
        10,
        what="the update's websocket frame",
    )
    new = view.frames[n_frames:]
    binary = [len(p) for _, d, p in new if d == "in" and isinstance(p, bytes | bytearray)]
    text = [len(p) for _, d, p in new if d == "in" and isinstance(p, str)]
    big = [n for n in binary if n >= ACTIVATION_BYTES]
    assert len(big) == 1, f"binary frames {binary}, text frames {text}"
    assert big[0] < ACTIVATION_BYTES + 64_000, big
    assert max(text, default=0) < 64_000, text


def test_selection_from_python_opens_detail_and_esc_closes(view):
    k, root, page = view.kernel, view.root, view.page
    k.run("w.selected = {'layer': 'conv_2_1', 'index': 3}")
    detail = root.locator('.cnnx-detail[data-layer="conv_2_1"]')
    expect(detail).to_be_visible(timeout=WAIT_MS)
    expect(root).to_have_attribute("data-detail", "conv_2_1")
    page.screenshot(path=str(ARTIFACTS / "detail-from-python.png"))
    # the user presses Esc with focus inside the detail view
    detail.locator(".cnnx-detail-close").focus()
    page.keyboard.press("Escape")
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    expect(root.locator(".cnnx-detail")).to_have_count(0)
    python_value(k, "w.selected", lambda v: v is None, "w.selected after Esc")


def test_esc_right_after_a_click_closes_detail(view):
    """The usual flow: click a neuron (focus stays on it), read, press Esc."""
    k, root = view.kernel, view.root
    target = neuron(root, "conv_1_2", 6)
    target.click()
    expect(root.locator('.cnnx-detail[data-layer="conv_1_2"]')).to_be_visible(timeout=WAIT_MS)
    python_value(k, "w.selected", lambda v: v is not None, "w.selected after the click")
    view.page.keyboard.press("Escape")
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    python_value(k, "w.selected", lambda v: v is None, "w.selected after Esc")


def test_close_button_closes_detail(view):
    k, root = view.kernel, view.root
    neuron(root, "max_pool_2", 1).click()
    detail = root.locator('.cnnx-detail[data-layer="max_pool_2"]')
    expect(detail).to_be_visible(timeout=WAIT_MS)
    detail.locator(".cnnx-detail-close").click()
    expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    python_value(k, "w.selected", lambda v: v is None, "w.selected after the close button")


# ---- uploads ----------------------------------------------------------------------------------


def test_upload_png_through_file_input_changes_python_image(view, tmp_path):
    k, root = view.kernel, view.root
    before = k.eval_json(IMAGE_EXPR)
    path = png(tmp_path / "upload-200x120.png", 200, 120)
    root.locator("input.cnnx-upload-input").set_input_files(str(path))
    after = python_value(
        k, IMAGE_EXPR, lambda v: v["seq"] > before["seq"], "w.image after the upload"
    )
    assert after["name"] == "upload-200x120.png"
    assert after["sha"] != before["sha"] and after["error"] == ""
    assert k.eval_json("list(w.image.shape)") == [64, 64, 3]
    expect(root).to_have_attribute("data-seq", str(after["seq"]), timeout=WAIT_MS)
    expect(root).to_have_attribute("data-prediction", after["prediction"])


def test_broken_upload_shows_error_and_keeps_image(view, tmp_path):
    k, root = view.kernel, view.root
    k.run(f"w.image = {str(IMAGES / 'pizza_1.jpeg')!r}")
    before = k.eval_json(IMAGE_EXPR)
    expect(root).to_have_attribute("data-seq", str(before["seq"]), timeout=WAIT_MS)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not really a png" * 20)
    root.locator("input.cnnx-upload-input").set_input_files(str(broken))
    error = root.locator(".cnnx-error")
    expect(error).to_be_visible(timeout=WAIT_MS)
    expect(error).not_to_have_text("")
    view.page.screenshot(path=str(ARTIFACTS / "broken-upload-error.png"))
    # the kernel kept the previous image (whether it or the page refused the file)
    after = k.eval_json(IMAGE_EXPR)
    for key in ("sha", "name", "seq", "prediction"):
        assert after[key] == before[key], (key, before, after)
    expect(root).to_have_attribute("data-seq", str(before["seq"]))
    # a good image afterwards clears the message
    k.run(f"w.image = {str(IMAGES / 'bus_1.jpeg')!r}")
    expect(error).to_be_hidden(timeout=WAIT_MS)


def test_drop_png_on_widget_changes_python_image(view, tmp_path):
    k, root = view.kernel, view.root
    before = k.eval_json(IMAGE_EXPR)
    data = base64.b64encode(png(tmp_path / "d.png", 90, 140).read_bytes()).decode()
    transfer = view.page.evaluate_handle(
        """(b64) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
           const dt = new DataTransfer();
           dt.items.add(new File([bytes], 'dropped-90x140.png', {type: 'image/png'}));
           return dt; }""",
        data,
    )
    zone = view.panel.locator(".cnnx-dropzone").first
    zone.dispatch_event("dragenter", {"dataTransfer": transfer})
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    zone.dispatch_event("drop", {"dataTransfer": transfer})
    after = python_value(k, IMAGE_EXPR, lambda v: v["seq"] > before["seq"], "w.image after drop")
    assert after["name"] == "dropped-90x140.png" and after["sha"] != before["sha"]
    expect(root).to_have_attribute("data-seq", str(after["seq"]), timeout=WAIT_MS)


def test_color_scale_both_ways(view):
    k, root = view.kernel, view.root
    try:
        root.locator('.cnnx-scale-btn[data-scale="module"]').first.click()
        python_value(k, "w.color_scale", lambda v: v == "module", "w.color_scale after click")
        expect(root).to_have_attribute("data-color-scale", "module", timeout=WAIT_MS)
        k.run("w.color_scale = 'global'")
        expect(root).to_have_attribute("data-color-scale", "global", timeout=WAIT_MS)
        view.page.screenshot(path=str(ARTIFACTS / "color-scale-global.png"))
    finally:
        k.run("w.color_scale = 'unit'")
    expect(root).to_have_attribute("data-color-scale", "unit", timeout=WAIT_MS)


def test_thumbnail_shows_default_image(view):
    k, root = view.kernel, view.root
    before = k.eval_json(IMAGE_EXPR)
    name, label = ("panda_1.jpeg", "red panda") if before["name"] != "red panda" else (
        "car_1.jpeg", "sport car")  # fmt: skip
    root.locator(f'button.cnnx-thumb[data-name="{name}"]').click()
    after = python_value(k, IMAGE_EXPR, lambda v: v["seq"] > before["seq"], "w.image after thumb")
    assert after["name"] == label
    expect(root).to_have_attribute("data-seq", str(after["seq"]), timeout=WAIT_MS)


# ---- detail views -----------------------------------------------------------------------------

KINDS = [
    ("input", 0, "input", [64, 64]),
    ("conv_1_1", 2, "conv", [62, 62]),
    ("relu_1_1", 2, "relu", [62, 62]),
    ("max_pool_1", 5, "pool", [30, 30]),
    ("output", 6, "output", []),
]


@pytest.mark.parametrize(("layer", "index", "kind", "shape"), KINDS, ids=[k[2] for k in KINDS])
def test_click_each_kind_opens_its_detail_view(view, layer, index, kind, shape):
    k, root = view.kernel, view.root
    t0 = time.perf_counter()
    neuron(root, layer, index).click()
    detail = root.locator(f'.cnnx-detail[data-layer="{layer}"]')
    expect(detail).to_be_visible(timeout=WAIT_MS)
    expect(root).to_have_attribute("data-detail", layer)
    print(f"{kind} detail visible after {time.perf_counter() - t0:.2f}s")
    view.page.screenshot(path=str(ARTIFACTS / f"detail-{kind}.png"))
    detail.screenshot(path=str(ARTIFACTS / f"detail-{kind}-panel.png"))  # scrolled into view
    got = python_value(k, NEURON_EXPR, lambda v: v is not None, "w.selected_neuron")
    assert got == {"layer": layer, "index": index, "kind": kind, "shape": shape}
    # the spec names no values for data-kind: accept Python's Neuron.kind or the payload's
    # layer kind ("activation" for a ReLU layer, "dense" for the output layer)
    layer_kind = {"relu": "activation", "output": "dense"}.get(kind, kind)
    expect(detail).to_have_attribute("data-kind", re.compile(f"^({kind}|{layer_kind})$"))


def _math_output(root, layer: str):
    out = root.locator(f'.cnnx-detail[data-layer="{layer}"] .cnnx-math-output').first
    expect(out).to_be_visible(timeout=WAIT_MS)
    expect(out).to_have_attribute("data-value", re.compile(r"\S"))
    return out


def test_conv_math_output_equals_python_activation(view):
    k, root = view.kernel, view.root
    index = 3
    neuron(root, "conv_1_1", index).click()
    out = _math_output(root, "conv_1_1")
    # the window slides by itself: read position and value together
    y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
    root.locator(".cnnx-detail").first.screenshot(path=str(ARTIFACTS / "conv-math-view.png"))
    expected = k.eval_json(f"float(w.activations['conv_1_1'][{y}, {x}, {index}])")
    assert abs(value - expected) <= 1e-4, (y, x, value, expected)
    # and the same number Python's explanation gives for that position
    window = k.eval_json(
        f"float(__import__('cnn_explainer_widget').explain_neuron(w.network, w._acts,"
        f" 'conv_1_1', {index}, {y}, {x}).value)"
    )
    assert abs(value - window) <= 1e-4


def test_position_selected_from_python_is_shown_in_math_view(view):
    k, root = view.kernel, view.root
    k.run("w.selected = {'layer': 'conv_2_2', 'index': 8, 'y': 10, 'x': 20}")
    out = _math_output(root, "conv_2_2")
    expect(out).to_have_attribute("data-y", "10", timeout=WAIT_MS)
    expect(out).to_have_attribute("data-x", "20", timeout=WAIT_MS)
    expected = k.eval_json("float(w.activations['conv_2_2'][10, 20, 8])")
    assert abs(float(out.get_attribute("data-value")) - expected) <= 1e-4


def test_hovering_the_explanation_does_not_set_selected(view):
    """Hover is not selection: moving the mouse over an open explanation's maps slides its
    window in the page and sends nothing; ``observe("selected")`` fires once, for the click."""
    k, page, root = view.kernel, view.page, view.root
    k.run("w.selected = {'layer': 'conv_1_1', 'index': 1, 'y': 2, 'x': 2}")
    hit = root.locator(".cnnx-el-hit").first
    expect(hit).to_be_visible(timeout=WAIT_MS)
    k.run(
        "_seen_selected = []\n"
        "_record_selected = lambda change: _seen_selected.append(change['new'])\n"
        "w.observe(_record_selected, 'selected')"
    )
    try:
        hit.scroll_into_view_if_needed()
        box = hit.bounding_box()
        # 40 moves over about a second: before the fix, one `selected` message per ~150 ms.
        for i in range(40):
            fx, fy = 0.1 + 0.02 * i, 0.2 + 0.015 * i
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            page.wait_for_timeout(25)
        page.mouse.click(box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
        clicked = python_value(
            k, "w.selected", lambda v: (v.get("y"), v.get("x")) != (2, 2), "the click"
        )
        # Messages arrive in order: a hover sent before the click would be in the list first.
        assert k.eval_json("_seen_selected") == [clicked]
    finally:
        k.run("w.unobserve(_record_selected, 'selected')")


# ---- last: a second view of the same widget (changes the page for any later test) -------------


def test_second_view_of_same_widget_follows_python(view):
    k, page = view.kernel, view.page
    cell = view.panel.locator(".jp-Cell").nth(1)
    cell.locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("w")
    page.keyboard.press("Shift+Enter")
    roots = view.panel.locator(".cnnx-root[data-ready='1']")
    expect(roots).to_have_count(2, timeout=WAIT_MS)
    before = k.eval_json(IMAGE_EXPR)
    name = "orange_1.jpeg" if before["name"] != "orange_1.jpeg" else "car_1.jpeg"
    k.run(f"w.image = {str(IMAGES / name)!r}")
    seq = str(k.eval_json("w._activations['seq']"))
    for i in range(2):
        expect(roots.nth(i)).to_have_attribute("data-seq", seq, timeout=WAIT_MS)
    k.run("w.selected = {'layer': 'relu_2_2', 'index': 1}")
    for i in range(2):
        expect(roots.nth(i)).to_have_attribute("data-detail", "relu_2_2", timeout=WAIT_MS)
    # Esc in the second view closes the detail everywhere (it is the model's state)
    roots.nth(1).locator(".cnnx-detail-close").focus()
    page.keyboard.press("Escape")
    for i in range(2):
        expect(roots.nth(i)).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    roots.nth(1).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "two-views.png"))
