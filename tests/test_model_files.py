"""Malformed and absurd model files (issue 12, defect 9): every one gets a `WeightsFileError`
naming the field or tensor, within bounded time and memory; nothing is allocated from a size
before it is checked, and a large file is never read whole."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_explainer_widget import WeightsFileError, load_model, load_tiny_vgg
from cnn_explainer_widget._safetensors import dumps

from conftest import ROOT

MB = 2**20


def model_file(
    path: Path,
    specs: list[dict],
    tensors: dict[str, np.ndarray],
    input_shape: list[int],
    **fields: str,
) -> Path:
    """A model file written the way `save_model` writes one, from its parts."""
    metadata = {
        "format": "cnn-explainer-widget.model",
        "format_version": "1",
        "name": "test",
        "classes": json.dumps(["a", "b"]),
        "input_shape": json.dumps(input_shape),
        "layers": json.dumps(specs),
        "history": json.dumps({"loss": [1.0, 0.5]}),
        "best_epoch": json.dumps(2),
    }
    metadata.update(fields)
    path.write_bytes(dumps(tensors, metadata))
    return path


def small_model(path: Path, side: int = 8, activation: dict | None = None, **fields) -> Path:
    """conv 3×3 → activation → max pool over the whole map → flatten → dense → softmax."""
    layers = [
        {"name": "conv_1", "kind": "conv", "kernel_size": [3, 3], "stride": [1, 1],
         "padding": [[0, 0], [0, 0]], "features": 1, "use_bias": False},
        {"name": "act_1", "kind": "activation", "function": "relu", "options": {}},
        {"name": "pool_1", "kind": "pool", "kernel_size": [side - 2, side - 2],
         "stride": [side - 2, side - 2], "padding": [[0, 0], [0, 0]], "function": "max",
         "options": {}},
        {"name": "flatten", "kind": "flatten"},
        {"name": "output", "kind": "dense", "features": 2, "use_bias": True},
        {"name": "softmax", "kind": "softmax"},
    ]  # fmt: skip
    if activation is not None:
        layers[1].update(activation)
    tensors = {
        "conv_1.kernel": np.ones((3, 3, 1, 1), np.float32),
        "output.kernel": np.ones((1, 2), np.float32),
        "output.bias": np.zeros(2, np.float32),
    }
    return model_file(path, layers, tensors, [side, side, 1], **fields)


def test_a_valid_small_model_loads(tmp_path):
    trained = load_model(small_model(tmp_path / "ok.safetensors"))
    assert trained.input_shape == (8, 8, 1) and trained.best_epoch == 2
    assert trained.history == {"loss": [1.0, 0.5]}


def test_an_absurd_input_shape_is_refused_before_anything_is_allocated(tmp_path):
    path = small_model(tmp_path / "huge.safetensors", side=20000)
    assert path.stat().st_size < 2000  # a tiny file that would cost gigabytes
    with pytest.raises(WeightsFileError, match=r"'input_shape'.*20000"):
        load_model(path)
    with pytest.raises(WeightsFileError, match="'input_shape'"):
        load_model(small_model(tmp_path / "h2.safetensors", side=100000))


def test_activations_too_large_for_the_widget_are_refused(tmp_path):
    # 1000×1000 is a fine input side, but a layer of 4096 maps of that size is not.
    layers = [
        {"name": "conv_1", "kind": "conv", "kernel_size": [1, 1], "stride": [1, 1],
         "padding": [[0, 0], [0, 0]], "features": 4096, "use_bias": False},
        {"name": "pool_1", "kind": "pool", "kernel_size": [1000, 1000], "stride": [1000, 1000],
         "padding": [[0, 0], [0, 0]], "function": "max", "options": {}},
        {"name": "flatten", "kind": "flatten"},
        {"name": "output", "kind": "dense", "features": 2, "use_bias": False},
        {"name": "softmax", "kind": "softmax"},
    ]  # fmt: skip
    tensors = {
        "conv_1.kernel": np.ones((1, 1, 1, 4096), np.float32),
        "output.kernel": np.ones((4096, 2), np.float32),
    }
    path = model_file(tmp_path / "wide.safetensors", layers, tensors, [1000, 1000, 1])
    with pytest.raises(WeightsFileError, match=r"layer 'conv_1'.*4,096,000,000 values"):
        load_model(path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("history", "{not json", "metadata field 'history' is not valid JSON"),
        ("history", '{"loss": "low"}', r"metadata field 'history'.*list of numbers"),
        ("history", '{"loss": [1, NaN]}', r"metadata field 'history'.*list of numbers"),
        ("history", "[1, 2]", r"metadata field 'history'.*must be a table"),
        ("best_epoch", "two", "metadata field 'best_epoch' is not valid JSON"),
        ("best_epoch", "2.5", r"metadata field 'best_epoch'.*integer"),
        ("best_epoch", "7", r"metadata field 'best_epoch'.*2 epochs.*got 7"),
        ("layers", "[" * 100_000 + "]" * 100_000, "metadata field 'layers' is nested too deeply"),
        ("classes", '["a"]', r"metadata field 'classes'.*1 names? .*2 outputs"),
        ("classes", json.dumps(["x" * 10_000, "b"]), r"metadata field 'classes'.*at most"),
        ("name", "n" * 10_000, r"metadata field 'name'.*at most"),
    ],
    ids=lambda v: v[:20] if isinstance(v, str) else None,
)
def test_malformed_metadata_fields_are_named(tmp_path, field, value, message):
    path = small_model(tmp_path / "m.safetensors", **{field: value})
    with pytest.raises(WeightsFileError, match=message):
        load_model(path)


@pytest.mark.parametrize(
    ("activation", "message"),
    [
        ({"function": "leaky_relu", "options": {"bogus": 1}}, r"'act_1'.*option 'bogus'"),
        (
            {"function": "leaky_relu", "options": {"negative_slope": "x"}},
            r"'act_1'.*negative_slope",
        ),
        ({"function": "elu", "options": {"alpha": float("inf")}}, r"'act_1'.*alpha"),
        ({"function": "gelu", "options": {"approximate": 1}}, r"'act_1'.*approximate"),
        (
            {"function": "relu", "options": {"negative_slope": 0.1}},
            r"'act_1'.*option 'negative_slope'",
        ),
        ({"function": "relu", "options": []}, r"'act_1'.*options"),
    ],
    ids=lambda v: v.get("function") if isinstance(v, dict) else "",
)
def test_activation_options_are_checked(tmp_path, activation, message):
    with pytest.raises(WeightsFileError, match=message):
        load_model(small_model(tmp_path / "a.safetensors", activation=activation))


def test_valid_activation_options_load_and_run(tmp_path):
    from cnn_explainer_widget import activations

    path = small_model(
        tmp_path / "a.safetensors",
        activation={"function": "leaky_relu", "options": {"negative_slope": 0.2}},
    )
    acts = activations(np.zeros((8, 8, 1), np.float32), model=load_model(path))
    assert acts["probabilities"].shape == (2,)


# ---- the container -----------------------------------------------------------------------------


def raw_file(path: Path, header: bytes | str, body: bytes) -> Path:
    header = header.encode() if isinstance(header, str) else header
    path.write_bytes(struct.pack("<Q", len(header)) + header + body)
    return path


def test_overlapping_tensors_are_refused(tmp_path):
    header = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        }
    )
    with pytest.raises(WeightsFileError, match="corrupt safetensors"):
        load_tiny_vgg(raw_file(tmp_path / "o.safetensors", header, b"\0" * 8))


def test_duplicate_keys_are_refused(tmp_path):
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    header = '{"conv_1_1.bias": ' + entry + ', "conv_1_1.bias": ' + entry + "}"
    with pytest.raises(WeightsFileError, match=r"'conv_1_1.bias' appears twice"):
        load_tiny_vgg(raw_file(tmp_path / "d.safetensors", header, b"\0" * 4))


def test_a_deeply_nested_header_is_refused(tmp_path):
    header = '{"x": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(WeightsFileError, match="nested too deeply"):
        load_tiny_vgg(raw_file(tmp_path / "n.safetensors", header, b""))


def test_other_dtypes_and_absurd_shapes_are_refused(tmp_path):
    for info, message in [
        ({"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}, "dtype 'F64', expected F32"),
        ({"dtype": "F32", "shape": [2**40], "data_offsets": [0, 4]}, "at most"),
        ({"dtype": "F32", "shape": [1] * 20, "data_offsets": [0, 4]}, "malformed shape"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "malformed shape"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}, "malformed entry"),
    ]:
        path = raw_file(tmp_path / "t.safetensors", json.dumps({"w": info}), b"\0" * 8)
        with pytest.raises(WeightsFileError, match=message):
            load_tiny_vgg(path)


CHILD = r"""
import sys, time
from cnn_explainer_widget import WeightsFileError, load_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

baseline = status("VmRSS")
try:
    load_model(sys.argv[1])
    print("loaded")
except WeightsFileError as exc:
    print("WeightsFileError:", str(exc)[-200:])
print(status("VmHWM") - baseline)
"""


def test_a_3_gb_file_is_not_read_whole(tmp_path):
    """A 3 GB file (sparse: it costs no disk) declaring one 3 GB tensor: refused from its
    header, without reading the file, in a fresh process whose peak memory is measured."""
    n = 3 * 2**30 // 4
    header = json.dumps({"big": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}})
    path = raw_file(tmp_path / "big.safetensors", header, b"")
    with path.open("r+b") as f:
        f.truncate(8 + len(header) + 4 * n)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    message, growth = done.stdout.strip().splitlines()[-2:]
    print(f"\n3 GB model file: {message}; peak +{int(growth) / MB:.0f} MB")
    assert message.startswith("WeightsFileError") and "'big'" in message, done.stdout
    assert int(growth) < 100 * MB, f"+{int(growth) / MB:.0f} MB"
