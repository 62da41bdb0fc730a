"""One item of an ``nnx.Sequential`` as a `Layer` record: its kind, hyperparameters, weights.

`item_layer` reads a single item (``nnx.Conv``, ``nnx.Linear``, `Flatten`, a pooling partial,
an activation function, a final softmax) given the shape it receives, and refuses anything else
with what is accepted; `cnn_explainer_widget.flax_module` walks the sequence, names the layers
and builds the `Network`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import linen, nnx

from cnn_explainer_widget._text import short
from cnn_explainer_widget.layers import (
    ACTIVATION_OPTIONS,
    ACTIVATIONS,
    Layer,
    Padding,
    conv_output_size,
    resolve_padding,
)

SUPPORTED = (
    "supported are nnx.Conv, nnx.Linear, Flatten, activation functions (relu, gelu, tanh, "
    "sigmoid, leaky_relu, elu, silu), functools.partial(nnx.max_pool | nnx.avg_pool, ...) "
    "a final nnx.softmax, and nnx.Dropout (the identity at inference)"
)


#: A conv or dense layer's weights: ``{"kernel": array, "bias": array or None}``.
Weights = dict[str, np.ndarray | None]


class Unsupported(ValueError):
    """An item that is no supported layer at all (not a supported layer used wrongly)."""


class Flatten(nnx.Module):
    """Flatten each example to a vector in (h, w, c) order, channels fastest, as Keras does."""

    def __call__(self, x: jax.Array) -> jax.Array:
        """Flatten all but the batch axis."""
        return x.reshape(x.shape[0], -1)


def _function_name(fn: Any) -> tuple[str, dict[str, Any]] | None:
    """Name and (unchecked) options of a supported elementwise activation, or None."""
    options: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        options = dict(fn.keywords)
        if fn.args:
            return None
        fn = fn.func
    for name, known in ACTIVATIONS.items():
        if fn is known or getattr(nnx, name, None) is fn:
            return name, options
    return None


def _scalar(value: Any) -> Any:
    """A Python number from a number or a 0-d numpy/JAX array; the value itself otherwise."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, np.generic | np.ndarray | jax.Array) and np.ndim(value) == 0:
        return np.asarray(value).item()
    return value


def activation_options(function: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check an activation's keyword options; return them as plain Python numbers and bools.

    A 0-d array (``negative_slope=jnp.array(0.1)``) becomes a float, so the options travel to
    the front end and into saved files as they are.

    Raises
    ------
    ValueError
        Naming the option that is unknown or of the wrong type, and what the function takes.
    """
    accepted = ACTIVATION_OPTIONS[function]
    takes = ", ".join(f"{k} ({t.__name__})" for k, t in accepted.items()) if accepted else "none"
    result: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in accepted:
            raise ValueError(
                f"{function} has no option {short(key)}; the options it takes: {takes}"
            )
        value = _scalar(raw)
        want = accepted[key]
        if want is bool and isinstance(value, bool):
            result[key] = value
        elif want is float and isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"{function}'s {key} must be a finite number, got {value!r}")
            result[key] = float(value)
        else:
            raise ValueError(
                f"{function}'s {key} must be a single {want.__name__}, got {short(raw)}"
            )
    return result


def _pool_op(fn: Any) -> str | None:
    base = fn.func if isinstance(fn, functools.partial) else fn
    if base in (nnx.max_pool, linen.max_pool):
        return "max"
    if base in (nnx.avg_pool, linen.avg_pool):
        return "avg"
    return None


def describe_item(item: Any) -> str:
    if isinstance(item, functools.partial):
        return f"functools.partial({getattr(item.func, '__name__', item.func)!r}, ...)"
    return getattr(item, "__name__", None) or type(item).__name__


def _pair(value: Any, what: str) -> tuple[int, int]:
    """Two positive ints from an int or a pair (a window, a stride)."""
    pair = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(pair, Sequence)
        or len(pair) != 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in pair)
        or min(pair) < 1
    ):
        raise ValueError(f"{what} must be two positive integers, e.g. (2, 2); got {short(value)}")
    return (int(pair[0]), int(pair[1]))


def _padding(
    padding: Any, shape: tuple[int, ...], window: tuple[int, int], stride: tuple[int, int]
) -> Padding:
    """Explicit, non-negative padding for a window on an (H, W, C) input."""
    if isinstance(padding, str) and padding.upper() not in ("SAME", "VALID"):
        raise ValueError(
            f"padding {short(padding)} is not supported; use 'SAME', 'VALID', an int or two "
            "(before, after) pairs of non-negative ints"
        )
    try:
        pads = resolve_padding(padding, (shape[0], shape[1]), window, stride)
    except (TypeError, ValueError):
        raise ValueError(
            f"padding {short(padding)} is not supported; use 'SAME', 'VALID', an int or two "
            "(before, after) pairs of non-negative ints"
        ) from None
    if min(min(p) for p in pads) < 0:
        raise ValueError(
            f"negative padding {short(padding)} (cropping) is not supported; use 'SAME', "
            "'VALID' or non-negative numbers"
        )
    return pads


def _window_output(
    shape: tuple[int, ...], window: tuple[int, int], stride: tuple[int, int], padding: Padding
) -> tuple[int, int]:
    oh = conv_output_size(shape[0], window[0], stride[0], *padding[0])
    ow = conv_output_size(shape[1], window[1], stride[1], *padding[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"window {window[0]}×{window[1]} does not fit its {shape[0]}×{shape[1]} input"
        )
    return oh, ow


def _conv(item: nnx.Conv, shape: tuple[int, ...], read: bool) -> tuple[Layer, Weights | None]:
    """A Conv as a layer record (named later) and its weights."""
    if len(shape) != 3:
        raise ValueError(f"a Conv needs an (H, W, C) input, got shape {shape}")
    kernel_size = tuple(item.kernel_size)
    if len(kernel_size) != 2:
        size = kernel_size[0] if len(kernel_size) == 1 else kernel_size
        raise ValueError(
            f"kernel_size={short(size)} is a {len(kernel_size)}-D kernel in Flax NNX (an int "
            "kernel_size convolves along one axis only); give two sizes, e.g. "
            f"kernel_size=({size}, {size})"
            if len(kernel_size) == 1
            else f"kernel_size={short(size)} is not 2-D; give two sizes, e.g. (3, 3)"
        )
    if getattr(item, "mask", None) is not None:
        raise ValueError(
            "a Conv with a kernel mask is not supported (the widget would explain the "
            "unmasked kernel); multiply the mask into the kernel instead"
        )
    if any(d != 1 for d in np.atleast_1d(item.kernel_dilation or 1)) or any(
        d != 1 for d in np.atleast_1d(item.input_dilation or 1)
    ):
        raise ValueError("dilated convolutions are not supported")
    if item.feature_group_count != 1:
        raise ValueError("grouped convolutions are not supported")
    kh, kw, cin, cout = item.kernel.shape
    if cin != shape[2]:
        raise ValueError(f"expects {cin} input channels, gets {shape[2]}")
    strides = item.strides if item.strides is not None else 1
    stride = _pair(strides, "strides")
    padding = _padding(item.padding, shape, (kh, kw), stride)
    oh, ow = _window_output(shape, (kh, kw), stride, padding)
    weights: Weights | None = None
    if read:
        kernel = np.asarray(item.kernel[...], np.float32)
        bias = None if item.bias is None else np.asarray(item.bias[...], np.float32)
        weights = {"kernel": kernel, "bias": bias}
    layer = Layer("conv", "conv", shape, (oh, ow, cout), (kh, kw), stride, padding)
    return layer, weights


def _pool(item: Any, op: str, shape: tuple[int, ...]) -> Layer:
    if not isinstance(item, functools.partial) or "window_shape" not in item.keywords:
        raise ValueError(
            f"give pooling as functools.partial(nnx.{op}_pool, window_shape=(2, 2), strides=(2, 2))"
        )
    takes = {"window_shape", "strides", "padding"}
    if op == "avg":
        takes.add("count_include_pad")
    extra = sorted(set(item.keywords) - takes)
    if item.args or extra:
        raise ValueError(
            f"{op}_pool takes keywords {', '.join(sorted(takes))}"
            + (f", not {', '.join(map(short, extra))}" if extra else ", no positional ones")
        )
    if len(shape) != 3:
        raise ValueError(f"pooling needs an (H, W, C) input, got shape {shape}")
    kw_ = item.keywords
    if isinstance(kw_["window_shape"], int) or isinstance(kw_.get("strides"), int):
        raise ValueError(
            "window_shape and strides must be pairs, e.g. window_shape=(2, 2), strides=(2, 2) "
            "(Flax's pooling takes no single int)"
        )
    window = _pair(kw_["window_shape"], "window_shape")
    stride = _pair(kw_.get("strides") or window, "strides")
    padding = _padding(kw_.get("padding", "VALID"), shape, window, stride)
    oh, ow = _window_output(shape, window, stride, padding)
    options = {}
    if op == "avg":
        options["count_include_pad"] = bool(kw_.get("count_include_pad", True))
    return Layer(
        f"{op}_pool", "pool", shape, (oh, ow, shape[2]), window, stride, padding,
        function=op, options=options,
    )  # fmt: skip


def item_layer(
    item: Any, i: int, last: bool, shape: tuple[int, ...], read: bool
) -> tuple[Layer, Weights | None]:
    """One item of the sequence as a layer record (with a base name) and its weights."""
    if isinstance(item, nnx.Conv):
        return _conv(item, shape, read)
    if isinstance(item, nnx.Linear):
        if len(shape) != 1 or item.kernel.shape[0] != shape[0]:
            raise ValueError(
                f"expects {item.kernel.shape[0]} inputs, gets shape {shape} "
                "(add Flatten() before the first Linear)"
            )
        weights: Weights | None = None
        if read:
            kernel = np.asarray(item.kernel[...], np.float32)
            bias = None if item.bias is None else np.asarray(item.bias[...], np.float32)
            weights = {"kernel": kernel, "bias": bias}
        return Layer("dense", "dense", shape, (int(item.kernel.shape[1]),)), weights
    if isinstance(item, Flatten):
        return Layer("flatten", "flatten", shape, (math.prod(shape),)), None
    if (op := _pool_op(item)) is not None:
        return _pool(item, op, shape), None
    if item is nnx.softmax or item is jax.nn.softmax:
        if not last:
            raise ValueError("softmax is only supported as the last layer")
        return Layer("softmax", "softmax", shape, shape), None
    if (fn := _function_name(item)) is not None:
        fn_name, options = fn
        options = activation_options(fn_name, options)
        layer = Layer(fn_name, "activation", shape, shape, function=fn_name, options=options)
        return layer, None
    raise Unsupported(SUPPORTED)


__all__ = [
    "SUPPORTED",
    "Flatten",
    "Unsupported",
    "Weights",
    "activation_options",
    "describe_item",
    "item_layer",
]
