"""The user's Flax module as a `Network`: an ``nnx.Sequential`` (or a list) of supported layers.

`network_from_layers` reads each item's kind, hyperparameters and weights into `Layer` records
(see the README's "Your own network" section for what is supported) and refuses anything else
with an error naming the item's position and what is accepted; `infer_input_shape` finds the
input size of a ``Sequential`` that does not say it, only when exactly one size fits. `Flatten`
is the flatten layer such networks use (Keras's order, as the original's Tiny VGG).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from typing import Any, TypeGuard

import jax
import numpy as np
from flax import nnx

from cnn_explainer_widget._sequential_items import (
    SUPPORTED,
    Flatten,
    Unsupported,
    activation_options,
    describe_item,
    item_layer,
)
from cnn_explainer_widget._text import short
from cnn_explainer_widget.layers import (
    ACTIVATION_OPTIONS,
    Layer,
)
from cnn_explainer_widget.network import Network

#: Layer names that would clash with other entries of the activations dict and the selection.
RESERVED_NAMES: tuple[str, ...] = ("input", "logits", "probabilities")


def _check_names(names: Sequence[str], count: int) -> None:
    if isinstance(names, str) or len(names) != count:
        raise ValueError(f"give one layer name per item ({count}), got {short(names)}")
    seen: set[str] = set()
    for i, given in enumerate(names):
        if not isinstance(given, str) or not given:
            raise ValueError(f"layer {i}: its name must be a non-empty string, got {short(given)}")
        if given in RESERVED_NAMES:
            raise ValueError(
                f"layer {i}: the name {given!r} is reserved (the activations also hold "
                f"{', '.join(RESERVED_NAMES)}); choose another name"
            )
        if given in seen:
            raise ValueError(f"layer {i}: the name {given!r} is used by an earlier layer")
        seen.add(given)


def _describe(
    items: Sequence[Any],
    input_shape: Sequence[int],
    names: Sequence[str] | None,
    read: bool,
) -> tuple[list[Layer], dict[str, dict[str, np.ndarray | None]], list[int]]:
    """The layer records, (if ``read``) weights, and the positions of the Dropout items left out."""
    shape: tuple[int, ...] = tuple(int(v) for v in input_shape)
    layers: list[Layer] = []
    params: dict[str, dict[str, np.ndarray | None]] = {}
    used: set[str] = set(names or ())
    counters: dict[str, int] = {}
    dropped: list[int] = []

    def auto_name(base: str, numbered: bool) -> str:
        # "flatten" and "softmax" stay plain the first time; the rest count from 1.
        while True:
            counters[base] = counters.get(base, 0) + 1
            n = counters[base]
            candidate = base if not numbered and n == 1 else f"{base}_{n}"
            if candidate not in used:
                used.add(candidate)
                return candidate

    if not items:
        raise ValueError("the network has no layers")
    if names is not None:
        _check_names(names, len(items))
    for i, item in enumerate(items):
        where = f"layer {i} ({describe_item(item)})"
        if isinstance(item, nnx.Dropout):
            dropped.append(i)  # the identity at inference
            continue
        try:
            layer, weights = item_layer(item, i, i == len(items) - 1, shape, read)
        except Unsupported as exc:
            raise ValueError(f"unsupported {where}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        except (TypeError, IndexError, KeyError, AttributeError) as exc:
            # A supported kind of layer, configured in a way not foreseen here.
            raise ValueError(
                f"{where}: cannot be read ({type(exc).__name__}: {short(str(exc))}); {SUPPORTED}"
            ) from None
        if names is not None:
            name = names[i]
        else:
            name = auto_name(layer.name, layer.kind not in ("flatten", "softmax"))
        layers.append(dataclasses.replace(layer, name=name))
        if weights is not None:
            params[name] = weights
        shape = layer.output_shape
    if not layers:
        raise ValueError("the network has no layers besides Dropout")
    if layers[-1].kind == "dense":
        name = "softmax" if "softmax" not in used else auto_name("softmax", False)
        layers.append(Layer(name, "softmax", shape, shape))
    if layers[-1].kind != "softmax" or len(layers) < 2 or layers[-2].kind != "dense":
        raise ValueError("the network must end with an nnx.Linear (optionally then nnx.softmax)")
    # The final dense layer is the output layer, named as in the original.
    last = layers[-2]
    if names is None and last.name.startswith("dense_"):
        layers[-2] = dataclasses.replace(last, name="output")
        if read:
            params["output"] = params.pop(last.name)
    return layers, params, dropped


def network_from_layers(
    items: Sequence[Any],
    input_shape: Sequence[int],
    classes: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    name: str = "network",
) -> Network:
    """Describe a sequence of Flax NNX layers and functions as a `Network`.

    Supported items, in any sensible order: ``nnx.Conv`` (a 2-D kernel of any size, any stride,
    padding 'SAME', 'VALID' or non-negative numbers, with or without bias; no dilation, groups
    or mask), elementwise activations (``nnx.relu``, ``nnx.gelu``, ``nnx.tanh``,
    ``nnx.sigmoid``, ``nnx.leaky_relu``, ``nnx.elu``, ``nnx.silu``, also wrapped in
    ``functools.partial`` with their own options), ``functools.partial(nnx.max_pool |
    nnx.avg_pool, window_shape=..., strides=..., padding=...)``, `Flatten`, ``nnx.Linear`` and
    a final ``nnx.softmax``. A softmax is appended when the last item is a ``Linear``.
    ``input_shape`` is ``(H, W, C)``; H and W may differ.

    ``names``, if given, names every item (unique, and none of `RESERVED_NAMES`); otherwise
    layers are named by kind (``conv_1``, ``relu_1``, ..., ``flatten``, ``output``).

    Raises
    ------
    ValueError
        Naming the first unsupported item by its position in the sequence (``layer 3
        (Conv)``) and saying what is accepted, or a shape that does not fit.
    """
    h, w, c = checked_input_shape(input_shape)
    layers, params, dropped = _describe(list(items), (h, w, c), names, read=True)
    if dropped:
        where = ", ".join(str(i) for i in dropped)
        warnings.warn(
            f"nnx.Dropout (layer {where} of the sequence) is the identity at inference: it is "
            "left out of the explained layers, which show the model as it predicts",
            UserWarning,
            stacklevel=2,
        )
    n_out = layers[-1].output_shape[0]
    if classes is None:
        classes = [f"class {k}" for k in range(n_out)]
    return Network(layers, params, (h, w, c), classes, name=name)


def checked_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """``input_shape`` as ``(H, W, C)`` ints; `ValueError` saying what is accepted otherwise."""
    try:
        values = tuple(input_shape)
    except TypeError:
        values = ()
    if len(values) != 3 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(
            f"input_shape must be (H, W, C) with three positive ints, got {short(input_shape)}"
        )
    return (int(values[0]), int(values[1]), int(values[2]))


def infer_input_shape(
    model: nnx.Sequential, ask_for: str = "input_shape=(H, W, C)"
) -> tuple[int, int, int]:
    """The (H, W, C) input of a ``Sequential``, when only one square size fits it.

    The channels come from the first Conv, the size from the first Linear's input count. Strides
    and pooling round sizes down, so often several sizes fit (29 to 32 for two stride-2 layers;
    224 to 255 for a VGG16-style stack): then the size is not guessed and the error asks for
    ``ask_for`` (the argument that sets it).

    Raises
    ------
    ValueError
        When no square size, or more than one, fits; or the network has no Conv.
    """
    convs = [m for m in model.layers if isinstance(m, nnx.Conv)]
    if not convs:
        raise ValueError(f"cannot infer the input shape (no Conv layer): give {ask_for}")
    channels = int(convs[0].kernel.shape[-2])
    items = list(model.layers)
    fits: list[int] = []
    for size in range(1, 513):
        try:
            _describe(items, (size, size, channels), None, read=False)
        except ValueError:
            if fits:  # the sizes that fit are consecutive
                break
            continue
        fits.append(size)
    if not fits:
        raise ValueError(
            f"cannot infer the input shape: no square input up to 512×512 fits this network; "
            f"give {ask_for}"
        )
    if len(fits) > 1:
        a, b = fits[0], fits[-1]
        raise ValueError(
            f"cannot infer the input shape: every square input from {a}×{a} to {b}×{b} fits "
            f"this network (strides and pooling round sizes down) and each is explained "
            f"differently; give {ask_for} with the size it was made for (C = {channels})"
        )
    return (fits[0], fits[0], channels)


def network_from_sequential(
    model: nnx.Sequential,
    classes: Any = None,
    input_shape: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    name: str = "network",
) -> Network:
    """An ``nnx.Sequential`` of supported layers as a `Network` (input shape inferred if None)."""
    if input_shape is None:
        input_shape = infer_input_shape(model)
    return network_from_layers(list(model.layers), input_shape, classes, names=names, name=name)


def _is_softmax(item: Any) -> bool:
    return item is nnx.softmax or item is jax.nn.softmax


def logits(model: nnx.Module, x: jax.Array) -> jax.Array:
    """The model's logits: a Sequential without its final softmax, or the module's output."""
    if isinstance(model, nnx.Sequential):
        layers = list(model.layers)
        if layers and _is_softmax(layers[-1]):
            layers = layers[:-1]
        # Inference: Dropout is the identity (whatever mode the model was left in).
        layers = [la for la in layers if not isinstance(la, nnx.Dropout)]
        for layer in layers:
            x = layer(x)
        return x
    scores: jax.Array = model(x)
    return scores


def is_sequential(model: Any) -> TypeGuard[nnx.Sequential]:
    """Whether ``model`` is an ``nnx.Sequential``."""
    return isinstance(model, nnx.Sequential)


def needs_tracing(model: nnx.Sequential) -> int | None:
    """The first item of a ``Sequential`` only the tracer reads (batch norm, groups, dilation).

    Such a ``Sequential`` is explained by `cnn_explainer_widget.traced`, like any module.
    None when every item is one `network_from_layers` reads.
    """
    for i, item in enumerate(model.layers):
        if isinstance(item, nnx.BatchNorm):
            return i
        if isinstance(item, nnx.Conv) and (
            item.feature_group_count != 1 or _dilated(item.kernel_dilation)
        ):
            return i
    return None


def _dilated(dilation: Any) -> bool:
    """Whether an ``nnx.Conv``'s ``kernel_dilation`` (None, an int or a sequence) is not all 1.

    Asked on every `activations(x, model=m)` call: plain Python, not ``np.atleast_1d``.
    """
    if dilation is None or isinstance(dilation, int | np.integer):
        return dilation not in (None, 1)
    return any(d != 1 for d in dilation)


def item_structure(item: Any) -> Any:
    """What of one layer decides its `Layer` records: its type and hyperparameters.

    Two items with equal structures give the same records for kernels of the same shapes (the
    shapes are checked by `Network.set_weights`).
    """
    if isinstance(item, nnx.Conv):
        return (
            nnx.Conv,
            item.bias is None,
            item.strides,
            item.padding,
            item.kernel_dilation,
            item.input_dilation,
            item.feature_group_count,
            getattr(item, "mask", None) is None,
        )
    if isinstance(item, nnx.Linear):
        return (nnx.Linear, item.bias is None)
    if isinstance(item, functools.partial):
        return (functools.partial, item.func, item.args, item.keywords)
    if isinstance(item, nnx.Module):
        return type(item)
    return item  # a function such as nnx.relu


def weight_holders(items: Sequence[Any]) -> list[Any]:
    """The items with a kernel and a bias (``nnx.Conv``, ``nnx.Linear``), in order."""
    return [item for item in items if isinstance(item, nnx.Conv | nnx.Linear)]


@functools.partial(jax.jit, static_argnums=0)
def _probabilities(graphdef: nnx.GraphDef[Any], state: Any, x: jax.Array) -> jax.Array:
    return jax.nn.softmax(logits(nnx.merge(graphdef, state), x), axis=-1)


def probabilities(model: nnx.Module, x: np.ndarray, batch_size: int, classes: int) -> np.ndarray:
    """Class probabilities ``(N, classes)`` of a batch ``x`` through ``model``'s `logits`.

    Every batch of ``batch_size`` is padded to one shape: one compiled function, whatever N is.
    """
    graphdef, state = nnx.split(model)
    size = max(1, min(batch_size, len(x)))
    out = []
    for start in range(0, len(x), size):
        chunk = x[start : start + size]
        padded = np.concatenate([chunk, np.zeros((size - len(chunk), *x.shape[1:]), x.dtype)])
        out.append(np.asarray(_probabilities(graphdef, state, padded))[: len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, classes), np.float32)


__all__ = [
    "ACTIVATION_OPTIONS",
    "RESERVED_NAMES",
    "Flatten",
    "activation_options",
    "checked_input_shape",
    "infer_input_shape",
    "is_sequential",
    "item_structure",
    "logits",
    "needs_tracing",
    "network_from_layers",
    "network_from_sequential",
    "probabilities",
    "weight_holders",
]
