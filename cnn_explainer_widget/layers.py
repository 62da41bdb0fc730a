"""What a network is made of, as plain data: one `Layer` record per layer, and padding maths.

Every view of the widget explains a network the same way, whatever it came from: as a list
of `Layer` records (convolution, elementwise activation, pooling, batch norm, add, concat, global
pooling, flatten, dense, softmax) with their real hyperparameters and the names of the layers
each one reads, in a topological order (a sequence or any graph without cycles). This module
holds those records, the elementwise activation functions the explainer knows by name, and the
arithmetic of windows and padding. It imports nothing else from the package.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jax
import jax.numpy as jnp

LayerKind = Literal[
    "conv",
    "activation",
    "pool",
    "batchnorm",
    "add",
    "concat",
    "global_pool",
    "flatten",
    "dense",
    "softmax",
]
#: The kinds that read two or more layers; every other kind reads exactly one.
MERGE_KINDS: tuple[str, ...] = ("add", "concat")
Padding = tuple[tuple[int, int], tuple[int, int]]

#: Elementwise activation functions the explainer understands, by name.
ACTIVATIONS: dict[str, Callable[..., jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "leaky_relu": jax.nn.leaky_relu,
    "elu": jax.nn.elu,
    "silu": jax.nn.silu,
}

#: The keyword options each activation takes, and their Python type (from JAX's signatures).
ACTIVATION_OPTIONS: dict[str, dict[str, type]] = {
    "relu": {},
    "gelu": {"approximate": bool},
    "tanh": {},
    "sigmoid": {},
    "leaky_relu": {"negative_slope": float},
    "elu": {"alpha": float},
    "silu": {},
}


@dataclass(frozen=True)
class Layer:
    """One layer of a network, described by what it computes.

    Attributes
    ----------
    name:
        Unique layer name, e.g. ``"conv_1_1"``. Keys of `Network.activations` and of the widget's
        selection use it.
    kind:
        ``"conv"``, ``"activation"``, ``"pool"``, ``"batchnorm"`` (inference: the running
        statistics), ``"add"`` (the sum of its inputs), ``"concat"`` (its inputs' channels, in
        order), ``"global_pool"`` (one number per channel), ``"flatten"``, ``"dense"`` or
        ``"softmax"``.
    output_shape:
        Shape of one example's output: ``(H, W, C)`` for spatial layers, ``(N,)`` otherwise.
    input_shape:
        Shape of one example's input to this layer.
    kernel_size, stride, padding:
        For ``conv`` and ``pool``: window size ``(kh, kw)``, stride ``(sh, sw)`` and explicit
        padding ``((top, bottom), (left, right))`` (SAME is resolved to numbers).
    function:
        For ``activation``: the function's name (a key of `ACTIVATIONS`); for ``pool`` and
        ``global_pool``: ``"max"`` or ``"avg"``.
    options:
        Extra keyword arguments of the function (``negative_slope`` of a leaky ReLU,
        ``count_include_pad`` of an average pool, ``epsilon`` of a batch norm).
    inputs:
        Names of the layers it reads (``"input"``: the image). ``()`` means the layer listed
        before it; in a `Network` every layer's inputs are explicit.
    dilation:
        For ``conv``: the kernel dilation ``(dy, dx)`` (lax's ``rhs_dilation``); None: (1, 1).
    groups:
        For ``conv``: lax's ``feature_group_count``. The kernel is ``(kh, kw, C_in // groups,
        C_out)``; output channel ``o`` reads input channels ``[g·C_in/groups,
        (g+1)·C_in/groups)`` with ``g = o // (C_out/groups)`` (depthwise: groups = C_in).
    source:
        Where the layer comes from in the user's code, for messages and tooltips, e.g.
        ``"ResBlock.conv1 (my_model.py:14)"``; None if not known.
    """

    name: str
    kind: LayerKind
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: Padding | None = None
    function: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    dilation: tuple[int, int] | None = None
    groups: int = 1
    source: str | None = None

    def effective_kernel(self) -> tuple[int, int]:
        """The window's extent on the input: ``(k − 1)·d + 1`` along each axis."""
        assert self.kernel_size
        dy, dx = self.dilation or (1, 1)
        return ((self.kernel_size[0] - 1) * dy + 1, (self.kernel_size[1] - 1) * dx + 1)


#: Keys of `cnn_explainer_widget.network.Network.activations` that are not layer names.
RESERVED = ("input", "logits", "probabilities")


def connect(layers: Sequence[Layer], input_shape: tuple[int, ...]) -> tuple[Layer, ...]:
    """The layers with explicit ``inputs`` (``()``: the layer before), checked.

    Names are unique and none is reserved (`RESERVED`); each input is listed before the layer
    reading it; add and concat read two or more layers, others one; shapes fit.

    Raises
    ------
    ValueError
        Naming the layer that is wrong.
    """
    result: list[Layer] = []
    shapes: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(layers):
        name = layer.name
        if name in shapes or name in RESERVED:
            raise ValueError(
                f"layer name {name!r} is used twice or is reserved ({', '.join(RESERVED)} "
                "are keys of the activations); give each layer its own name"
            )
        inputs = layer.inputs or ("input" if i == 0 else result[-1].name,)
        unknown = [n for n in inputs if n != "input" and n not in shapes]
        if unknown:
            raise ValueError(
                f"layer {name!r} reads {unknown[0]!r}, which is not a layer listed before it "
                "(list layers in an order where each comes after the layers it reads)"
            )
        many = layer.kind in MERGE_KINDS
        if many != (len(inputs) > 1):
            raise ValueError(
                f"layer {name!r} ({layer.kind}) reads {len(inputs)} layers; "
                + ("add and concat read two or more" if many else "it reads exactly one")
            )
        _check_shapes(layer, [shapes.get(n, input_shape) for n in inputs])
        result.append(replace(layer, inputs=tuple(inputs)))
        shapes[name] = layer.output_shape
    return tuple(result)


def _check_shapes(layer: Layer, shapes: list[tuple[int, ...]]) -> None:
    """Whether what ``layer`` reads has the shapes its record says."""
    if layer.kind == "add":
        fits = all(shape == layer.output_shape for shape in shapes)
    elif layer.kind == "concat":
        fits = (
            all(len(s) == 3 and s[:2] == layer.output_shape[:2] for s in shapes)
            and sum(s[2] for s in shapes) == layer.output_shape[2]
        )
    else:
        fits = shapes[0] == layer.input_shape
    if not fits:
        raise ValueError(
            f"layer {layer.name!r} ({layer.kind}, output {layer.output_shape}) cannot read "
            f"outputs shaped {', '.join(map(str, shapes))}"
        )


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a convolution or pooling along one axis: ⌊(n + p − k) / s⌋ + 1."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def resolve_padding(
    padding: Any, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]
) -> Padding:
    """Turn a Flax/lax padding spec ('SAME', 'VALID', int, or pairs) into explicit numbers."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(
                f"padding {padding!r} is not supported; use 'SAME', 'VALID' or numbers"
            )
        # lax's own rule, as nnx.Conv and nnx.max_pool apply it (SAME: the odd cell after).
        (t, b), (left, r) = jax.lax.padtype_to_pads(in_hw, kernel, stride, padding.upper())
        return ((int(t), int(b)), (int(left), int(r)))
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    pairs = [tuple(p) if isinstance(p, Sequence) else (int(p), int(p)) for p in padding]
    if len(pairs) != 2 or any(len(p) != 2 for p in pairs):
        raise ValueError(f"padding {padding!r} must give two (before, after) pairs")
    (t, b), (left, r) = pairs
    return ((int(t), int(b)), (int(left), int(r)))


__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_OPTIONS",
    "MERGE_KINDS",
    "RESERVED",
    "Layer",
    "LayerKind",
    "Padding",
    "connect",
    "conv_output_size",
    "resolve_padding",
]
