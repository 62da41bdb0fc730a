"""Read `Layer` records from a jaxpr: what a traced forward pass computes, equation by equation.

`Reader.walk` reads the equations of ``jax.make_jaxpr(forward)(params, x)``:
``conv_general_dilated`` (+ a per-channel bias add) → conv; ``dot_general`` (+ bias) → dense;
a batch norm's equations (grouped by a name scope, see `cnn_explainer_widget.traced`) →
batchnorm; ``reduce_window_max`` / ``reduce_window_sum`` ÷ window → pool; ``reduce_max`` /
``reduce_sum`` ÷ H·W over the map → global_pool; the sum of activations → add; ``concatenate``
on channels → concat; ``reshape`` to a vector → flatten; runs of elementwise operations (or a
row softmax) → what `cnn_explainer_widget._traced_ops.identify` recognises, cut into known
functions where needed (``tanh(relu(x))`` is two layers). Calls (``jit``, ``custom_jvp_call``)
are recognised whole or read inside. Anything else raises a `TraceError` naming the operation
and the line of the user's code it comes from.
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from cnn_explainer_widget._traced_layers import structural
from cnn_explainer_widget._traced_ops import (
    Act,
    Const,
    Identified,
    Par,
    Run,
    TraceError,
    Value,
    dotted,
    evaluate,
    identify,
)
from cnn_explainer_widget.layers import Layer

#: Calls whose inside is read when they are not one recognised function.
_CALLS = {"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call"}
#: Operations a parameter may go through on its way to a layer (shape changes only).
_PARAM_OPS = {"reshape", "broadcast_in_dim", "squeeze", "expand_dims", "convert_element_type"}


def _scope(eqn: Any) -> str | None:
    """The batch-norm name scope (``cnnx_bn_<n>``) an equation was traced in, if any."""
    return next(
        (s for s in str(eqn.source_info.name_stack).split("/") if s.startswith("cnnx_bn_")), None
    )


def _literal(v: Any) -> bool:
    return hasattr(v, "val")


class Reader:
    """Builds `Layer` records while walking a jaxpr.

    ``where(eqn)`` says where an equation comes from in the user's code and ``label(path)``
    names a module by its path (``"ResBlock.conv1"``); ``norms[scope]`` gives a batch-norm
    scope's module path and epsilon; ``input_shape`` and ``batch`` are the traced input's.
    """

    def __init__(
        self,
        where: Callable[[Any], str],
        label: Callable[[tuple[Any, ...]], str],
        norms: dict[str, tuple[tuple[Any, ...], float]],
        input_shape: tuple[int, ...],
        batch: int,
    ) -> None:
        self.where, self.label, self.norms, self.batch = where, label, norms, batch
        self.layers: list[Layer] = []
        self.params: dict[str, dict[str, np.ndarray | None]] = {}
        self.paths: dict[str, dict[str, tuple[Any, ...]]] = {}
        self.shapes: dict[str, tuple[int, ...]] = {"input": input_shape}
        self.pending: dict[str, Any] = {}  # a window or map sum → its equation, until divided
        self.fresh: dict[Any, str] = {}  # output variable → the add or conv/dense that made it
        self.counts: Counter[str] = Counter()
        self.env: dict[Any, Value] = {}

    # -- records ---------------------------------------------------------------------------
    def name(self, base: str, numbered: bool = True) -> str:
        """A new unique layer name from ``base`` (a module path is kept as it is if free)."""
        taken = {*self.shapes, "logits", "probabilities"}
        if not numbered and base not in taken:
            return base
        while True:
            self.counts[base] += 1
            candidate = f"{base}_{self.counts[base]}"
            if candidate not in taken:
                return candidate

    def record(self, layer: Layer, eqn: Any, source: str | None = None) -> Act:
        """Append ``layer`` and say where it comes from."""
        where = self.where(eqn)
        self.layers.append(replace(layer, source=f"{source} ({where})" if source else where))
        self.shapes[layer.name] = layer.output_shape
        return Act(layer.name)

    def refuse(self, eqn: Any, reason: str) -> TraceError:
        return TraceError(f"cannot explain {eqn.primitive.name!r} at {self.where(eqn)}: {reason}")

    # -- walking ---------------------------------------------------------------------------
    def walk(self, jaxpr: Any, consts: Sequence[Any], args: Sequence[Value]) -> list[Value]:
        """Read ``jaxpr``'s equations with ``args`` bound to its inputs; its outputs' values."""
        env = self.env
        env.update({v: Const(np.asarray(c)) for v, c in zip(jaxpr.constvars, consts, strict=True)})
        env.update(zip(jaxpr.invars, args, strict=True))
        uses = Counter(v for e in jaxpr.eqns for v in e.invars if not _literal(v))
        uses.update(v for v in jaxpr.outvars if not _literal(v))
        done: set[int] = set()
        for i, eqn in enumerate(jaxpr.eqns):
            if i in done:
                continue
            scope = _scope(eqn)
            if scope is not None and scope in self.norms:
                group = [j for j in range(i, len(jaxpr.eqns)) if _scope(jaxpr.eqns[j]) == scope]
                done.update(group)
                self._batchnorm(scope, [jaxpr.eqns[j] for j in group])
                continue
            self._eqn(eqn, uses)
        return [self.read(v) for v in jaxpr.outvars]

    def read(self, v: Any) -> Value:
        return Const(np.asarray(v.val)) if _literal(v) else self.env[v]

    def _eqn(self, eqn: Any, uses: Counter[Any]) -> None:
        prim, outs = eqn.primitive.name, eqn.outvars
        ins = [self.read(v) for v in eqn.invars]
        if all(isinstance(x, Const) for x in ins):  # constants only: compute them now
            values = evaluate([eqn], lambda v: self.read(v).value)  # type: ignore[union-attr]
            self.env.update({v: Const(np.asarray(values[v])) for v in outs})
            return
        if not any(isinstance(x, Act | Run) for x in ins):  # a parameter being reshaped
            par = next(x for x in ins if isinstance(x, Par))
            if prim not in _PARAM_OPS or len(outs) != 1:
                raise self.refuse(eqn, f"it computes with the parameter {dotted(par.path)}")
            value = evaluate([eqn], lambda v: self.read(v).value)[outs[0]]  # type: ignore[union-attr]
            self.env[outs[0]] = Par(par.path, np.asarray(value), raw=False)
            return
        root = self._one_root(ins)
        if root is not None and root not in self.pending and self._rowwise(eqn, root):
            before = next((x.eqns for x in ins if isinstance(x, Run)), ())
            seen = set(before)
            for x in ins:  # two runs on the same layer meeting (x · sigmoid(x))
                if isinstance(x, Run):
                    before += tuple(e for e in x.eqns if e not in seen)
                    seen.update(x.eqns)
            self.env.update({v: Run(root, (*before, eqn)) for v in outs})
            return
        ins = [
            self.materialise(v) if isinstance(x, Run) else x
            for x, v in zip(ins, eqn.invars, strict=True)
        ]
        if prim in _CALLS:
            closed = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
            if closed is None:
                raise self.refuse(eqn, "a call whose inside cannot be read")
            inner = getattr(closed, "jaxpr", closed)
            results = self.walk(inner, list(getattr(closed, "consts", ())), ins)
            self.env.update(zip(outs, results, strict=True))
            return
        self.env[outs[0]] = structural(self, eqn, ins, uses)

    def _one_root(self, ins: Sequence[Value]) -> str | None:
        roots = {x.name if isinstance(x, Act) else x.root for x in ins if isinstance(x, Act | Run)}
        if len(roots) != 1 or any(isinstance(x, Par) for x in ins):
            return None
        return roots.pop()

    def _rowwise(self, eqn: Any, root: str) -> bool:
        """Whether ``eqn`` keeps to the elementwise (or, on vectors, row-wise) family."""
        full = (self.batch, *self.shapes[root])
        allowed = {full} if len(full) != 2 else {full, (self.batch,), (self.batch, 1)}
        if any(tuple(v.aval.shape) not in allowed for v in eqn.outvars):
            return False
        axes = eqn.params.get("axes")
        return axes is None or (tuple(axes) == (1,) and len(full) == 2)

    # -- elementwise runs ------------------------------------------------------------------
    def materialise(self, var: Any) -> Act:
        """Turn the run that computes ``var`` into activation layers (or refuse it)."""
        run = self.env[var]
        assert isinstance(run, Run)
        needed, eqns = {var}, list[Any]()
        for eqn in reversed(run.eqns):  # the equations ``var`` depends on, in order
            if needed & set(eqn.outvars):
                eqns.insert(0, eqn)
                needed |= {v for v in eqn.invars if not _literal(v)}
        root = run.root
        pieces = self._cut(eqns, lambda v: self._is(v, root), 0)
        if pieces is None:
            ops = ", ".join(sorted({e.primitive.name for e in eqns}))
            raise TraceError(
                f"cannot explain the elementwise operations {ops} at {self.where(eqns[0])}: they "
                "compute no activation function the explainer knows (relu, gelu, tanh, "
                "sigmoid, leaky_relu, elu, silu) nor a final softmax"
            )
        act = Act(run.root)
        for (function, options), last in pieces:
            act = self._activation(function, options, act, last)
        self.env[var] = act
        return act

    def _is(self, v: Any, root: str) -> bool:
        value = self.env.get(v)
        return isinstance(value, Act) and value.name == root

    def _cut(
        self, eqns: list[Any], is_root: Callable[[Any], bool], start: int
    ) -> list[tuple[Identified, Any]] | None:
        """Split ``eqns[start:]`` into runs that are each a known function, or None."""
        for stop in range(len(eqns), start, -1):
            piece = eqns[start:stop]
            last = piece[-1]
            if len(last.outvars) != 1:
                continue
            out = last.outvars[0]
            rest = eqns[stop:]
            made = {v for e in rest for v in e.outvars}
            reads = {v for e in rest for v in e.invars if not _literal(v)} - made
            if rest and not reads <= {out} | {v for v in reads if self._const(v)}:
                continue
            found = identify(
                self._runner(piece, out, is_root), (self.batch, *self._root_shape(piece, is_root))
            )
            if found is None:
                continue
            if not rest:
                return [(found, last)]
            tail = self._cut(eqns, functools.partial(operator.is_, out), stop)
            if tail is not None:
                return [(found, last), *tail]
        return None

    def _root_shape(self, piece: list[Any], is_root: Callable[[Any], bool]) -> tuple[int, ...]:
        v = next(v for e in piece for v in e.invars if not _literal(v) and is_root(v))
        return tuple(v.aval.shape[1:])

    def _const(self, v: Any) -> bool:
        return isinstance(self.env.get(v), Const)

    def _runner(self, piece: list[Any], out: Any, is_root: Callable[[Any], bool]) -> Any:
        def run(t: np.ndarray) -> Any:
            def read(v: Any) -> Any:
                if is_root(v):
                    return t
                value = self.env[v]
                assert isinstance(value, Const)
                return value.value

            return evaluate(piece, read)[out]

        return run

    def _activation(self, function: str, options: dict[str, Any], act: Act, eqn: Any) -> Act:
        if function == "identity":
            return act
        shape = self.shapes[act.name]
        name = self.name(function, numbered=function != "softmax")
        if function == "softmax":
            layer = Layer(name, "softmax", shape, shape, inputs=(act.name,))
        else:
            layer = Layer(
                name, "activation", shape, shape, function=function, options=options,
                inputs=(act.name,),
            )  # fmt: skip
        return self.record(layer, eqn)

    # -- batch norm ------------------------------------------------------------------------
    def _batchnorm(self, scope: str, eqns: list[Any]) -> None:
        path, epsilon = self.norms[scope]
        made = {v for e in eqns for v in e.outvars}
        outside = [v for e in eqns for v in e.invars if not _literal(v) and v not in made]
        values = {v: self.read(v) for v in outside}
        acts = {v for v, x in values.items() if isinstance(x, Act | Run)}
        if len(acts) != 1:
            raise self.refuse(eqns[0], "a batch norm that reads more than one activation")
        (x_var,) = acts
        act = self.materialise(x_var) if isinstance(values[x_var], Run) else values[x_var]
        assert isinstance(act, Act)
        stats = {x.path[-1]: x for x in values.values() if isinstance(x, Par)}
        shape = self.shapes[act.name]
        if not {"mean", "var"} <= set(stats) or stats["mean"].value.shape != shape[-1:]:
            raise self.refuse(eqns[0], "a batch norm over another axis than the channels")
        params: dict[str, Any] = {
            k: stats[k].value if k in stats else None for k in ("mean", "var", "scale", "bias")
        }
        out = eqns[-1].outvars[0]
        name = self.name(dotted(path), numbered=False)
        layer = Layer(
            name, "batchnorm", shape, shape, options={"epsilon": epsilon}, inputs=(act.name,)
        )
        t = np.random.default_rng(1).normal(0, 2, (self.batch, *shape)).astype(np.float32)
        got = evaluate(eqns, lambda v: t if v is x_var else self.read(v).value)[out]  # type: ignore[union-attr]
        want = (t - params["mean"]) / np.sqrt(params["var"] + epsilon)
        want = want * (1 if params["scale"] is None else params["scale"]) + (
            0 if params["bias"] is None else params["bias"]
        )
        if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
            raise self.refuse(eqns[0], "a batch norm that does not use its running statistics")
        self.params[name] = params
        self.paths[name] = {k: stats[k].path for k in params if k in stats}
        self.env[out] = self.record(layer, eqns[0], source=self.label(path))

    # -- the end ---------------------------------------------------------------------------
    def finish(self, var: Any) -> list[Layer]:
        """The layers that compute output ``var``, ending in a dense layer and its softmax."""
        out = self.read(var)
        if isinstance(out, Run):
            out = self.materialise(var)
        if not isinstance(out, Act) or out.name == "input":
            raise TraceError("the model's output is not computed from its input by layers")
        reach, todo = set(), [out.name]
        by_name = {la.name: la for la in self.layers}
        while todo:
            name = todo.pop()
            if name != "input" and name not in reach:
                reach.add(name)
                todo.extend(by_name[name].inputs)
        layers = [la for la in self.layers if la.name in reach]
        for name, eqn in self.pending.items():
            if name in reach:
                raise self.refuse(
                    eqn, "a sum over a window or the map that is not divided by its size"
                )
        last = layers[-1]
        if last.kind == "dense":
            shape = last.output_shape
            layers.append(
                Layer(
                    self.name("softmax", numbered=False),
                    "softmax",
                    shape,
                    shape,
                    inputs=(last.name,),
                    source=last.source,
                )
            )
        elif last.kind != "softmax" or by_name[last.inputs[0]].kind != "dense":
            raise TraceError(
                f"the model's output comes from {last.kind} {last.name!r} ({last.source}); the "
                "explainer needs class scores from a final dense layer (nnx.Linear), optionally "
                "followed by a softmax"
            )
        return layers


__all__ = ["Reader"]
