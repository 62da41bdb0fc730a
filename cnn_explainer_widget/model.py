"""Tiny VGG, the original CNN Explainer's network, as a Flax NNX module with its trained weights.

`load_tiny_vgg` builds the module straight from the shipped weights file (no random init), and
`activations` runs one jit-compiled forward pass that returns every layer's output.
"""

from __future__ import annotations

import functools
import json
import weakref
from importlib import resources
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cnn_explainer_widget._safetensors import WeightsFileError, load_file
from cnn_explainer_widget.network import Flatten, Network, network_from_layers

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


def weights_path() -> Path:
    """Path of the shipped Tiny VGG weights file."""
    packaged = resources.files("cnn_explainer_widget") / "weights" / _WEIGHTS_NAME
    if packaged.is_file():
        return Path(str(packaged))
    # An editable install (or a plain checkout) keeps the file in the top-level weights/ folder.
    return Path(__file__).resolve().parents[1] / "weights" / _WEIGHTS_NAME


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
    expected = _expected_shapes(abstract)
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
    flat = nnx.to_flat_state(state)
    values = {".".join(str(k) for k in p): v for p, v in flat}
    for name, variable in values.items():
        variable.set_value(jnp.asarray(tensors[name]))
    return nnx.merge(graphdef, state)


@functools.cache
def tiny_vgg_network() -> Network:
    """The shipped Tiny VGG as a `Network` (built once per process)."""
    return as_network(load_tiny_vgg(), classes=CLASS_NAMES)


def as_network(
    model: Any,
    classes: Any = None,
    input_shape: tuple[int, int, int] | None = None,
) -> Network:
    """Turn a `TinyVGG`, an ``nnx.Sequential``, a `TrainedModel` or a `Network` into a `Network`.

    ``classes`` and ``input_shape`` override a `TrainedModel`'s own.
    """
    from cnn_explainer_widget.training import TrainedModel  # training.py imports this module

    if isinstance(model, Network):
        return model
    if isinstance(model, TrainedModel):
        classes = model.classes if classes is None else classes
        input_shape = model.input_shape if input_shape is None else input_shape
        if model.layer_names is not None and isinstance(model.model, nnx.Sequential):
            return network_from_layers(
                list(model.model.layers),
                input_shape,
                classes,
                names=model.layer_names,
                name=model.name,
            )
        return as_network(model.model, classes, input_shape)
    if isinstance(model, TinyVGG):
        n = model.output.kernel.shape[1]
        if classes is None and n == len(CLASS_NAMES):
            classes = CLASS_NAMES
        return network_from_layers(
            model.layers(), INPUT_SHAPE, classes, names=LAYER_NAMES, name="Tiny VGG"
        )
    if isinstance(model, nnx.Sequential):
        if input_shape is None:
            input_shape = _infer_input_shape(model)
        return network_from_layers(list(model.layers), input_shape, classes, name="network")
    raise TypeError(
        f"expected a TinyVGG, an nnx.Sequential, a TrainedModel or a Network, got "
        f"{type(model).__name__}"
    )


def _infer_input_shape(model: nnx.Sequential) -> tuple[int, int, int]:
    """Guess (H, W, C) from the first Conv and the first Linear's input size.

    Strides and pooling make several sizes fit (e.g. 29 to 32 for two stride-2 layers); of
    those the one with the most factors of two wins (32), then the smallest (Tiny VGG: 64).
    """
    convs = [m for m in model.layers if isinstance(m, nnx.Conv)]
    if not convs:
        raise ValueError("cannot infer the input shape: give input_shape=(H, W, C)")
    channels = int(convs[0].kernel.shape[2])
    fits: list[int] = []
    for size in range(1, 513):
        try:
            network_from_layers(list(model.layers), (size, size, channels))
        except ValueError:
            if fits:  # the sizes that fit are consecutive
                break
            continue
        fits.append(size)
    if not fits:
        raise ValueError("cannot infer a square input shape: give input_shape=(H, W, C)")
    size = max(fits, key=lambda n: ((n & -n), -n))
    return (size, size, channels)


def activations(x: np.ndarray, model: Any = None, ablate: Any = None) -> dict[str, np.ndarray]:
    """Every layer's output for one image ``(H, W, C)`` or a batch ``(N, H, W, C)``.

    Parameters
    ----------
    x:
        Float image(s) in [0, 1], e.g. from `load_image`.
    model:
        ``None`` for the shipped Tiny VGG, or a `TinyVGG`, ``nnx.Sequential`` or `Network`.
    ablate:
        Neurons to switch off, e.g. ``{"conv_1_2": [3, 5]}``: those channels of those layers'
        outputs are set to 0 and every later layer is recomputed (a dense layer's indices are
        its units). ``None`` or ``{}``: the plain forward pass.

    Returns
    -------
    dict
        ``input``, one entry per layer (``conv_1_1`` … ``max_pool_2``, ``flatten``), then
        ``logits`` and ``probabilities``; spatial maps are ``(H, W, C)`` (with a leading ``N``
        for a batch).
    """
    network = tiny_vgg_network() if model is None else _cached_network(model)
    return network.activations(x, ablate=ablate)


#: The Network last built for each user model, so its compiled forward pass is reused.
_networks: weakref.WeakKeyDictionary[Any, Network] = weakref.WeakKeyDictionary()


def _cached_network(model: Any) -> Network:
    """``model`` as a `Network` with its current weights, compiling its forward pass once.

    A model may be trained further between calls, so its weights are read again every time;
    only the compiled forward pass is kept, as long as the architecture is the same.
    """
    if isinstance(model, Network):
        return model
    fresh = as_network(model)
    try:
        cached = _networks.get(model)
    except TypeError:  # not weak-referenceable: no caching
        return fresh
    if cached is not None and cached.layers == fresh.layers and cached.same_structure(fresh):
        cached.use_weights_of(fresh)
        return cached
    _networks[model] = fresh
    return fresh


def class_names_from_metadata(metadata: dict[str, str]) -> tuple[str, ...]:
    """Class names stored in a weights file's metadata."""
    return tuple(json.loads(metadata["classes"]))
