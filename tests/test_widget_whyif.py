"""The widget's why / what if / which images, through Python and through set_state."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_explainer_widget import (
    CNNExplainer,
    activations,
    grad_cam,
    saliency,
    top_activations,
)
from cnn_explainer_widget._widget_state import InvalidAblation
from cnn_explainer_widget.images import default_image_path
from cnn_explainer_widget.scan import receptive_field


@pytest.fixture
def w():
    return CNNExplainer(default_image_path("espresso_1.jpeg"))


def test_ablated_from_python_recomputes_everything(w):
    assert w.ablated == {} and w.prediction == "espresso"
    seq = w._activations["seq"]
    w.ablated = {"output": [6], "conv_1_2": (5, 3, 3)}
    assert w.ablated == {"conv_1_2": [3, 5], "output": [6]}  # sorted, layer order, lists
    want = activations(w.image, ablate=w.ablated)
    for key, value in want.items():
        np.testing.assert_array_equal(w.activations[key], value)
    assert w.prediction != "espresso"  # its logit is 0 now
    assert w.prediction == w.classes[int(np.argmax(want["probabilities"]))]
    assert w._activations["seq"] == seq + 1
    w.ablated = {}
    assert w.prediction == "espresso"


def test_ablated_relu_is_sent_as_numbers_not_recipes(w):
    w.ablated = {"relu_1_1": [2]}
    layers = {entry["name"]: entry for entry in w._activations["layers"]}
    assert "offset" in layers["relu_1_1"] and "derived" not in layers["relu_1_1"]
    w.ablated = {}
    layers = {entry["name"]: entry for entry in w._activations["layers"]}
    assert "derived" in layers["relu_1_1"]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"conv_9": [1]}, "no layer 'conv_9'"),
        ({"conv_1_1": [10]}, "not in"),
        ({"input": [0]}, "no layer 'input'"),
        ([1, 2], "must be a dict"),
    ],
)
def test_invalid_ablation_changes_nothing(w, bad, match):
    w.ablated = {"conv_1_1": [1]}
    before = w._activations
    with pytest.raises(InvalidAblation, match=match):
        w.ablated = bad
    assert w.ablated == {"conv_1_1": [1]} and w._activations is before


def test_front_end_ablation_is_validated(w, monkeypatch):
    sent = []
    monkeypatch.setattr(w, "send_state", lambda keys=None: sent.append(keys))
    w.set_state({"ablated": {"conv_2_1": [4]}})
    assert w.ablated == {"conv_2_1": [4]}
    for bad in ({"conv_2_1": [99]}, "x" * 1000, {"conv_2_1": [[1]]}, {"conv_2_1": [True]}):
        w.set_state({"ablated": bad})
        assert w.ablated == {"conv_2_1": [4]}
    assert [k for k in sent if k] == [["ablated"]] * 4  # each refusal re-synchronises the view


def test_overlay_saliency_and_grad_cam(w):
    assert w._overlay == {}
    w.overlay = "saliency"
    ov = w._overlay
    raw = np.abs(saliency(w.image, "espresso")).max(axis=-1)
    assert ov["kind"] == "saliency" and ov["target"] == "espresso"
    assert ov["max"] == pytest.approx(float(raw.max()))
    data = np.frombuffer(ov["data"], "<f4").reshape(64, 64)
    np.testing.assert_allclose(data, raw / raw.max(), atol=1e-6)
    assert len(ov["image"]) == 64 * 64 * 3
    w.overlay = "grad_cam"
    cam = grad_cam(w.image, "relu_2_2", "espresso")
    assert w._overlay["layer"] == "relu_2_2" and w._overlay["source_shape"] == [26, 26]
    assert w._overlay["max"] == pytest.approx(float(cam.max()))
    data = np.frombuffer(w._overlay["data"], "<f4")
    # Normalised by the raw maximum (the legend's top): upsampling smooths the peak a little.
    assert data.min() >= 0 and 0.8 < data.max() <= 1.0
    w.overlay_target = "pizza"
    assert w._overlay["target"] == "pizza"
    assert w._overlay["max"] == pytest.approx(float(grad_cam(w.image, "relu_2_2", "pizza").max()))


def test_overlay_follows_the_selected_neuron_and_the_image(w):
    w.overlay, w.overlay_target = "saliency", "selected"
    assert w._overlay["target"] == "espresso"  # nothing selected: the prediction
    w.selected = {"layer": "conv_2_1", "index": 3}
    assert w._overlay["target"] == "conv_2_1 neuron 3"
    want = np.abs(saliency(w.image, {"layer": "conv_2_1", "index": 3})).max(axis=-1)
    assert w._overlay["max"] == pytest.approx(float(want.max()))
    w.overlay = "grad_cam"
    assert w._overlay["layer"] == "conv_2_1"  # Grad-CAM at the neuron's own layer
    w.overlay_target = None
    w.image = default_image_path("pizza_1.jpeg")
    assert w._overlay["target"] == w.prediction


def test_overlay_validation(w, monkeypatch):
    with pytest.raises(Exception, match="overlay must be one of"):
        w.overlay = "heat"
    with pytest.raises(Exception, match="no class 'cat'"):
        w.overlay_target = "cat"
    with pytest.raises(Exception, match="10 neurons"):
        w.overlay_target = {"layer": "conv_1_1", "index": 10}
    monkeypatch.setattr(w, "send_state", lambda *a, **k: None)
    w.set_state({"overlay": "saliency", "overlay_target": 3})
    assert (w.overlay, w.overlay_target) == ("saliency", 3)
    w.set_state({"overlay": "x", "overlay_target": {"layer": "nope", "index": 0}})
    assert (w.overlay, w.overlay_target) == ("saliency", 3)


def test_show_top_activations_and_click(w):
    images = np.random.default_rng(2).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="select a neuron first"):
        w.show_top_activations(images)
    w.selected = {"layer": "relu_2_1", "index": 5}
    top = w.show_top_activations(images, k=4, progress=False)
    assert top == top_activations(images, "relu_2_1", 5, k=4, progress=False)
    strip = w._top
    assert (strip["layer"], strip["index"], len(strip["items"])) == ("relu_2_1", 5, 4)
    for item, (i, v, (y, x)) in zip(strip["items"], top, strict=True):
        assert (item["image_index"], item["value"], item["y"], item["x"]) == (i, v, y, x)
        (t, b), (le, r) = receptive_field("relu_2_1", y, x)
        assert item["field"] == [t, b, le, r]
        assert item["png"].startswith(b"\x89PNG")
    # A click on the second thumbnail shows that image.
    w._handle_custom_msg(w, {"type": "show_top", "rank": 1}, [])
    np.testing.assert_allclose(w.image, images[top[1][0]] / 255.0, atol=1e-6)
    assert w.image_name.startswith("top 2 of relu_2_1[5]")
    before = w._activations
    for bad in (9, -1, "1", None, 1.0):
        w._handle_custom_msg(w, {"type": "show_top", "rank": bad}, [])
    assert w._activations is before
    top = w.show_top_activations(images, layer="output", index=2, k=2, progress=False)
    assert [t[2] for t in top] == [(0, 0), (0, 0)] and w._top["items"][0]["field"] == [0, 64, 0, 64]
