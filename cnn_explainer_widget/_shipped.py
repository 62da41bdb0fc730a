"""The shipped Tiny VGG as layer records and weights, read from its file without Flax.

`tiny_vgg_network` is what a fresh widget shows: the original's network as a `Network`, built
straight from the weights file (no Flax module, no random initialisation), once per process.
`cnn_explainer_widget.tiny_vgg` has the same network as a Flax NNX module (`TinyVGG`).
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from pathlib import Path

import numpy as np

from cnn_explainer_widget._safetensors import WeightsFileError, load_file
from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.network import Network

#: The ten output classes of the shipped Tiny VGG, in output order.
CLASS_NAMES: tuple[str, ...] = (
    "lifeboat",
    "ladybug",
    "pizza",
    "bell pepper",
    "school bus",
    "koala",
    "espresso",
    "red panda",
    "orange",
    "sport car",
)

#: Input shape (H, W, C) of the shipped Tiny VGG.
INPUT_SHAPE: tuple[int, int, int] = (64, 64, 3)

#: Layer names of Tiny VGG in order, as in the original.
LAYER_NAMES: tuple[str, ...] = (
    "conv_1_1",
    "relu_1_1",
    "conv_1_2",
    "relu_1_2",
    "max_pool_1",
    "conv_2_1",
    "relu_2_1",
    "conv_2_2",
    "relu_2_2",
    "max_pool_2",
    "flatten",
    "output",
    "softmax",
)

_WEIGHTS_NAME = "tiny_vgg.safetensors"


def weights_path() -> Path:
    """Path of the shipped Tiny VGG weights file."""
    packaged = resources.files("cnn_explainer_widget") / "weights" / _WEIGHTS_NAME
    if packaged.is_file():
        return Path(str(packaged))
    # An editable install (or a plain checkout) keeps the file in the top-level weights/ folder.
    return Path(__file__).resolve().parents[1] / "weights" / _WEIGHTS_NAME


@functools.cache
def tiny_vgg_network() -> Network:
    """The shipped Tiny VGG as a `Network` (built once per process).

    Built from the weights file and `_tiny_vgg_layers` without making the Flax module (its
    abstract evaluation and the staging of each weight cost a fresh widget ~0.3 s); the same
    checks of every tensor's name and shape as `load_tiny_vgg`, and the same `Network`
    (tests/test_weights.py compares the two).
    """
    tensors, _ = load_file(weights_path())
    layers = _tiny_vgg_layers()
    expected: dict[str, tuple[int, ...]] = {}
    for layer in layers:
        if layer.kind == "conv":
            expected[f"{layer.name}.kernel"] = (3, 3, layer.input_shape[2], layer.output_shape[2])
        elif layer.kind == "dense":
            expected[f"{layer.name}.kernel"] = (layer.input_shape[0], layer.output_shape[0])
        else:
            continue
        expected[f"{layer.name}.bias"] = (layer.output_shape[-1],)
    check_tensors(tensors, expected)
    params: dict[str, dict[str, np.ndarray | None]] = {
        la.name: {"kernel": tensors[f"{la.name}.kernel"], "bias": tensors[f"{la.name}.bias"]}
        for la in layers
        if la.kind in ("conv", "dense")
    }
    return Network(layers, params, INPUT_SHAPE, CLASS_NAMES, name="Tiny VGG")


def _tiny_vgg_layers() -> list[Layer]:
    """`TinyVGG`'s layer records, as `network_from_layers` describes them."""
    layers: list[Layer] = []
    shape: tuple[int, ...] = INPUT_SHAPE
    valid = ((0, 0), (0, 0))
    for name in LAYER_NAMES:
        out: tuple[int, ...]
        if name.startswith("conv"):
            out = (shape[0] - 2, shape[1] - 2, 10)
            layers.append(Layer(name, "conv", shape, out, (3, 3), (1, 1), valid))
        elif name.startswith("relu"):
            out = shape
            layers.append(Layer(name, "activation", shape, out, function="relu"))
        elif name.startswith("max_pool"):
            out = (shape[0] // 2, shape[1] // 2, shape[2])
            layers.append(Layer(name, "pool", shape, out, (2, 2), (2, 2), valid, function="max"))
        elif name == "flatten":
            out = (math.prod(shape),)
            layers.append(Layer(name, "flatten", shape, out))
        elif name == "output":
            out = (len(CLASS_NAMES),)
            layers.append(Layer(name, "dense", shape, out))
        else:
            out = shape
            layers.append(Layer(name, "softmax", shape, out))
        shape = out
    return layers


def check_tensors(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    """`WeightsFileError` naming a missing, unexpected or wrongly shaped tensor."""
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise WeightsFileError(f"weights file lacks tensor(s) {missing}")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise WeightsFileError(f"weights file has unexpected tensor(s) {extra}")
    for name, shape in expected.items():
        if tensors[name].shape != shape:
            raise WeightsFileError(
                f"tensor {name!r} has shape {tensors[name].shape}, expected {shape}"
            )


__all__ = [
    "CLASS_NAMES",
    "INPUT_SHAPE",
    "LAYER_NAMES",
    "tiny_vgg_network",
    "weights_path",
]
