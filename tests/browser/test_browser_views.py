"""Overview and detail-view behaviour a user sees: tooltips, re-layout on resize,
keyboard in the detail view, views that work while the kernel is busy, the hyperparameter
explorer. Real JupyterLab + Chromium; waits on DOM hooks or the kernel, never fixed sleeps.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, wait_for

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
NUMBER = re.compile(r"[−-]?\d+(?:\.\d+)?(?:e[−-]?\d+)?")


def _floats(text: str) -> list[float]:
    return [float(m.replace("−", "-")) for m in NUMBER.findall(text)]


def _close(a: float, b: float) -> bool:
    # the front end shows 3 significant digits
    return abs(a - b) <= max(0.006 * abs(b), 1e-3)


def neuron(root, layer: str, index: int):
    return root.locator(f'[data-layer="{layer}"][data-index="{index}"]').first


def test_hover_tooltip_names_neuron_and_true_range(view):
    k, root = view.kernel, view.root
    neuron(root, "conv_2_1", 3).hover()
    tip = root.locator(".cnnx-ov-tooltip")
    expect(tip).to_be_visible(timeout=WAIT_MS)
    text = tip.inner_text()
    assert "conv_2_1" in text and "3" in text, text
    lo, hi = k.eval_json(
        "[float(w.activations['conv_2_1'][..., 3].min()), float(w.activations['conv_2_1'][..., 3].max())]"
    )
    line = next(t for t in text.splitlines() if t.startswith("range"))
    shown = _floats(line)
    assert len(shown) == 2 and _close(shown[0], lo) and _close(shown[1], hi), (line, lo, hi)
    root.screenshot(path=str(ARTIFACTS / "hover-conv_2_1.png"))
    # an output neuron: its probability
    neuron(root, "output", 0).hover()
    expect(tip).to_contain_text("probab", timeout=WAIT_MS)
    p = k.eval_json("w.probabilities[w.classes[0]]")
    assert any(_close(v, p) for v in _floats(tip.inner_text())), (tip.inner_text(), p)
    view.page.mouse.move(0, 0)


def test_overview_relayouts_when_the_cell_narrows(view):
    page, root = view.page, view.root
    size = page.viewport_size
    out = neuron(root, "output", 9)
    before_root = root.bounding_box()
    before_out = out.bounding_box()
    try:
        page.set_viewport_size({"width": 1000, "height": size["height"]})
        wait_for(
            lambda: root.bounding_box()["width"] < before_root["width"] - 100,
            20,
            0.05,
            "the widget to narrow",
        )
        wait_for(
            lambda: out.bounding_box()["x"] < before_out["x"] - 100,
            20,
            0.05,
            "the output column to move left",
        )
        box = root.bounding_box()
        for layer, index in [("output", 9), ("max_pool_2", 9), ("input", 2)]:
            b = neuron(root, layer, index).bounding_box()
            assert box["x"] - 1 <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 1, (
                layer,
                b,
                box,
            )
        root.screenshot(path=str(ARTIFACTS / "overview-1000px.png"))
    finally:
        page.set_viewport_size(size)
    wait_for(
        lambda: abs(out.bounding_box()["x"] - before_out["x"]) < 2, 20, 0.05, "layout to widen back"
    )


def _math_out(root, layer: str):
    out = root.locator(f'.cnnx-detail[data-layer="{layer}"] .cnnx-math-output').first
    expect(out).to_be_visible(timeout=WAIT_MS)
    return out


def test_arrow_keys_move_the_window_and_python_sees_the_position(view):
    k, page, root = view.kernel, view.page, view.root
    k.run("w.selected = {'layer': 'conv_1_2', 'index': 4, 'y': 5, 'x': 5}")
    out = _math_out(root, "conv_1_2")
    expect(out).to_have_attribute("data-x", "5", timeout=WAIT_MS)
    root.locator(".cnnx-detail").first.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    expect(out).to_have_attribute("data-x", "7", timeout=WAIT_MS)
    expect(out).to_have_attribute("data-y", "6", timeout=WAIT_MS)
    wait_for(
        lambda: k.eval_json("w.selected") == {"layer": "conv_1_2", "index": 4, "y": 6, "x": 7},
        20,
        0.1,
        "w.selected to carry the keyboard position",
    )
    value = k.eval_json("float(w.selected_neuron.value)")
    assert abs(float(out.get_attribute("data-value")) - value) <= 1e-4


def test_detail_view_works_while_the_kernel_is_busy(view):
    """The math comes from data the page holds: no kernel round trip per move."""
    k, page, root = view.kernel, view.page, view.root
    k.run("w.selected = {'layer': 'conv_2_1', 'index': 2, 'y': 3, 'x': 3}")
    out = _math_out(root, "conv_2_1")
    expect(out).to_have_attribute("data-x", "3", timeout=WAIT_MS)
    k.kc.execute("import time; time.sleep(8)")  # the kernel is now busy for 8 s
    wait_for(
        lambda: view.server.api(f"kernels/{view.kernel_id}")["execution_state"] == "busy",
        10,
        0.05,
        "the kernel to be busy",
    )
    root.locator(".cnnx-detail").first.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    expect(out).to_have_attribute("data-x", "7", timeout=3_000)  # while the kernel sleeps
    assert view.server.api(f"kernels/{view.kernel_id}")["execution_state"] == "busy"
    shown = float(out.get_attribute("data-value"))
    expected = k.eval_json("float(w.activations['conv_2_1'][3, 7, 2])", timeout=30)
    assert abs(shown - expected) <= 1e-4


def test_hyperparameter_explorer_explains_invalid_settings(view):
    k, root = view.kernel, view.root
    # a position from Python opens the formula card; its link opens the toolbar's explorer
    k.run("w.selected = {'layer': 'conv_1_1', 'index': 0, 'y': 0, 'x': 0}")
    detail = root.locator('.cnnx-detail[data-layer="conv_1_1"]')
    expect(detail).to_be_visible(timeout=WAIT_MS)
    detail.locator("button.cnnx-card-hyper").click()
    box = root.locator(".cnnx-hyper-panel")
    hyper = box.locator(".cnnx-hyper")
    expect(hyper).to_be_visible(timeout=WAIT_MS)
    numbers = hyper.locator("input[type=number]")
    n, p, kk, s = (numbers.nth(i) for i in range(4))
    for field, value in [(n, "7"), (p, "0"), (kk, "3"), (s, "2")]:
        field.fill(value)
        field.dispatch_event("change")
    expect(hyper.locator(".cnnx-hyper-msg")).to_be_hidden()
    expect(hyper).to_contain_text("⌊(7 + 2·0 − 3) / 2⌋ + 1 = 3")
    s.fill("3")
    s.dispatch_event("change")
    msg = hyper.locator(".cnnx-hyper-msg")
    expect(msg).to_be_visible(timeout=WAIT_MS)
    assert "stride" in msg.inner_text().lower(), msg.inner_text()
    expect(s).to_have_attribute("aria-invalid", "true")
    hyper.screenshot(path=str(ARTIFACTS / "hyperparameter-invalid-stride.png"))
    kk.fill("9")
    kk.dispatch_event("change")
    expect(msg).to_be_visible()
    assert "kernel" in msg.inner_text().lower(), msg.inner_text()
    root.locator("button.cnnx-hyper-btn").click()  # closed again for the next tests
    expect(box).to_be_hidden()


def test_reduced_motion_turns_animation_off_and_keeps_the_information(view):
    k, page, root = view.kernel, view.page, view.root
    page.emulate_media(reduced_motion="reduce")
    try:
        k.run("w.selected = {'layer': 'conv_1_1', 'index': 1, 'y': 2, 'x': 2}")
        detail = root.locator('.cnnx-detail[data-layer="conv_1_1"]')
        expect(detail).to_be_visible(timeout=WAIT_MS)
        play = detail.locator("button.cnnx-play").first
        expect(play).to_be_disabled()
        assert "reduced motion" in (play.get_attribute("title") or "")
        duration = neuron(root, "conv_1_1", 1).evaluate(
            "e => getComputedStyle(e).transitionDuration"
        )
        assert set(duration.replace("s", "").split(", ")) <= {"0"}, duration
        out = _math_out(root, "conv_1_1")  # the same numbers are there, by keyboard or hover
        detail.focus()
        page.keyboard.press("ArrowRight")
        expect(out).to_have_attribute("data-x", "3", timeout=WAIT_MS)
    finally:
        page.emulate_media(reduced_motion="no-preference")
