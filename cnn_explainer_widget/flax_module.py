"""The user's Flax module as a `Network`: an ``nnx.Sequential`` (or a list) of supported layers.

`network_from_layers` reads each item's kind, hyperparameters and weights into `Layer` records
(see the README's "Your own network" section for what is supported); `infer_input_shape`
guesses the input size of a ``Sequential`` that does not say it. `Flatten` is the flatten layer
such networks use (Keras's order, as the original's Tiny VGG).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import linen, nnx

from cnn_explainer_widget.layers import ACTIVATIONS, Layer, conv_output_size, resolve_padding
from cnn_explainer_widget.network import Network


class Flatten(nnx.Module):
    """Flatten each example to a vector in (h, w, c) order, channels fastest, as Keras does."""

    def __call__(self, x: jax.Array) -> jax.Array:
        """Flatten all but the batch axis."""
        return x.reshape(x.shape[0], -1)


def _function_name(fn: Any) -> tuple[str, dict[str, Any]] | None:
    """Name and options of a supported elementwise activation, or None."""
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


def _pool_op(fn: Any) -> str | None:
    base = fn.func if isinstance(fn, functools.partial) else fn
    if base in (nnx.max_pool, linen.max_pool):
        return "max"
    if base in (nnx.avg_pool, linen.avg_pool):
        return "avg"
    return None


def _pair(value: Any, what: str, where: str) -> tuple[int, int]:
    """A (height, width) pair from an int or two ints."""
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise ValueError(f"{where}: {what} must be one or two integers, got {value!r}")
    return (values[0], values[1])


def _describe_item(item: Any) -> str:
    if isinstance(item, functools.partial):
        return f"functools.partial({getattr(item.func, '__name__', item.func)!r}, ...)"
    return getattr(item, "__name__", None) or type(item).__name__


def network_from_layers(
    items: Sequence[Any],
    input_shape: Sequence[int],
    classes: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    name: str = "network",
) -> Network:
    """Describe a sequence of Flax NNX layers and functions as a `Network`.

    Supported items, in any sensible order: ``nnx.Conv`` (any kernel size, stride and padding,
    with or without bias; no dilation or groups), elementwise activations (``nnx.relu``,
    ``nnx.gelu``, ``nnx.tanh``, ``nnx.sigmoid``, ``nnx.leaky_relu``, ``nnx.elu``, ``nnx.silu``,
    also wrapped in ``functools.partial``), ``functools.partial(nnx.max_pool | nnx.avg_pool,
    window_shape=..., strides=..., padding=...)``, `Flatten`, ``nnx.Linear`` and a final
    ``nnx.softmax``. A softmax is appended when the last item is a ``Linear``.

    Raises
    ------
    ValueError
        Naming the first unsupported item, or a shape that does not fit.
    """
    h, w, c = (int(v) for v in input_shape)
    shape: tuple[int, ...] = (h, w, c)
    layers: list[Layer] = []
    params: dict[str, dict[str, np.ndarray | None]] = {}
    counters: dict[str, int] = {}

    def auto_name(base: str) -> str:
        counters[base] = counters.get(base, 0) + 1
        return f"{base}_{counters[base]}"

    items = list(items)
    if not items:
        raise ValueError("the network has no layers")
    for i, item in enumerate(items):
        given = names[i] if names is not None else None
        where = f"layer {i} ({_describe_item(item)})"
        if isinstance(item, nnx.Conv):
            if len(shape) != 3:
                raise ValueError(f"{where}: a Conv needs an (H, W, C) input, got shape {shape}")
            if any(d != 1 for d in np.atleast_1d(item.kernel_dilation or 1)) or any(
                d != 1 for d in np.atleast_1d(item.input_dilation or 1)
            ):
                raise ValueError(f"{where}: dilated convolutions are not supported")
            if item.feature_group_count != 1:
                raise ValueError(f"{where}: grouped convolutions are not supported")
            kernel = np.asarray(item.kernel[...], np.float32)
            kh, kw, cin, cout = kernel.shape
            if cin != shape[2]:
                raise ValueError(f"{where}: expects {cin} input channels, gets {shape[2]}")
            strides = item.strides if item.strides is not None else 1
            stride = _pair(strides, "strides", where)
            if isinstance(item.padding, str) and item.padding.upper() not in ("SAME", "VALID"):
                raise ValueError(f"{where}: padding {item.padding!r} is not supported")
            padding = resolve_padding(item.padding, shape[:2], (kh, kw), stride)
            oh = conv_output_size(shape[0], kh, stride[0], *padding[0])
            ow = conv_output_size(shape[1], kw, stride[1], *padding[1])
            if oh < 1 or ow < 1:
                raise ValueError(f"{where}: kernel {kh}×{kw} does not fit its {shape} input")
            layer_name = given or auto_name("conv")
            bias = None if item.bias is None else np.asarray(item.bias[...], np.float32)
            params[layer_name] = {"kernel": kernel, "bias": bias}
            new_shape: tuple[int, ...] = (oh, ow, cout)
            layers.append(Layer(layer_name, "conv", shape, new_shape, (kh, kw), stride, padding))
        elif isinstance(item, nnx.Linear):
            kernel = np.asarray(item.kernel[...], np.float32)
            if len(shape) != 1 or kernel.shape[0] != shape[0]:
                raise ValueError(
                    f"{where}: expects {kernel.shape[0]} inputs, gets shape {shape} "
                    "(add Flatten() before the first Linear)"
                )
            layer_name = given or auto_name("dense")
            bias = None if item.bias is None else np.asarray(item.bias[...], np.float32)
            params[layer_name] = {"kernel": kernel, "bias": bias}
            new_shape = (kernel.shape[1],)
            layers.append(Layer(layer_name, "dense", shape, new_shape))
        elif isinstance(item, Flatten):
            new_shape = (math.prod(shape),)
            layers.append(Layer(given or "flatten", "flatten", shape, new_shape))
        elif _pool_op(item) is not None:
            op = _pool_op(item)
            if not isinstance(item, functools.partial) or "window_shape" not in item.keywords:
                raise ValueError(
                    f"{where}: give pooling as functools.partial(nnx.{op}_pool, "
                    "window_shape=(2, 2), strides=(2, 2))"
                )
            if len(shape) != 3:
                raise ValueError(f"{where}: pooling needs an (H, W, C) input, got shape {shape}")
            kw_ = item.keywords
            window = _pair(kw_["window_shape"], "window_shape", where)
            stride = _pair(kw_.get("strides") or window, "strides", where)
            padding = resolve_padding(kw_.get("padding", "VALID"), shape[:2], window, stride)
            oh = conv_output_size(shape[0], window[0], stride[0], *padding[0])
            ow = conv_output_size(shape[1], window[1], stride[1], *padding[1])
            if oh < 1 or ow < 1:
                raise ValueError(f"{where}: window {window} does not fit its {shape} input")
            options = {}
            if op == "avg":
                options["count_include_pad"] = bool(kw_.get("count_include_pad", True))
            layer_name = given or auto_name(f"{op}_pool")
            layers.append(
                Layer(
                    layer_name,
                    "pool",
                    shape,
                    (oh, ow, shape[2]),
                    window,
                    stride,
                    padding,
                    function=op,
                    options=options,
                )
            )
        elif item is nnx.softmax or item is jax.nn.softmax:
            if i != len(items) - 1:
                raise ValueError(f"{where}: softmax is only supported as the last layer")
            layers.append(Layer(given or "softmax", "softmax", shape, shape))
        elif (fn := _function_name(item)) is not None:
            fn_name, options = fn
            layer_name = given or auto_name(fn_name)
            layers.append(
                Layer(layer_name, "activation", shape, shape, function=fn_name, options=options)
            )
        else:
            raise ValueError(
                f"unsupported {where}: supported are nnx.Conv, nnx.Linear, Flatten, "
                "activation functions (relu, gelu, tanh, sigmoid, leaky_relu, elu, silu), "
                "functools.partial(nnx.max_pool | nnx.avg_pool, ...) and a final nnx.softmax"
            )
        shape = layers[-1].output_shape
    if layers[-1].kind == "dense":
        layers.append(Layer("softmax", "softmax", shape, shape))
    if layers[-1].kind != "softmax" or len(layers) < 2 or layers[-2].kind != "dense":
        raise ValueError("the network must end with an nnx.Linear (optionally then nnx.softmax)")
    # The final dense layer is the output layer, named as in the original.
    last = layers[-2]
    if names is None and last.name.startswith("dense_"):
        layers[-2] = Layer("output", "dense", last.input_shape, last.output_shape)
        params["output"] = params.pop(last.name)
    n_out = layers[-1].output_shape[0]
    if classes is None:
        classes = [f"class {k}" for k in range(n_out)]
    return Network(layers, params, (h, w, c), classes, name=name)


def infer_input_shape(model: nnx.Sequential) -> tuple[int, int, int]:
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
        for layer in layers:
            x = layer(x)
        return x
    scores: jax.Array = model(x)
    return scores


__all__ = [
    "Flatten",
    "infer_input_shape",
    "logits",
    "network_from_layers",
    "network_from_sequential",
]
