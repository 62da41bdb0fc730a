"""What one neuron saw and computed, from a network's weights and one image's activations.

Pure numpy, no widget code: `explain_neuron` returns a `Neuron` record with the neuron's map,
the maps it reads, its kernel and bias, and (given a position) the exact input window under its
kernel or pooling window and the output value there. The widget's ``selected_neuron`` is this
record; the front end's detail views compute the same numbers from the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from cnn_explainer_widget.layers import ACTIVATIONS, Layer
from cnn_explainer_widget.network import Network

NeuronKind = Literal["input", "conv", "relu", "activation", "pool", "dense", "output"]


@dataclass(frozen=True, eq=False)
class Neuron:
    """One neuron of the network, for the current image.

    Attributes
    ----------
    layer, index:
        Layer name and neuron (channel or unit) index.
    kind:
        ``"input"``, ``"conv"``, ``"relu"`` (or ``"activation"`` for other functions),
        ``"pool"``, ``"dense"`` (a hidden dense layer) or ``"output"`` (a class).
    activation:
        The neuron's map ``(H, W)``; for an output neuron its probability (a float).
    inputs:
        What the neuron reads: all input maps ``(H, W, C_in)`` for a conv, the one input map
        ``(H, W)`` for an activation or pool, the flattened vector for a dense or output neuron,
        and the RGB (or grayscale) image ``(H, W, C)`` for an input channel.
    kernel, bias:
        The conv kernel ``(kh, kw, C_in)`` or dense weights ``(F,)``, and the bias; None where
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
        The neuron's output at (y, x). For a conv, ``(window * kernel).sum() + bias == value``.
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

    def __post_init__(self) -> None:
        # What a user gets back is read-only: views of the widget's arrays and fresh windows.
        for value in (self.activation, self.inputs, self.kernel, self.window):
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    def __repr__(self) -> str:
        where = "" if self.y is None else f", y={self.y}, x={self.x}, value={self.value:.6g}"
        return f"Neuron(layer={self.layer!r}, index={self.index}, kind={self.kind!r}{where})"


def _padded_window(inputs: np.ndarray, layer: Layer, y: int, x: int, fill: float) -> np.ndarray:
    """The (kh, kw, C) block of ``inputs`` under the window at output (y, x), padding = fill."""
    assert layer.kernel_size and layer.stride and layer.padding
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    (top, _), (left, _) = layer.padding
    y0, x0 = y * sh - top, x * sw - left
    h, w = inputs.shape[:2]
    window = np.full((kh, kw, inputs.shape[2]), fill, dtype=np.float64)
    ys = slice(max(y0, 0), min(y0 + kh, h))
    xs = slice(max(x0, 0), min(x0 + kw, w))
    window[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = inputs[ys, xs]
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
    prev = network.input_of(acts, layer)
    params = network.params.get(layer, {})
    weights, biases = params.get("kernel"), params.get("bias")
    if spec.kind == "conv":
        assert weights is not None
        kernel = weights[..., index]
        bias = None if biases is None else float(biases[index])
        window = _padded_window(prev, spec, py, px, 0.0) if has_pos else None
        return Neuron(
            layer, index, "conv", out[..., index], prev, kernel=kernel, bias=bias,
            y=y, x=x, window=window, value=float(out[py, px, index]) if has_pos else None,
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
            return Neuron(layer, index, kind, float(out[index]), prev[index : index + 1])
        return Neuron(
            layer, index, kind, out[..., index], prev[..., index],
            y=y, x=x, window=window, value=float(out[py, px, index]) if has_pos else None,
        )  # fmt: skip
    if spec.kind == "dense":
        assert weights is not None
        kernel = weights[:, index]
        bias = None if biases is None else float(biases[index])
        if network.key_of(layer) == "logits":
            return Neuron(
                layer, index, "output", float(acts["probabilities"][index]), prev,
                kernel=kernel, bias=bias, logit=float(out[index]),
            )  # fmt: skip
        return Neuron(layer, index, "dense", float(out[index]), prev, kernel=kernel, bias=bias)
    raise ValueError(f"layer {layer!r} ({spec.kind}) has no neurons to explain")


__all__ = ["ACTIVATIONS", "Neuron", "explain_neuron"]
