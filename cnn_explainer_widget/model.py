"""A model ready to explain, whatever its source, and `as_network`, which makes it a `Network`.

Model sources: the shipped Tiny VGG (`cnn_explainer_widget.tiny_vgg`), a user's Flax module
(`cnn_explainer_widget.flax_module`) and a saved file (`cnn_explainer_widget.model_file`).
`as_network` picks the source for what it is given; `TrainedModel` is a Flax module with what
the widget needs to explain it (classes, input shape, layer names), as `train` returns it and
`load_model` reads it back. `activations` runs one forward pass of any of them.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_explainer_widget._arrays import as_images
from cnn_explainer_widget._lazy import lazy_import
from cnn_explainer_widget._shipped import tiny_vgg_network
from cnn_explainer_widget.network import Network

if TYPE_CHECKING:
    from flax import nnx

    from cnn_explainer_widget import flax_module, model_file, tiny_vgg, traced
else:
    # Model sources that need Flax, imported when a model is given (one made with Flax, so
    # Flax is imported already) or a file loaded: the shipped Tiny VGG's widget needs none.
    flax_module = lazy_import("cnn_explainer_widget.flax_module")
    model_file = lazy_import("cnn_explainer_widget.model_file")
    tiny_vgg = lazy_import("cnn_explainer_widget.tiny_vgg")
    traced = lazy_import("cnn_explainer_widget.traced")


@dataclass(eq=False)
class TrainedModel:
    """A trained network with what the widget needs to explain it.

    Pass it straight to ``CNNExplainer(model=...)``, `as_network` or `activations`.

    Attributes
    ----------
    model:
        The Flax NNX module (an ``nnx.Sequential`` or a `TinyVGG`) with its trained weights.
    classes:
        One name per output, in output order.
    input_shape:
        ``(H, W, C)`` of one input image.
    history:
        Per-epoch metrics: ``loss`` and ``accuracy`` on the training data, and ``val_loss`` and
        ``val_accuracy`` on the validation data (empty lists without validation data).
    best_epoch:
        The epoch (counting from 1) whose weights the model holds: the one with the lowest
        validation loss (training loss without validation data); None if not trained here.
    layer_names:
        Names for the model's layers in the widget (one per item of the ``Sequential``, softmax
        included), or None for automatic names (``conv_1``, ``relu_1``, ...).
    name:
        A display name.
    """

    model: nnx.Module
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    layer_names: tuple[str, ...] | None = None
    name: str = "network"

    def __post_init__(self) -> None:
        self.classes = tuple(str(c) for c in self.classes)
        self.input_shape = tuple(int(v) for v in self.input_shape)  # type: ignore[assignment]
        if self.layer_names is not None:
            self.layer_names = tuple(self.layer_names)

    def network(self) -> Network:
        """The model as a `Network` (what the widget explains), with its weights copied now."""
        return as_network(self)

    def predict(self, images: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, classes)`` for images ``(N, H, W, C)`` (or one image).

        Images are uint8, or floats in [0, 1], shaped like `input_shape` (a grayscale model
        also takes ``(N, H, W)``).
        """
        x = as_images(images, self.input_shape)
        single = x.ndim == 3
        probs = flax_module.probabilities(
            self.model, x[None] if single else x, batch_size, len(self.classes)
        )
        return probs[0] if single else probs

    def accuracy(self, images: Any, labels: Any) -> float:
        """Fraction of ``images`` whose most probable class is ``labels`` (integer indices)."""
        labels = np.asarray(labels)
        probs = self.predict(images)
        if probs.ndim == 1:
            probs = probs[None]
        if labels.shape != probs.shape[:1]:
            raise ValueError(f"{len(labels)} labels given for {len(probs)} images")
        return float((probs.argmax(axis=-1) == labels).mean())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save weights, architecture and class names to one ``.safetensors`` file.

        `cnn_explainer_widget.load_model` rebuilds the model from the file alone.
        """
        return model_file.write_model_file(self.network(), self.history, self.best_epoch, path)


def load_model(path: str | os.PathLike[str]) -> TrainedModel:
    """Load a model saved with `TrainedModel.save`, ready for ``CNNExplainer(model=...)``.

    Raises
    ------
    WeightsFileError
        If the file is missing or corrupt, is not a model file, or a metadata field or tensor
        is missing or malformed; the message names the field or tensor.
    """
    saved = model_file.read_model_file(path)
    return TrainedModel(
        model=saved.model,
        classes=saved.classes,
        input_shape=saved.input_shape,
        history=saved.history,
        best_epoch=saved.best_epoch,
        layer_names=saved.layer_names,
        name=saved.name,
    )


def as_network(
    model: Any,
    classes: Any = None,
    input_shape: tuple[int, int, int] | None = None,
) -> Network:
    """Turn a `TinyVGG`, any Flax NNX module, a `TrainedModel` or a `Network` into a `Network`.

    An ``nnx.Sequential`` is read item by item (`cnn_explainer_widget.flax_module`); any other
    ``nnx.Module`` from what its forward pass computes (`cnn_explainer_widget.traced`), which
    needs ``input_shape``. ``classes`` and ``input_shape`` override a `TrainedModel`'s own.
    """
    if isinstance(model, Network):
        return model
    if isinstance(model, TrainedModel):
        classes = model.classes if classes is None else classes
        input_shape = model.input_shape if input_shape is None else input_shape
        if model.layer_names is not None and flax_module.is_sequential(model.model):
            return flax_module.network_from_layers(
                list(model.model.layers),
                input_shape,
                classes,
                names=model.layer_names,
                name=model.name,
            )
        return as_network(model.model, classes, input_shape)
    if isinstance(model, tiny_vgg.TinyVGG):
        return tiny_vgg.network_from_tiny_vgg(model, classes)
    if _is_traced(model):
        if input_shape is None:
            raise ValueError(
                f"give input_shape=(H, W, C) for this {type(model).__name__}: any nnx.Module "
                "other than a plain nnx.Sequential (one with batch norm, grouped or dilated "
                "convolutions too) is read from what it computes on an input of that size"
            )
        return traced.network_from_module(model, input_shape, classes)
    if flax_module.is_sequential(model):
        return flax_module.network_from_sequential(model, classes, input_shape)
    raise TypeError(
        f"expected a Flax NNX module (a TinyVGG, an nnx.Sequential or any nnx.Module), a "
        f"TrainedModel or a Network, got {type(model).__name__}"
    )


def activations(x: np.ndarray, model: Any = None, ablate: Any = None) -> dict[str, np.ndarray]:
    """Every layer's output for one image ``(H, W, C)`` or a batch ``(N, H, W, C)``.

    Parameters
    ----------
    x:
        Float image(s) in [0, 1], e.g. from `load_image`.
    model:
        ``None`` for the shipped Tiny VGG, or a `TinyVGG`, any Flax NNX module (another than
        an ``nnx.Sequential`` is read at the size of ``x``), a `TrainedModel` or a `Network`.
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
    shape = tuple(np.shape(x))[-3:] if np.ndim(x) >= 3 else None
    return resolve_network(model, shape).activations(x, ablate=ablate)


#: For each user model: the structure it had and the Network built for it (weak references).
_networks: weakref.WeakKeyDictionary[Any, tuple[Any, Network]] = weakref.WeakKeyDictionary()


def resolve_network(model: Any, input_shape: tuple[int, ...] | None = None) -> Network:
    """``model`` as a `Network` (None: the shipped Tiny VGG), with its current weights.

    ``input_shape`` is used for a model that does not say its own (an ``nnx.Module`` other
    than a ``Sequential``). A user's model is built into a `Network` once per structure. A
    model may be trained further between calls, so its weights are read again every time (the
    arrays themselves, no copy); the rest (layer records, inferred input shape, compiled pass)
    is kept as long as the model's structure (`_structure`) is the same.
    """
    if model is None:
        return tiny_vgg_network()
    if isinstance(model, Network):
        return model
    read_by_tracing = _is_traced(model)  # asked once: 11 µs for a 12-item Sequential
    shape: Any = input_shape if read_by_tracing else None
    structure = _structure(model, read_by_tracing, shape)
    try:
        cached = _networks.get(model)
    except TypeError:  # not weak-referenceable: no caching
        return as_network(model, input_shape=shape)
    if cached is not None and structure is not None and _same(cached[0], structure):
        network = cached[1]
        try:
            network.set_weights(_weights(model, network, read_by_tracing))
        except (ValueError, KeyError):  # another shape or parameter: not the same structure
            pass
        else:
            return network
    network = as_network(model, input_shape=shape)
    if structure is not None:
        _networks[model] = (structure, network)
    return network


def _value(variable: Any) -> Any:
    """An ``nnx.Param``'s array as it is.

    A plain array held without a read hook is the parameter's value: taken as it is (Flax's
    ``get_value`` copies the tree first, 4 µs a parameter); otherwise ``get_value`` (cheaper
    than ``[...]``).
    """
    get_raw = getattr(variable, "get_raw_value", None)
    if get_raw is not None and not variable.has_metadata("on_get_value"):
        raw = get_raw()
        if type(raw) is np.ndarray or type(raw).__name__ == "ArrayImpl":  # not a jax Ref
            return raw
    get = getattr(variable, "get_value", None)
    return get() if get is not None else variable[...]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. an array among a partial's keywords
        return False


def _items(model: Any) -> list[Any] | None:
    """The layers and functions a TinyVGG or an ``nnx.Sequential`` applies, in order."""
    if isinstance(model, tiny_vgg.TinyVGG):
        return model.layers()
    if flax_module.is_sequential(model):
        return list(model.layers)
    return None


def _is_traced(model: Any) -> bool:
    """Whether ``model`` is read by tracing: not a TinyVGG nor a Sequential of plain layers."""
    inner = model.model if isinstance(model, TrainedModel) else model
    if flax_module.is_sequential(inner):
        return flax_module.needs_tracing(inner) is not None
    return _items(inner) is None and traced.is_module(inner)


def _structure(
    model: Any, read_by_tracing: bool, input_shape: tuple[int, ...] | None = None
) -> Any:
    """Everything but the weights that `as_network` reads from ``model``; None: do not cache.

    ``read_by_tracing``: `_is_traced` of ``model``.
    """
    if isinstance(model, TrainedModel):
        inner = _structure(model.model, read_by_tracing, model.input_shape)
        if inner is None:
            return None
        return (inner, model.classes, model.input_shape, model.layer_names, model.name)
    if read_by_tracing:
        return ("traced", traced.structure(model), input_shape)
    items = _items(model)
    if items is None:
        return None
    return (type(model), tuple(flax_module.item_structure(item) for item in items))


def _weights(model: Any, network: Network, read_by_tracing: bool) -> dict[str, dict[str, Any]]:
    """``model``'s current kernels and biases, keyed by ``network``'s conv and dense layers.

    ``read_by_tracing``: `_is_traced` of ``model``.
    """
    inner = model.model if isinstance(model, TrainedModel) else model
    if read_by_tracing:
        return traced.module_weights(inner, network)
    items = _items(inner)
    assert items is not None
    holders = flax_module.weight_holders(items)
    names = [la.name for la in network.layers if la.kind in ("conv", "dense")]
    return {
        name: {
            "kernel": _value(item.kernel),
            "bias": None if item.bias is None else _value(item.bias),
        }
        for name, item in zip(names, holders, strict=True)
    }


__all__ = ["TrainedModel", "activations", "as_network", "load_model"]
