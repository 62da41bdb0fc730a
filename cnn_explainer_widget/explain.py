"""What one neuron saw and computed, from a network's weights and one image's activations.

Pure numpy, no widget code: `explain_neuron` returns a `Neuron` record with the neuron's map,
the maps it reads, its kernel and bias, and (given a position) the exact input window under its
kernel or pooling window and the output value there. The widget's ``selected_neuron`` is this
record; the front end's detail views compute the same numbers from the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cnn_explainer_widget.layers import ACTIVATIONS, Layer
from cnn_explainer_widget.network import Network

NeuronKind = Literal[
    "input",
    "conv",
    "relu",
    "activation",
    "pool",
    "batchnorm",
    "add",
    "concat",
    "global_pool",
    "dense",
    "output",
]


@dataclass(frozen=True, eq=False)
class Neuron:
    """One neuron of the network, for the current image.

    Attributes
    ----------
    layer, index:
        Layer name and neuron (channel or unit) index.
    kind:
        ``"input"``, ``"conv"``, ``"relu"`` (or ``"activation"`` for other functions),
        ``"pool"``, ``"batchnorm"``, ``"add"``, ``"concat"``, ``"global_pool"``, ``"dense"``
        (a hidden dense layer) or ``"output"`` (a class).
    activation:
        The neuron's map ``(H, W)``; a float for a neuron without a map (a dense unit, a
        global pool's channel; an output neuron: its probability).
    inputs:
        What the neuron reads: the input maps ``(H, W, C)`` of its group for a conv (all
        channels without groups; see ``channels``), the one input map ``(H, W)`` for an
        activation, pool, batch norm, concat or global pool, the summands' maps stacked
        ``(H, W, K)`` for an add, the vector for a dense or output neuron, and the RGB (or
        grayscale) image ``(H, W, C)`` for an input channel.
    kernel, bias:
        The conv kernel ``(kh, kw, C)`` or dense weights ``(F,)``, and the bias; None where
        the neuron has none.
    logit:
        For an output neuron, its logit (before softmax).
    y, x:
        The selected position in the neuron's map, if any.
    window:
        At (y, x): the input values under the kernel ``(kh, kw, C_in)`` (zero where padded) for
        a conv, under the pooling window ``(kh, kw)`` (NaN where padded) for a pool, the single
        input value ``(1, 1)`` for an activation or input neuron.
    value:
        The neuron's output at (y, x) (a global pool's: its number). For a conv,
        ``(window * kernel).sum() + bias == value``.
    sources:
        The layers it reads, by name (``"input"``: the image): the summands of an add, the one
        layer a concat neuron's channel comes from, the one layer others read.
    channels:
        For a conv: the input channels ``[start, stop)`` its group reads (all without groups).
        For a concat neuron: the channel ``(index, index + 1)`` of ``sources[0]`` it copies.
    stats:
        For a batch norm: its channel's ``mean``, ``var``, ``epsilon``, ``scale`` and ``bias``
        (None when the layer has none) and the folded affine ``a`` and ``b``: the neuron
        computes ``a · x + b``, ``a = scale / √(var + ε)``, ``b = bias − mean · a``.
    """

    layer: str
    index: int
    kind: NeuronKind
    activation: np.ndarray | float
    inputs: np.ndarray | None
    kernel: np.ndarray | None = None
    bias: float | None = None
    logit: float | None = None
    y: int | None = None
    x: int | None = None
    window: np.ndarray | None = None
    value: float | None = None
    sources: tuple[str, ...] = ()
    channels: tuple[int, int] | None = None
    stats: dict[str, float | None] | None = None

    def __post_init__(self) -> None:
        # What a user gets back is read-only: views of the widget's arrays and fresh windows.
        for value in (self.activation, self.inputs, self.kernel, self.window):
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    def __repr__(self) -> str:
        where = "" if self.y is None else f", y={self.y}, x={self.x}, value={self.value:.6g}"
        return f"Neuron(layer={self.layer!r}, index={self.index}, kind={self.kind!r}{where})"


def _padded_window(inputs: np.ndarray, layer: Layer, y: int, x: int, fill: float) -> np.ndarray:
    """The (kh, kw, C) block of ``inputs`` under the window at output (y, x), padding = fill.

    A dilated kernel's taps are ``dilation`` apart: the window holds the values under the taps.
    """
    assert layer.kernel_size and layer.stride and layer.padding
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    (dy, dx) = layer.dilation or (1, 1)
    (top, _), (left, _) = layer.padding
    ys = y * sh - top + dy * np.arange(kh)
    xs = x * sw - left + dx * np.arange(kw)
    h, w = inputs.shape[:2]
    window = np.full((kh, kw, inputs.shape[2]), fill, dtype=np.float64)
    in_y, in_x = (ys >= 0) & (ys < h), (xs >= 0) & (xs < w)
    window[np.ix_(in_y, in_x)] = inputs[np.ix_(ys[in_y], xs[in_x])]
    return window


def explain_neuron(
    network: Network,
    acts: dict[str, np.ndarray],
    layer: str,
    index: int,
    y: int | None = None,
    x: int | None = None,
) -> Neuron:
    """Describe neuron ``index`` of ``layer`` for one image's activations ``acts``.

    ``acts`` is the result of `Network.activations` for a single image. ``y``/``x`` select a
    position in a spatial neuron's map. Indices must be valid (the widget validates them first).
    """
    has_pos = y is not None and x is not None
    # The position as plain ints (read only when has_pos).
    py, px = (y, x) if y is not None and x is not None else (0, 0)
    if layer == "input":
        image = acts["input"]
        window = image[py : py + 1, px : px + 1, index] if has_pos else None
        return Neuron(
            layer, index, "input", image[..., index], image,
            y=y, x=x, window=window,
            value=float(image[py, px, index]) if has_pos else None,
        )  # fmt: skip
    spec = network.layer(layer)
    out = network.output_of(acts, layer)
    if spec.kind in ("add", "concat"):
        return _merge_neuron(network, acts, spec, index, y, x)
    prev = network.input_of(acts, layer)
    params = network.params.get(layer, {})
    weights, biases = params.get("kernel"), params.get("bias")
    sources = spec.inputs
    if spec.kind == "conv":
        assert weights is not None
        kernel = weights[..., index]
        bias = None if biases is None else float(biases[index])
        per_group = prev.shape[2] // spec.groups
        start = index // (out.shape[2] // spec.groups) * per_group
        read = prev[..., start : start + per_group]
        window = _padded_window(read, spec, py, px, 0.0) if has_pos else None
        return Neuron(
            layer, index, "conv", out[..., index], read, kernel=kernel, bias=bias,
            y=y, x=x, window=window, value=float(out[py, px, index]) if has_pos else None,
            sources=sources, channels=(start, start + per_group),
        )  # fmt: skip
    if spec.kind == "global_pool":
        return Neuron(
            layer, index, "global_pool", float(out[index]), prev[..., index],
            window=prev[..., index], value=float(out[index]), sources=sources,
        )  # fmt: skip
    if spec.kind == "batchnorm":
        stats = _batchnorm_stats(params, spec.options["epsilon"], index)
        window = prev[py : py + 1, px : px + 1, index] if has_pos and prev.ndim == 3 else None
        if prev.ndim == 1:
            return Neuron(
                layer, index, "batchnorm", float(out[index]), prev[index : index + 1],
                sources=sources, stats=stats,
            )  # fmt: skip
        return Neuron(
            layer, index, "batchnorm", out[..., index], prev[..., index],
            y=y, x=x, window=window, value=float(out[py, px, index]) if has_pos else None,
            sources=sources, stats=stats,
        )  # fmt: skip
    if spec.kind in ("activation", "pool"):
        if spec.kind == "pool":
            kind: NeuronKind = "pool"
            fill = np.nan
            window = _padded_window(prev, spec, py, px, fill)[..., index] if has_pos else None
        else:
            kind = "relu" if spec.function == "relu" else "activation"
            window = prev[py : py + 1, px : px + 1, index] if has_pos and prev.ndim == 3 else None
        if prev.ndim == 1:  # an activation after a dense layer
            return Neuron(
                layer, index, kind, float(out[index]), prev[index : index + 1], sources=sources
            )
        return Neuron(
            layer, index, kind, out[..., index], prev[..., index],
            y=y, x=x, window=window, value=float(out[py, px, index]) if has_pos else None,
            sources=sources,
        )  # fmt: skip
    if spec.kind == "dense":
        assert weights is not None
        kernel = weights[:, index]
        bias = None if biases is None else float(biases[index])
        if network.key_of(layer) == "logits":
            return Neuron(
                layer, index, "output", float(acts["probabilities"][index]), prev,
                kernel=kernel, bias=bias, logit=float(out[index]), sources=sources,
            )  # fmt: skip
        return Neuron(
            layer, index, "dense", float(out[index]), prev, kernel=kernel, bias=bias,
            sources=sources,
        )  # fmt: skip
    raise ValueError(f"layer {layer!r} ({spec.kind}) has no neurons to explain")


def _batchnorm_stats(params: dict[str, Any], epsilon: float, index: int) -> dict[str, Any]:
    """One channel's statistics and parameters, and the folded affine ``a · x + b``."""
    mean, var = float(params["mean"][index]), float(params["var"][index])
    scale = None if params.get("scale") is None else float(params["scale"][index])
    bias = None if params.get("bias") is None else float(params["bias"][index])
    a = (1.0 if scale is None else scale) / np.sqrt(var + epsilon)
    b = (0.0 if bias is None else bias) - mean * a
    return {
        "mean": mean, "var": var, "epsilon": float(epsilon), "scale": scale, "bias": bias,
        "a": float(a), "b": float(b),
    }  # fmt: skip


def _merge_neuron(
    network: Network,
    acts: dict[str, np.ndarray],
    spec: Layer,
    index: int,
    y: int | None,
    x: int | None,
) -> Neuron:
    """An add neuron (its summands, stacked on the last axis) or a concat neuron (its source)."""
    out = network.output_of(acts, spec.name)
    has_pos = y is not None and x is not None and out.ndim == 3
    py, px = (y, x) if y is not None and x is not None else (0, 0)
    spatial = out.ndim == 3
    activation = out[..., index] if spatial else float(out[index])
    value = float(out[py, px, index]) if has_pos else None if spatial else float(out[index])
    if spec.kind == "add":
        parts = np.stack([part[..., index] for part in network.inputs_of(acts, spec.name)], -1)
        window = parts[py, px] if has_pos else (None if spatial else parts)
        return Neuron(
            spec.name, index, "add", activation, parts, y=y, x=x, window=window,
            value=value, sources=spec.inputs,
        )  # fmt: skip
    start = 0
    for source, part in zip(spec.inputs, network.inputs_of(acts, spec.name), strict=True):
        if index < start + part.shape[-1]:
            channel = index - start
            read = part[..., channel]
            window = read[py : py + 1, px : px + 1] if has_pos else None
            return Neuron(
                spec.name, index, "concat", activation, read, y=y, x=x, window=window,
                value=value, sources=(source,), channels=(channel, channel + 1),
            )  # fmt: skip
        start += part.shape[-1]
    raise ValueError(f"index {index} is not a channel of {spec.name!r}")


__all__ = ["ACTIVATIONS", "Neuron", "explain_neuron"]
