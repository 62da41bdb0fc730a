"""An independent float64 numpy forward pass of a `Network`, written from the math.

Nothing here calls JAX: every layer is computed from its definition on float64 copies of the
parameters, so `tests/test_model.py` can check the jitted forward pass layer by layer, and
`bench/forward.py` can compare speeds against it.

Conventions (the same as `Network.activations`): images are ``(N, H, W, C)``; a convolution
kernel is ``(kh, kw, C_in, C_out)``; padding is explicit ``((top, bottom), (left, right))``;
flatten is in (h, w, c) order, channels varying fastest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _pad(x: np.ndarray, padding: Sequence[Sequence[int]], value: float) -> np.ndarray:
    (top, bottom), (left, right) = padding
    return np.pad(
        x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="constant", constant_values=value
    )


def _windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int]) -> np.ndarray:
    """All (kh, kw) windows of a padded NHWC batch: shape (N, OH, OW, kh, kw, C)."""
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = stride
    oh = (h - kh) // sh + 1
    ow = (w - kw) // sw + 1
    out = np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j, :] = x[
                :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :
            ]
    return out


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    stride: Sequence[int],
    padding: Sequence[Sequence[int]],
) -> np.ndarray:
    """y[n, i, j, o] = Σ_{a, b, c} xpad[n, i·sh + a, j·sw + b, c] · k[a, b, c, o] + bias[o]."""
    kernel = np.asarray(kernel, np.float64)
    windows = _windows(_pad(x, padding, 0.0), kernel.shape[:2], stride)
    y = np.einsum("nijabc,abco->nijo", windows, kernel, optimize=True)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def activation(x: np.ndarray, function: str, options: Mapping[str, Any]) -> np.ndarray:
    """An elementwise activation function, by name."""
    if function == "relu":
        return np.maximum(x, 0.0)
    if function == "leaky_relu":
        slope = float(options.get("negative_slope", 0.01))
        return np.where(x >= 0, x, slope * x)
    if function == "tanh":
        return np.tanh(x)
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if function == "silu":
        return x / (1.0 + np.exp(-x))
    if function == "elu":
        alpha = float(options.get("alpha", 1.0))
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if function == "gelu":
        if options.get("approximate", True):
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
            return 0.5 * x * (1.0 + np.tanh(inner))
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    raise ValueError(f"no reference for activation {function!r}")


def pool2d(
    x: np.ndarray,
    function: str,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[Sequence[int]],
    count_include_pad: bool = True,
) -> np.ndarray:
    """Max pool (padding never wins) or average pool (dividing by kh·kw, or by real cells)."""
    if function == "max":
        windows = _windows(_pad(x, padding, -np.inf), kernel, stride)
        return windows.max(axis=(3, 4))
    if function != "avg":
        raise ValueError(f"no reference for pooling {function!r}")
    windows = _windows(_pad(x, padding, 0.0), kernel, stride)
    total = windows.sum(axis=(3, 4))
    if count_include_pad:
        return total / (kernel[0] * kernel[1])
    ones = np.ones((1, *x.shape[1:3], 1))
    counts = _windows(_pad(ones, padding, 0.0), kernel, stride).sum(axis=(3, 4))
    return total / counts


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def apply_layer(layer: Any, params: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """One `Layer` on a float64 batch."""
    if layer.kind == "conv":
        return conv2d(x, params["kernel"], params.get("bias"), layer.stride, layer.padding)
    if layer.kind == "activation":
        return activation(x, layer.function, layer.options)
    if layer.kind == "pool":
        return pool2d(
            x,
            layer.function,
            layer.kernel_size,
            layer.stride,
            layer.padding,
            bool(layer.options.get("count_include_pad", True)),
        )
    if layer.kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if layer.kind == "dense":
        y = x @ np.asarray(params["kernel"], np.float64)
        bias = params.get("bias")
        return y if bias is None else y + np.asarray(bias, np.float64)
    if layer.kind == "softmax":
        return softmax(x)
    raise ValueError(f"no reference for layer kind {layer.kind!r}")


def activation_key(layers: Sequence[Any], i: int) -> str:
    """Key of layer ``i`` in `Network.activations` (last dense: logits, softmax: probabilities)."""
    layer = layers[i]
    if layer.kind == "softmax" and i == len(layers) - 1:
        return "probabilities"
    if layer.kind == "dense" and i == len(layers) - 2 and layers[-1].kind == "softmax":
        return "logits"
    return layer.name


def forward(
    layers: Sequence[Any], params: Mapping[str, Mapping[str, Any]], x: np.ndarray
) -> dict[str, np.ndarray]:
    """Every activation of ``layers`` for one image ``(H, W, C)`` or a batch, in float64.

    Returns the same keys, order and shapes as `Network.activations`.
    """
    x = np.asarray(x, np.float64)
    single = x.ndim == 3
    h = x[None] if single else x
    out = {"input": h}
    for i, layer in enumerate(layers):
        h = apply_layer(layer, params.get(layer.name, {}), h)
        out[activation_key(layers, i)] = h
    if single:
        return {k: v[0] for k, v in out.items()}
    return out


def network_forward(network: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """`forward` for a `Network` object (its ``layers`` and ``params``)."""
    return forward(network.layers, network.params, x)
