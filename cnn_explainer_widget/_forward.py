"""The forward pass over `Layer` records: one layer (`apply_layer`) and a whole graph (`run`).

Each layer reads the outputs its ``inputs`` name (``"input"``: the image), so a sequence and a
graph with skip connections run the same way; which outputs are kept is decided while tracing,
so a sequence compiles to exactly the program it always did. `cnn_explainer_widget.network`
jits `forward_flat`; saliency, Grad-CAM and the image scan run `run` inside their own programs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp

from cnn_explainer_widget._convolution import LIBRARY_DOT_OPTIONS, conv, formulation, wants_library
from cnn_explainer_widget.layers import ACTIVATIONS, Layer


def is_plain_conv(layer: Layer) -> bool:
    """A conv without groups or dilation (the formulations of `_convolution` handle these)."""
    return layer.kind == "conv" and layer.groups == 1 and layer.dilation in (None, (1, 1))


def compiler_options(layers: Sequence[Layer] = ()) -> dict[str, Any] | None:
    """XLA options for this package's own executables (the user's JAX settings stay as they are).

    On CPU, preferring 512-bit vectors lets XLA use AVX-512 where the processor has it (it is
    only a preference: other CPUs keep their widest vectors). bench/forward.py measured
    batch-32 throughput 2,510 → 3,180 images/s and one image 640 → 625 µs on the
    development machine. When one of ``layers`` is a convolution in the ``lax`` formulation
    (many channels, see `wants_library`), `LIBRARY_DOT_OPTIONS` too, where the installed jaxlib
    knows them.
    """
    if jax.default_backend() != "cpu":
        return None
    options: dict[str, Any] = {"xla_cpu_prefer_vector_width": 512}
    for layer in layers:
        if (
            layer.kind == "conv"
            and (not is_plain_conv(layer) or formulation(_kernel_shape(layer)) == "lax")
            and wants_library(_kernel_shape(layer))
        ):
            if _library_dot_supported():
                options.update(LIBRARY_DOT_OPTIONS)
            break
    return options


@functools.cache
def _library_dot_supported() -> bool:
    """Whether this jaxlib accepts `LIBRARY_DOT_OPTIONS` (an experimental XLA:CPU option)."""
    try:
        jax.jit(lambda v: v + 1).lower(jnp.zeros(1)).compile(compiler_options=LIBRARY_DOT_OPTIONS)
    except Exception:  # an unknown option or value: INVALID_ARGUMENT from XLA
        return False
    return True


def _kernel_shape(layer: Layer) -> tuple[int, int, int, int]:
    assert layer.kernel_size
    return (*layer.kernel_size, layer.input_shape[2] // layer.groups, layer.output_shape[2])


def forward_flat(
    layers: tuple[Layer, ...],
    treedef: Any,
    leaves: tuple[jax.Array, ...],
    x: jax.Array,
    keep: dict[str, jax.Array] | None = None,
    once: jax.Array | None = None,
) -> tuple[jax.Array, ...]:
    """The forward pass on flattened parameters: every layer's output (batch first), in order.

    ``keep`` maps a layer name to a boolean mask over its channels: the others are set to 0.

    ``once`` (a run-time ``True``, on CPU) puts each convolution computed as a fused sum
    (``broadcast``, see `cnn_explainer_widget._convolution.conv`) of more than 36 products in a
    ``lax.cond`` on it (`_computed_once`). XLA:CPU fuses such a sum into every consumer: the
    layer's output, its ReLU and the next layer's input each computed it again (conv_1_1
    three times, before sums this small were left out). The result of a conditional is a
    buffer, so the sum is computed once; a constant predicate would be folded away, hence the
    argument.
    """
    params = jax.tree_util.tree_unflatten(treedef, leaves)
    values = run(layers, params, x, keep, once)
    return tuple(values[layer.name] for layer in layers)


def forward_into(
    layers: tuple[Layer, ...],
    treedef: Any,
    leaves: tuple[jax.Array, ...],
    x: jax.Array,
    keep: dict[str, jax.Array] | None,
    once: jax.Array | None,
    spent: tuple[jax.Array, ...],
) -> tuple[jax.Array, ...]:
    """`forward_flat`, jitted with ``spent`` donated: a previous result's arrays, same shapes.

    The values of ``spent`` are not read; XLA writes the outputs into their memory instead of
    fresh pages (`cnn_explainer_widget._spent`). Jit it with ``keep_unused=True``, or JAX
    drops the unread argument and nothing is donated.
    """
    del spent
    return forward_flat(layers, treedef, leaves, x, keep, once)


def run(
    layers: Sequence[Layer],
    params: dict[str, Any],
    x: jax.Array,
    keep: dict[str, Any] | None = None,
    once: jax.Array | None = None,
    add: dict[str, jax.Array] | None = None,
    lax_conv: bool = False,
) -> dict[str, jax.Array]:
    """Every layer's output on batch ``x``, by name (``"input"`` too).

    ``layers`` have explicit ``inputs`` (as in a `Network`) and may be any prefix of a
    network's layers. ``keep`` and ``once`` as in `forward_flat`; ``add`` maps a layer name to
    an array added to its output (after ``keep``): Grad-CAM differentiates with respect to it.
    ``lax_conv``: every convolution as ``lax.conv_general_dilated``, the one a Flax model runs
    (gradients then equal the model's own ``jax.grad``: which cell of a pooling window wins a
    near tie depends on the rounding of the sums).
    """
    values: dict[str, jax.Array] = {"input": x}
    for layer in layers:
        p = params.get(layer.name, {})
        reads = [values[name] for name in layer.inputs]
        arg: jax.Array | list[jax.Array] = reads[0] if len(reads) == 1 else reads
        if once is not None and _computed_once(layer, lax_conv):
            shape = (x.shape[0], *layer.output_shape)
            y = jax.lax.cond(
                once,
                functools.partial(apply_layer, layer, p),
                lambda v, shape=shape: jnp.zeros(shape, v.dtype),
                reads[0],
            )
        else:
            y = apply_layer(layer, p, arg, lax_conv)
        if keep is not None and layer.name in keep:
            y = jnp.where(keep[layer.name], y, 0.0)
        if add is not None and layer.name in add:
            y = y + add[layer.name]
        values[layer.name] = y
    return values


def _computed_once(layer: Layer, lax_conv: bool) -> bool:
    """Whether ``layer`` is a fused convolution sum to put in a ``lax.cond`` (see `forward_flat`).

    Not a sum of at most 36 products (a 3 × 3 kernel on an RGB image): recomputing it in its
    ReLU costs less than reading its output back from memory. A 224 px network with 32
    channels at batch 32: 5.8 against 6.5-6.8 ms an image; Tiny VGG unchanged within noise
    (bench/README.md, "Third pass"). Larger sums (a 7 × 7 stem) would be recomputed in every
    consumer, a pooling window's too.
    """
    if lax_conv or not is_plain_conv(layer):
        return False
    kh, kw, cin, cout = _kernel_shape(layer)
    return formulation((kh, kw, cin, cout)) != "lax" and kh * kw * cin > 36


def apply_layer(
    layer: Layer, p: dict[str, Any], x: jax.Array | Sequence[jax.Array], lax_conv: bool = False
) -> jax.Array:
    """Apply one layer to a batch ``x`` (NHWC for spatial layers, (N, F) otherwise).

    ``lax_conv`` as in `run`.

    ``x`` is a list of the inputs' outputs, in ``inputs`` order, for ``add`` and ``concat``.
    """
    if layer.kind in ("add", "concat"):
        parts = list(x) if isinstance(x, list | tuple) else [cast(jax.Array, x)]
        if layer.kind == "concat":
            return jnp.concatenate(parts, axis=-1)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total
    x = cast(jax.Array, x)
    if layer.kind == "conv":
        assert layer.stride and layer.padding
        if is_plain_conv(layer) and not lax_conv:
            y = conv(x, p["kernel"], layer.stride, layer.padding)
        else:
            y = jax.lax.conv_general_dilated(
                x,
                p["kernel"],
                layer.stride,
                layer.padding,
                rhs_dilation=layer.dilation or (1, 1),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=layer.groups,
            )
        return y if p.get("bias") is None else y + p["bias"]
    if layer.kind == "activation":
        assert layer.function is not None
        return ACTIVATIONS[layer.function](x, **layer.options)
    if layer.kind == "batchnorm":
        # As flax.nnx.BatchNorm computes it: (x − mean) · (rsqrt(var + ε) · scale) + bias.
        multiplier = jax.lax.rsqrt(p["var"] + layer.options["epsilon"])
        if p.get("scale") is not None:
            multiplier = multiplier * p["scale"]
        normed: jax.Array = (x - p["mean"]) * multiplier
        return normed if p.get("bias") is None else normed + p["bias"]
    if layer.kind == "pool":
        return _pool(layer, x)
    if layer.kind == "global_pool":
        if layer.function == "max":
            return jnp.max(x, axis=(1, 2))
        return jnp.mean(x, axis=(1, 2))
    if layer.kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if layer.kind == "dense":
        product: jax.Array = x @ p["kernel"]
        return product if p.get("bias") is None else product + p["bias"]
    if layer.kind == "softmax":
        return jax.nn.softmax(x, axis=-1)
    raise ValueError(f"unknown layer kind {layer.kind!r}")


def _pool(layer: Layer, x: jax.Array) -> jax.Array:
    assert layer.kernel_size and layer.stride and layer.padding
    window = (1, *layer.kernel_size, 1)
    strides = (1, *layer.stride, 1)
    pads = ((0, 0), *layer.padding, (0, 0))
    if layer.function == "max":
        peak: jax.Array = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, pads)
        return peak
    total: jax.Array = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
    if layer.options.get("count_include_pad", True):
        return total / math.prod(layer.kernel_size)
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    counts: jax.Array = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pads)
    return total / counts


__all__ = [
    "apply_layer",
    "compiler_options",
    "forward_flat",
    "forward_into",
    "is_plain_conv",
    "run",
]
