"""Tiny VGG, the original CNN Explainer's network, as a Flax NNX module with its trained weights.

`load_tiny_vgg` builds the module straight from the shipped weights file (no random init);
`tiny_vgg_network` (from `cnn_explainer_widget._shipped`) is that network as a `Network`, built
once per process without Flax. `make_tiny_vgg` gives the same architecture as an
``nnx.Sequential`` for any input size, to train from scratch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from cnn_explainer_widget._safetensors import load_file
from cnn_explainer_widget._shipped import (
    CLASS_NAMES,
    INPUT_SHAPE,
    LAYER_NAMES,
    check_tensors,
    tiny_vgg_network,
    weights_path,
)
from cnn_explainer_widget.flax_module import Flatten, network_from_layers
from cnn_explainer_widget.layers import conv_output_size
from cnn_explainer_widget.network import Network


class TinyVGG(nnx.Module):
    """The original's Tiny VGG: two blocks of (conv 3×3 → ReLU) ×2 → max pool 2×2, then dense.

    Convolutions use VALID padding, as in the original (``nnx.Conv`` defaults to SAME). The
    flatten is Keras's (h, w, c) order, so the original's dense kernel applies unchanged.
    Calling the module on a batch ``(N, 64, 64, 3)`` returns the logits ``(N, 10)``.
    """

    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs) -> None:
        conv = functools.partial(nnx.Conv, kernel_size=(3, 3), padding="VALID", rngs=rngs)
        self.conv_1_1 = conv(3, 10)
        self.conv_1_2 = conv(10, 10)
        self.conv_2_1 = conv(10, 10)
        self.conv_2_2 = conv(10, 10)
        self.flatten = Flatten()
        self.output = nnx.Linear(13 * 13 * 10, num_classes, rngs=rngs)

    def layers(self) -> list[Any]:
        """The network as a flat list of modules and functions, in order."""
        pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
        return [
            self.conv_1_1, nnx.relu, self.conv_1_2, nnx.relu, pool,
            self.conv_2_1, nnx.relu, self.conv_2_2, nnx.relu, pool,
            self.flatten, self.output, nnx.softmax,
        ]  # fmt: skip

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits for a batch of images ``(N, 64, 64, 3)`` in [0, 1]."""
        for layer in self.layers()[:-1]:
            x = layer(x)
        return x


def _expected_shapes(model: nnx.Module) -> dict[str, tuple[int, ...]]:
    state = nnx.state(model, nnx.Param)
    return {".".join(str(k) for k in path): tuple(v.shape) for path, v in nnx.to_flat_state(state)}


def load_tiny_vgg(path: str | Path | None = None) -> TinyVGG:
    """Build `TinyVGG` from a weights file (default: the shipped, trained one).

    The module's structure comes from `nnx.eval_shape`, so no random initialisation runs; every
    parameter is then taken from the file after checking its name and shape.

    Raises
    ------
    WeightsFileError
        If the file is missing, truncated, lacks a tensor, has an extra one, or a tensor's shape
        is wrong; the message names the tensor.
    """
    tensors, _ = load_file(path if path is not None else weights_path())
    abstract = nnx.eval_shape(lambda: TinyVGG(rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    check_tensors(tensors, _expected_shapes(abstract))
    flat = nnx.to_flat_state(state)
    values = {".".join(str(k) for k in p): v for p, v in flat}
    for name, variable in values.items():
        variable.set_value(jnp.asarray(tensors[name]))
    return nnx.merge(graphdef, state)


def network_from_tiny_vgg(model: TinyVGG, classes: Any = None) -> Network:
    """``model`` as a `Network` with the original's layer names (`CLASS_NAMES` for 10 outputs)."""
    n = model.output.kernel.shape[1]
    if classes is None and n == len(CLASS_NAMES):
        classes = CLASS_NAMES
    return network_from_layers(
        model.layers(), INPUT_SHAPE, classes, names=LAYER_NAMES, name="Tiny VGG"
    )


def make_tiny_vgg(
    input_shape: Sequence[int] = (64, 64, 3), num_classes: int = 10, *, rngs: nnx.Rngs
) -> nnx.Sequential:
    """Tiny VGG's architecture for any input size, as an ``nnx.Sequential``.

    Two blocks of (conv 3×3 VALID → ReLU) ×2 → max pool 2×2, 10 channels each, then flatten,
    a dense layer with ``num_classes`` outputs and softmax: the layers of `TinyVGG` (whose
    names `train` gives them in the widget), sized for ``input_shape``.
    """
    h, w, c = (int(v) for v in input_shape)
    for _ in range(2):
        h, w = conv_output_size(h, 3, 1, 0, 0), conv_output_size(w, 3, 1, 0, 0)
        h, w = conv_output_size(h, 3, 1, 0, 0), conv_output_size(w, 3, 1, 0, 0)
        h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"input shape {tuple(input_shape)} is too small for Tiny VGG (≥ 16×16)")
    conv = functools.partial(nnx.Conv, kernel_size=(3, 3), padding="VALID", rngs=rngs)
    pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
    return nnx.Sequential(
        conv(c, 10), nnx.relu, conv(10, 10), nnx.relu, pool,
        conv(10, 10), nnx.relu, conv(10, 10), nnx.relu, pool,
        Flatten(), nnx.Linear(h * w * 10, num_classes, rngs=rngs), nnx.softmax,
    )  # fmt: skip


__all__ = [
    "CLASS_NAMES",
    "INPUT_SHAPE",
    "LAYER_NAMES",
    "TinyVGG",
    "load_tiny_vgg",
    "make_tiny_vgg",
    "network_from_tiny_vgg",
    "tiny_vgg_network",
    "weights_path",
]
