"""CNNExplainer without a kernel: state, Python API, and validation of what the front end sends."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from cnn_explainer_widget import (
    CLASS_NAMES,
    CNNExplainer,
    InvalidSelection,
    activations,
    load_image,
)
from cnn_explainer_widget._protocol import PROTOCOL_VERSION
from cnn_explainer_widget._uploads import MAX_UPLOAD_BYTES

from conftest import ROOT


@pytest.fixture(scope="module")
def w():
    return CNNExplainer()


@pytest.fixture
def fresh():
    return CNNExplainer()


def _png(size=(120, 80), color=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_default_state(w, image_dir):
    assert w.classes == list(CLASS_NAMES)
    assert w.prediction == "lifeboat"
    np.testing.assert_array_equal(w.image, load_image(image_dir / "boat_1.jpeg"))
    assert set(w.probabilities) == set(CLASS_NAMES)
    assert abs(sum(w.probabilities.values()) - 1) < 1e-5
    assert w.selected is None and w.selected_neuron is None
    assert w.color_scale == "unit" and w.error == ""
    assert w._network["version"] == PROTOCOL_VERSION
    assert isinstance(w._network["data"], bytes)
    assert isinstance(w._activations["data"], bytes)
    assert len(w._thumbnails) == 10


def test_image_argument(espresso_path):
    w = CNNExplainer(image=espresso_path)
    assert w.prediction == "espresso"
    assert w.image_name == "espresso_1.jpeg"


def test_set_image_recomputes(fresh, image_dir):
    seq = fresh._activations["seq"]
    fresh.image = image_dir / "koala_1.jpeg"
    assert fresh.prediction == "koala"
    assert fresh._activations["seq"] == seq + 1
    expected = activations(load_image(image_dir / "koala_1.jpeg"))
    for k, v in expected.items():
        np.testing.assert_array_equal(fresh.activations[k], v)
    # the payload carries the same numbers, channel first
    layers = {e["name"]: e for e in fresh._activations["layers"]}
    data = np.frombuffer(fresh._activations["data"], "<f4")
    e = layers["conv_2_1"]
    got = data[e["offset"] : e["offset"] + np.prod(e["shape"])].reshape(e["shape"])
    np.testing.assert_array_equal(got, expected["conv_2_1"].transpose(2, 0, 1))
    assert e["min"] == pytest.approx(expected["conv_2_1"].min(axis=(0, 1)).tolist())


def test_payload_ranges_are_every_maps_true_range(fresh):
    # Sent maps, maps sent as recipes (ReLU ranges come from their source's) and 1-D layers.
    net, acts = fresh._net, fresh.activations
    for e in fresh._activations["layers"]:
        value = net.output_of(acts, e["name"])
        axes = (0, 1) if value.ndim == 3 else None
        assert e["min"] == np.atleast_1d(value.min(axis=axes)).tolist(), e["name"]
        assert e["max"] == np.atleast_1d(value.max(axis=axes)).tolist(), e["name"]


def test_set_image_sources(fresh, image_dir):
    fresh.set_image(Image.open(image_dir / "pizza_1.jpeg"))
    assert fresh.prediction == "pizza"
    fresh.image = (image_dir / "bus_1.jpeg").read_bytes()
    assert fresh.prediction == "school bus"
    fresh.image = np.asarray(Image.open(image_dir / "orange_1.jpeg"))
    assert fresh.prediction == "orange"


def test_image_is_read_only(w):
    with pytest.raises(ValueError, match="read-only"):
        w.image[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    ("bad", "exc"),
    [
        (b"garbage", ValueError),
        ("no/such/file.png", ValueError),
        (3.5, TypeError),
        (np.full((64, 64, 3), 2.0), ValueError),
    ],
)
def test_invalid_image_changes_nothing(fresh, bad, exc):
    before_img, before_payload = fresh.image.copy(), fresh._activations
    fresh.selected = {"layer": "conv_1_1", "index": 1}
    with pytest.raises(exc):
        fresh.image = bad
    np.testing.assert_array_equal(fresh.image, before_img)
    assert fresh._activations is before_payload
    assert fresh.selected == {"layer": "conv_1_1", "index": 1}


def test_selection_from_python(fresh):
    fresh.selected = {"layer": "conv_1_2", "index": 4}
    n = fresh.selected_neuron
    assert (n.layer, n.index, n.kind) == ("conv_1_2", 4, "conv")
    np.testing.assert_array_equal(n.activation, fresh.activations["conv_1_2"][..., 4])
    np.testing.assert_array_equal(n.inputs, fresh.activations["relu_1_1"])
    assert n.kernel.shape == (3, 3, 10)
    assert isinstance(n.bias, float)


def test_selected_neuron_kinds(fresh):
    kinds = {
        "input": "input",
        "conv_1_1": "conv",
        "relu_1_1": "relu",
        "max_pool_1": "pool",
        "output": "output",
    }
    for layer, kind in kinds.items():
        fresh.selected = {"layer": layer, "index": 2}
        assert fresh.selected_neuron.kind == kind
    assert fresh.selected_neuron.activation == pytest.approx(fresh.probabilities["pizza"])


def test_selected_position_window_math(fresh):
    rng = np.random.default_rng(1)
    for layer in ["conv_1_1", "conv_1_2", "conv_2_1", "conv_2_2"]:
        h, w_, c = fresh.activations[layer].shape
        for _ in range(10):
            i, y, x = (int(v) for v in (rng.integers(c), rng.integers(h), rng.integers(w_)))
            fresh.selected = {"layer": layer, "index": i, "y": y, "x": x}
            n = fresh.selected_neuron
            assert n.window.shape == (3, 3, n.inputs.shape[2])
            assert (n.window * n.kernel).sum() + n.bias == pytest.approx(n.value, abs=1e-4)
            assert n.value == pytest.approx(float(fresh.activations[layer][y, x, i]))
    fresh.selected = {"layer": "max_pool_2", "index": 3, "y": 4, "x": 7}
    n = fresh.selected_neuron
    assert n.window.shape == (2, 2) and np.nanmax(n.window) == n.value


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"layer": "nope", "index": 0}, "must be one of"),
        ({"layer": "conv_1_1", "index": 10}, r"int in \[0, 9\]"),
        ({"layer": "conv_1_1", "index": -1}, r"int in \[0, 9\]"),
        ({"layer": "conv_1_1", "index": True}, "got True"),
        ({"layer": "conv_1_1", "index": "3"}, "got 3"),
        (
            {"layer": "conv_1_1", "index": 1, "y": 62, "x": 0},
            r"\['y'\] must be an int in \[0, 61\]",
        ),
        ({"layer": "conv_1_1", "index": 1, "y": 0}, r"\['x'\]"),
        ({"layer": "output", "index": 1, "y": 0, "x": 0}, "have no map"),
        ({"layer": "flatten", "index": 0}, "must be one of"),
        ({"layer": "conv_1_1", "index": 1, "evil": 1}, "unknown key"),
        ("conv_1_1", "must be None or a dict"),
        ({"layer": ["x"] * 1000, "index": 0}, "must be one of"),
    ],
)
def test_invalid_selection_from_python(fresh, value, match):
    fresh.selected = {"layer": "relu_1_1", "index": 0}
    with pytest.raises(InvalidSelection, match=match):
        fresh.selected = value
    assert fresh.selected == {"layer": "relu_1_1", "index": 0}


def test_invalid_selection_from_front_end_is_refused(fresh, monkeypatch):
    sent = []
    monkeypatch.setattr(fresh, "send_state", lambda keys=None: sent.append(keys))
    fresh.set_state({"selected": {"layer": "conv_1_1", "index": 3, "y": 1, "x": 2}})
    assert fresh.selected == {"layer": "conv_1_1", "index": 3, "y": 1, "x": 2}
    for bad in [
        {"layer": "conv_1_1", "index": 99},
        [1, 2],
        {"layer": None},
        "x" * 10**6,
        {"layer": "conv_1_1", "index": {"nested": [1]}},
    ]:
        fresh.set_state({"selected": bad})
        assert fresh.selected == {"layer": "conv_1_1", "index": 3, "y": 1, "x": 2}
    assert sent and all(k == ["selected"] for k in sent)


def test_front_end_cannot_set_python_only_traits(fresh, monkeypatch):
    monkeypatch.setattr(fresh, "send_state", lambda keys=None: None)
    before = fresh._activations
    fresh.set_state(
        {
            "_activations": {"version": 1},
            "error": "hacked",
            "busy": True,
            "_esm": "alert(1)",
            "color_scale": "global",
        }
    )
    assert fresh._activations is before and fresh.error == "" and fresh.busy is False
    assert fresh.color_scale == "global"
    fresh.set_state({"color_scale": "rainbow"})
    assert fresh.color_scale == "global"


def test_color_scale_validation_from_python(fresh):
    with pytest.raises(Exception, match=r"'color_scale' trait .* expected any of \['unit'"):
        fresh.color_scale = "rainbow"


def test_color_scale_policies_both_ways(fresh, monkeypatch):
    """The four range policies, from Python and from the front end."""
    monkeypatch.setattr(fresh, "send_state", lambda key=None: None)
    for policy in ("module", "global", "neuron", "unit"):
        fresh.set_state({"color_scale": policy})
        assert fresh.color_scale == policy
    for policy in ("neuron", "global"):
        fresh.color_scale = policy
        assert fresh.color_scale == policy
    for bad in ("local", "Unit", "per-neuron", ""):
        fresh.set_state({"color_scale": bad})
        assert fresh.color_scale == "global"


def test_upload_valid_and_invalid(fresh):
    fresh._handle_custom_msg(fresh, {"type": "upload", "name": "green.png"}, [_png()])
    assert fresh.image_name == "green.png"
    assert fresh.image[..., 1].mean() == pytest.approx(200 / 255, abs=1e-6)
    before = fresh.image.copy()
    fresh._handle_custom_msg(fresh, {"type": "upload", "name": "broken.png"}, [b"\x89PNG broken"])
    assert "Could not use broken.png" in fresh.error and "not a readable image" in fresh.error
    np.testing.assert_array_equal(fresh.image, before)
    fresh._handle_custom_msg(fresh, {"type": "upload", "name": "ok.png"}, [_png(color=(1, 2, 3))])
    assert fresh.error == ""


def test_upload_reports_crop_and_upscale(fresh):
    """The kernel tells the front end what was done to an image (shown under the toolbar)."""
    fresh._handle_custom_msg(fresh, {"type": "upload", "name": "wide.png"}, [_png((320, 200))])
    assert fresh.image_info.cropped and not fresh.image_info.scaled_up
    assert fresh._image_notice.startswith("wide.png is 320×200: centre-cropped")
    fresh._handle_custom_msg(fresh, {"type": "upload", "name": "tiny.png"}, [_png((32, 32))])
    assert fresh.image_info.scaled_up and "scaled up to 64×64" in fresh._image_notice
    fresh._handle_custom_msg(fresh, {"type": "choose", "index": 2}, [])
    assert fresh._image_notice == "" and not fresh.image_info.cropped  # 64×64 default image
    fresh._handle_custom_msg(fresh, {"type": "upload", "name": "bad.png"}, [b"nope"])
    assert fresh.error and fresh._image_notice == ""  # a refused upload keeps the last notice


def test_upload_size_cap_before_decoding(fresh):
    big = memoryview(bytearray(MAX_UPLOAD_BYTES + 1))
    fresh._handle_custom_msg(fresh, {"type": "upload", "name": "big.png"}, [big])
    assert f"uploads up to {MAX_UPLOAD_BYTES:,} bytes" in fresh.error


def test_choose_default_image(fresh):
    fresh._handle_custom_msg(fresh, {"type": "choose", "index": 6}, [])
    assert fresh.prediction == "espresso" and fresh.image_name == "espresso"
    for bad in [10, -1, "6", 6.0, None, True]:
        fresh._handle_custom_msg(fresh, {"type": "choose", "index": bad}, [])
        assert fresh.image_name == "espresso"


def test_messages_never_touch_paths(fresh, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(_png(color=(255, 0, 0)))
    before = fresh.image.copy()
    for content in [
        {"type": "upload", "name": str(secret)},
        {"type": "load", "path": str(secret)},
        {"type": "choose", "index": str(secret)},
        {"type": "eval", "code": "1"},
    ]:
        fresh._handle_custom_msg(fresh, content, [])
    np.testing.assert_array_equal(fresh.image, before)


def test_protocol_version_matches_typescript():
    ts = (ROOT / "js" / "src" / "payload.ts").read_text()
    m = re.search(r"export const PROTOCOL_VERSION = (\d+);", ts)
    assert m and int(m.group(1)) == PROTOCOL_VERSION


def test_upload_shows_busy_while_decoding(fresh):
    seen = []
    fresh.observe(lambda change: seen.append(change["new"]), "busy")
    fresh._handle_custom_msg({"type": "upload", "name": "green.png"}, [_png()])
    fresh._handle_custom_msg({"type": "upload", "name": "bad.png"}, [b"nope"])
    assert seen == [True, False, True, False]
    assert fresh.busy is False
