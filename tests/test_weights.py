"""The shipped weights: reproducible conversion and loud failures on broken files."""

from __future__ import annotations

import importlib.util
import json
import struct

import numpy as np
import pytest

from cnn_explainer_widget import WeightsFileError, load_tiny_vgg
from cnn_explainer_widget._safetensors import dumps, load_file
from cnn_explainer_widget.tiny_vgg import CLASS_NAMES, weights_path

from conftest import ORIGINAL, ROOT


def _convert_module():
    spec = importlib.util.spec_from_file_location("convert", ROOT / "weights" / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (ORIGINAL / "weights").is_dir(), reason="needs ../shared")
def test_conversion_reproduces_shipped_file_bit_for_bit():
    fresh = _convert_module().convert(ORIGINAL / "weights")
    assert fresh == weights_path().read_bytes()


@pytest.mark.skipif(not (ORIGINAL / "weights").is_dir(), reason="needs ../shared")
def test_shipped_values_equal_the_original_shard():
    manifest = json.loads((ORIGINAL / "weights" / "model.json").read_text())["weightsManifest"]
    raw = np.frombuffer((ORIGINAL / "weights" / "group1-shard1of1.bin").read_bytes(), "<f4")
    assert raw.size == 19920
    tensors, metadata = load_file(weights_path())
    offset = 0
    for spec in manifest[0]["weights"]:
        n = int(np.prod(spec["shape"]))
        ours = tensors[spec["name"].replace("/", ".")]
        np.testing.assert_array_equal(ours.ravel(), raw[offset : offset + n])
        offset += n
    assert json.loads(metadata["classes"]) == list(CLASS_NAMES)


def test_model_params_come_from_file():
    model = load_tiny_vgg()
    tensors, _ = load_file(weights_path())
    np.testing.assert_array_equal(
        np.asarray(model.conv_2_1.kernel[...]), tensors["conv_2_1.kernel"]
    )
    np.testing.assert_array_equal(np.asarray(model.output.bias[...]), tensors["output.bias"])


def _tensors():
    return load_file(weights_path())[0]


def test_missing_file(tmp_path):
    with pytest.raises(WeightsFileError, match="weights file not found"):
        load_tiny_vgg(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path):
    data = weights_path().read_bytes()
    p = tmp_path / "cut.safetensors"
    p.write_bytes(data[: len(data) - 20])
    with pytest.raises(WeightsFileError, match="tensor 'output.bias' is truncated"):
        load_tiny_vgg(p)
    p.write_bytes(data[:5])
    with pytest.raises(WeightsFileError, match="truncated"):
        load_tiny_vgg(p)
    p.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(WeightsFileError, match="bad header length"):
        load_tiny_vgg(p)


def test_wrong_name(tmp_path):
    t = _tensors()
    t["conv_1_1.kernal"] = t.pop("conv_1_1.kernel")
    p = tmp_path / "w.safetensors"
    p.write_bytes(dumps(t))
    with pytest.raises(WeightsFileError, match=r"lacks tensor\(s\) \['conv_1_1.kernel'\]"):
        load_tiny_vgg(p)


def test_extra_tensor(tmp_path):
    t = _tensors()
    t["conv_9.kernel"] = np.zeros(3, np.float32)
    p = tmp_path / "w.safetensors"
    p.write_bytes(dumps(t))
    with pytest.raises(WeightsFileError, match="unexpected tensor.*conv_9.kernel"):
        load_tiny_vgg(p)


def test_wrong_shape(tmp_path):
    t = _tensors()
    t["conv_2_2.kernel"] = t["conv_2_2.kernel"][:, :, :, :5]
    p = tmp_path / "w.safetensors"
    p.write_bytes(dumps(t))
    with pytest.raises(WeightsFileError, match=r"'conv_2_2.kernel' has shape \(3, 3, 10, 5\)"):
        load_tiny_vgg(p)


def test_corrupt_header(tmp_path):
    p = tmp_path / "w.safetensors"
    p.write_bytes(struct.pack("<Q", 4) + b"{{{{" + b"\0" * 16)
    with pytest.raises(WeightsFileError, match="corrupt weights header"):
        load_tiny_vgg(p)


def test_shipped_network_equals_the_flax_module_described():
    """tiny_vgg_network() skips the Flax module (cold start); it must be the same Network."""
    from cnn_explainer_widget.tiny_vgg import network_from_tiny_vgg, tiny_vgg_network

    direct, via_flax = tiny_vgg_network(), network_from_tiny_vgg(load_tiny_vgg())
    assert direct.layers == via_flax.layers
    assert (direct.input_shape, direct.classes, direct.name) == (
        via_flax.input_shape,
        via_flax.classes,
        via_flax.name,
    )
    assert direct.params.keys() == via_flax.params.keys()
    for name, p in via_flax.params.items():
        for key, value in p.items():
            np.testing.assert_array_equal(direct.params[name][key], value)


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_shipped_network_checks_every_tensor(tmp_path, monkeypatch, damage):
    from cnn_explainer_widget import _shipped

    t = _tensors()
    if damage == "missing":
        del t["output.bias"]
        message = r"lacks tensor\(s\) \['output.bias'\]"
    else:
        t["conv_1_1.kernel"] = t["conv_1_1.kernel"][:2]
        message = r"'conv_1_1.kernel' has shape \(2, 3, 3, 10\)"
    p = tmp_path / "w.safetensors"
    p.write_bytes(dumps(t))
    monkeypatch.setattr(_shipped, "weights_path", lambda: p)
    _shipped.tiny_vgg_network.cache_clear()
    try:
        with pytest.raises(WeightsFileError, match=message):
            _shipped.tiny_vgg_network()
    finally:
        _shipped.tiny_vgg_network.cache_clear()
