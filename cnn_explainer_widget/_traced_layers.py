"""A traced model's structural equations as `Layer` records (`cnn_explainer_widget._tracer`).

One function per JAX primitive: a convolution, a matrix product, an add (a residual sum or a
layer's own bias), a division (finishing an average), a reshape (flatten), window and map
reductions (pooling, global pooling) and a channel concatenation. Each checks that the
equation is the form the explainer computes and refuses it otherwise, saying why.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from cnn_explainer_widget._traced_ops import (
    Act,
    Const,
    Par,
    Run,
    Value,
    dotted,
    evaluate,
    is_literal,
)
from cnn_explainer_widget.layers import Layer

if TYPE_CHECKING:
    from cnn_explainer_widget._tracer import Reader

_NHWC = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # lax's numbers for NHWC, HWIO, NHWC
SUPPORTED_OPS = (
    "convolutions, dense layers, batch norm, elementwise activations, pooling, global "
    "pooling or jnp.mean over space, residual adds, channel concatenation, flatten, softmax"
)

Handler = Callable[["Reader", Any, list[Value], Counter[Any]], Value]


def _layer(r: Reader, name: str) -> tuple[int, Layer]:
    i = next(i for i, la in enumerate(r.layers) if la.name == name)
    return i, r.layers[i]


def _out(eqn: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in eqn.outvars[0].aval.shape[1:])


def _conv(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    x, k = ins
    if not isinstance(x, Act) or not isinstance(k, Par) or not k.raw:
        raise r.refuse(
            eqn,
            "a convolution must read a layer's output with a kernel parameter as it is (a "
            "computed kernel, e.g. a masked one, would not be the one explained)",
        )
    p = eqn.params
    dn = p["dimension_numbers"]
    if (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec)) != _NHWC:
        raise r.refuse(eqn, "only NHWC inputs with HWIO kernels (as nnx.Conv has) are supported")
    if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
        raise r.refuse(eqn, "input dilation (a transposed convolution) is not supported")
    padding = tuple((int(a), int(b)) for a, b in p["padding"])
    if min(min(pair) for pair in padding) < 0:
        raise r.refuse(eqn, f"negative padding {padding} (cropping) is not supported")
    kh, kw = (int(v) for v in k.value.shape[:2])
    dilation = tuple(int(d) for d in p["rhs_dilation"])
    module = k.path[:-1]
    name = r.name(dotted(module) or "conv", numbered=not module)
    layer = Layer(
        name, "conv", r.shapes[x.name], _out(eqn), (kh, kw),
        tuple(int(s) for s in p["window_strides"]), padding,  # type: ignore[arg-type]
        inputs=(x.name,), dilation=None if dilation == (1, 1) else dilation,  # type: ignore[arg-type]
        groups=int(p["feature_group_count"]),
    )  # fmt: skip
    return _weighted(r, eqn, layer, k)


def _dense(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    x, k = ins
    if not isinstance(x, Act) or not isinstance(k, Par) or not k.raw or k.value.ndim != 2:
        raise r.refuse(eqn, "a matrix product must be a layer's output times a weight parameter")
    shape = r.shapes[x.name]
    if len(shape) != 1 or eqn.params["dimension_numbers"] != (((1,), (0,)), ((), ())):
        raise r.refuse(
            eqn, f"a dense layer on an output shaped {shape}: flatten or pool the map first"
        )
    module = k.path[:-1]
    name = r.name(dotted(module) or "dense", numbered=not module)
    layer = Layer(name, "dense", shape, _out(eqn), inputs=(x.name,))
    return _weighted(r, eqn, layer, k)


def _weighted(r: Reader, eqn: Any, layer: Layer, k: Par) -> Value:
    """Record conv or dense ``layer``, whose kernel is parameter ``k`` (a bias comes later)."""
    r.params[layer.name] = {"kernel": k.value, "bias": None}
    r.paths[layer.name] = {"kernel": k.path}
    r.fresh[eqn.outvars[0]] = layer.name
    return r.record(layer, eqn, source=r.label(k.path[:-1]))


def _add(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    a, b = ins
    if isinstance(a, Act) and isinstance(b, Act):
        shape = r.shapes[a.name]
        if shape != r.shapes[b.name]:
            raise r.refuse(
                eqn, f"adding outputs of different shapes {shape} and {r.shapes[b.name]}"
            )
        for var, other in ((eqn.invars[0], b), (eqn.invars[1], a)):
            fresh = r.fresh.get(var)
            if fresh is not None and uses[var] == 1 and _layer(r, fresh)[1].kind == "add":
                i, layer = _layer(r, fresh)  # a + b + c: one add of three
                r.layers[i] = replace(layer, inputs=(*layer.inputs, other.name))
                r.fresh[eqn.outvars[0]] = fresh
                return Act(fresh)
        layer = Layer(r.name("add"), "add", shape, shape, inputs=(a.name, b.name))
        made = r.record(layer, eqn)
        r.fresh[eqn.outvars[0]] = made.name
        return made
    act, par, var = (a, b, eqn.invars[0]) if isinstance(a, Act) else (b, a, eqn.invars[1])
    if isinstance(act, Act) and isinstance(par, Par):
        fresh = r.fresh.get(var)
        if fresh is not None and uses[var] == 1 and r.params[fresh]["bias"] is None:
            channels = r.shapes[fresh][-1]
            if par.value.size == channels and par.value.shape[-1] == channels:
                r.params[fresh]["bias"] = par.value.reshape(-1)
                r.paths[fresh]["bias"] = par.path
                return Act(fresh)
        raise r.refuse(
            eqn,
            f"adding the parameter {dotted(par.path)} to a layer's output (only a conv's or a "
            "dense layer's own per-channel bias, added right after it, is supported)",
        )
    raise r.refuse(eqn, "adding a constant to a layer's output is not supported")


def _div(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    a, c = ins
    var = eqn.invars[0]
    if not isinstance(a, Act) or not isinstance(c, Const) or a.name not in r.pending:
        raise r.refuse(eqn, "only a window or map sum divided by its size (a mean) is supported")
    i, layer = _layer(r, a.name)
    divisor = np.broadcast_to(c.value, (r.batch, *layer.output_shape))
    if uses[var] == 1 and layer.kind == "global_pool":
        if np.allclose(divisor, layer.input_shape[0] * layer.input_shape[1]):
            del r.pending[a.name]
            return a
    elif uses[var] == 1:
        assert layer.kernel_size and layer.padding
        if np.allclose(divisor, math.prod(layer.kernel_size)):
            del r.pending[a.name]
            return a
        if np.allclose(divisor, _counts(layer)):
            r.layers[i] = replace(layer, options={"count_include_pad": False})
            del r.pending[a.name]
            return a
    raise r.refuse(eqn, "a window or map sum divided by something other than its size")


def _counts(layer: Layer) -> np.ndarray:
    """How many cells of the input each window of ``layer`` covers (padding not counted)."""
    assert layer.kernel_size and layer.stride and layer.padding
    (kh, kw), (sh, sw), ((top, _), (left, _)) = layer.kernel_size, layer.stride, layer.padding
    h, w = layer.input_shape[:2]
    oh, ow = layer.output_shape[:2]
    ys = np.clip(np.arange(oh)[:, None] * sh - top + np.arange(kh), -1, h)
    xs = np.clip(np.arange(ow)[:, None] * sw - left + np.arange(kw), -1, w)
    rows = ((ys >= 0) & (ys < h)).sum(1)
    cols = ((xs >= 0) & (xs < w)).sum(1)
    counts: np.ndarray = (rows[:, None] * cols[None, :])[..., None].astype(np.float64)
    return counts


def _window(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    (x,) = ins
    p = eqn.params
    if not isinstance(x, Act) or len(r.shapes[x.name]) != 3:
        raise r.refuse(eqn, "pooling must read a map (H, W, C) of a layer")
    window, strides, pads = p["window_dimensions"], p["window_strides"], p["padding"]
    if (
        window[0] != 1 or window[3] != 1 or strides[0] != 1 or strides[3] != 1
        or tuple(pads[0]) != (0, 0) or tuple(pads[3]) != (0, 0)
        or any(d != 1 for d in (*p["base_dilation"], *p["window_dilation"]))
        or min(min(pair) for pair in pads) < 0
    ):  # fmt: skip
        raise r.refuse(eqn, "only pooling over H and W, without dilation or cropping, is supported")
    op = "max" if eqn.primitive.name == "reduce_window_max" else "avg"
    layer = Layer(
        r.name(f"{op}_pool"), "pool", r.shapes[x.name], _out(eqn), (int(window[1]), int(window[2])),
        (int(strides[1]), int(strides[2])), (tuple(pads[1]), tuple(pads[2])),
        function=op, options={"count_include_pad": True} if op == "avg" else {},
        inputs=(x.name,),
    )  # fmt: skip
    act = r.record(layer, eqn)
    if op == "avg":
        r.pending[act.name] = eqn  # until divided by the window's size
    return act


def _reduce(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    (x,) = ins
    shape = r.shapes[x.name] if isinstance(x, Act) else ()
    if len(shape) != 3 or tuple(eqn.params["axes"]) != (1, 2):
        raise r.refuse(eqn, "only a reduction of a map over H and W (global pooling) is supported")
    op = "max" if eqn.primitive.name == "reduce_max" else "avg"
    name = r.name(f"global_{op}_pool", numbered=False)
    layer = Layer(name, "global_pool", shape, (shape[2],), function=op, inputs=(x.name,))  # type: ignore[union-attr]
    act = r.record(layer, eqn)
    if op == "avg":
        r.pending[act.name] = eqn  # until divided by H·W
    return act


def _reshape(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    x = ins[0]
    out = _out(eqn)
    if isinstance(x, Act) and eqn.outvars[0].aval.shape[0] == r.batch:
        shape = r.shapes[x.name]
        if out == shape:
            return x
        if len(shape) == 3 and out == (math.prod(shape),):
            layer = Layer(
                r.name("flatten", numbered=False), "flatten", shape, out, inputs=(x.name,)
            )
            return r.record(layer, eqn)
    raise r.refuse(eqn, f"reshaping to {out} (only flattening a map to a vector is supported)")


def _concat(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    if not all(isinstance(x, Act) and len(r.shapes[x.name]) == 3 for x in ins) or (
        eqn.params["dimension"] != 3
    ):
        raise r.refuse(eqn, "only concatenating maps of layers along the channels is supported")
    names = tuple(x.name for x in ins)  # type: ignore[union-attr]
    out = _out(eqn)
    layer = Layer(r.name("concat"), "concat", out, out, inputs=names)
    return r.record(layer, eqn)


HANDLERS: dict[str, Handler] = {
    "conv_general_dilated": _conv,
    "dot_general": _dense,
    "add": _add,
    "div": _div,
    "reduce_window_max": _window,
    "reduce_window_sum": _window,
    "reduce_max": _reduce,
    "reduce_sum": _reduce,
    "reshape": _reshape,
    "concatenate": _concat,
}


def structural(r: Reader, eqn: Any, ins: list[Value], uses: Counter[Any]) -> Value:
    """The value of a structural equation (conv, dense, add, pooling, ...); refuse others."""
    handler = HANDLERS.get(eqn.primitive.name)
    if handler is None:
        raise r.refuse(eqn, f"not an operation the explainer knows (supported: {SUPPORTED_OPS})")
    return handler(r, eqn, ins, uses)


def batchnorm(r: Reader, scope: str, eqns: list[Any]) -> None:
    """A batch norm's equations (one name scope) as one layer, checked on test values."""
    path, epsilon = r.norms[scope]
    made = {v for e in eqns for v in e.outvars}
    outside = [v for e in eqns for v in e.invars if not is_literal(v) and v not in made]
    values = {v: r.read(v) for v in outside}
    acts = {v for v, x in values.items() if isinstance(x, Act | Run)}
    if len(acts) != 1:
        raise r.refuse(eqns[0], "a batch norm that reads more than one activation")
    (x_var,) = acts
    act = r.materialise(x_var) if isinstance(values[x_var], Run) else values[x_var]
    assert isinstance(act, Act)
    stats = {x.path[-1]: x for x in values.values() if isinstance(x, Par)}
    shape = r.shapes[act.name]
    if not {"mean", "var"} <= set(stats) or stats["mean"].value.shape != shape[-1:]:
        raise r.refuse(eqns[0], "a batch norm over another axis than the channels")
    params: dict[str, Any] = {
        k: stats[k].value if k in stats else None for k in ("mean", "var", "scale", "bias")
    }
    out = eqns[-1].outvars[0]
    name = r.name(dotted(path), numbered=False)
    layer = Layer(name, "batchnorm", shape, shape, options={"epsilon": epsilon}, inputs=(act.name,))
    t = np.random.default_rng(1).normal(0, 2, (r.batch, *shape)).astype(np.float32)
    got = evaluate(eqns, lambda v: t if v is x_var else r.read(v).value)[out]  # type: ignore[union-attr]
    want = (t - params["mean"]) / np.sqrt(params["var"] + epsilon)
    want = want * (1 if params["scale"] is None else params["scale"]) + (
        0 if params["bias"] is None else params["bias"]
    )
    if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
        raise r.refuse(eqns[0], "a batch norm that does not use its running statistics")
    r.params[name] = params
    r.paths[name] = {k: stats[k].path for k in params if k in stats}
    r.env[out] = r.record(layer, eqns[0], source=r.label(path))


__all__ = ["HANDLERS", "SUPPORTED_OPS", "batchnorm", "structural"]
