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

from cnn_explainer_widget._traced_layers import batchnorm, structural
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
    is_literal,
)
from cnn_explainer_widget.layers import Layer

#: Calls whose inside is read when they are not one recognised function.
_CALLS = {"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call"}
#: Operations a parameter may go through on its way to a layer (shape changes only).
#: Operations that keep a shape but mix positions: never part of an elementwise run.
_NOT_ELEMENTWISE = (
    "conv", "dot", "reduce_window", "cum", "concatenate", "pad", "slice", "dynamic",
    "gather", "scatter", "rev", "transpose", "sort", "argsort", "fft", "select_and",
)  # fmt: skip
_PARAM_OPS = {"reshape", "broadcast_in_dim", "squeeze", "expand_dims", "convert_element_type"}


def _scope(eqn: Any) -> str | None:
    """The batch-norm name scope (``cnnx_bn_<n>``) an equation was traced in, if any."""
    return next(
        (s for s in str(eqn.source_info.name_stack).split("/") if s.startswith("cnnx_bn_")), None
    )


class Reader:
    """Builds `Layer` records while walking a jaxpr.

    ``where(eqn)`` says where an equation comes from in the user's code and ``label(path)``
    names a module by its path (``"ResBlock.conv1"``); ``norms[scope]`` gives a batch-norm
    scope's module path and epsilon; ``input_shape`` and ``batch`` are the traced input's.
    """

    def __init__(
        self,
        where: Callable[[Any], str | None],
        label: Callable[[tuple[Any, ...]], str],
        norms: dict[str, tuple[tuple[Any, ...], float]],
        input_shape: tuple[int, ...],
        batch: int,
    ) -> None:
        self._where, self.label, self.norms, self.batch = where, label, norms, batch
        self.calls: list[Any] = []  # the calls being read inside, outermost first
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

    def where(self, eqn: Any) -> str:
        """Where ``eqn`` comes from in the user's code (else: the call it was read inside)."""
        for candidate in (eqn, *reversed(self.calls)):
            where = self._where(candidate)
            if where is not None:
                return where
        return "an unknown line"

    def refuse(self, eqn: Any, reason: str) -> TraceError:
        return TraceError(f"cannot explain {eqn.primitive.name!r} at {self.where(eqn)}: {reason}")

    # -- walking ---------------------------------------------------------------------------
    def walk(self, jaxpr: Any, consts: Sequence[Any], args: Sequence[Value]) -> list[Value]:
        """Read ``jaxpr``'s equations with ``args`` bound to its inputs; its outputs' values."""
        env = self.env
        env.update({v: Const(np.asarray(c)) for v, c in zip(jaxpr.constvars, consts, strict=True)})
        env.update(zip(jaxpr.invars, args, strict=True))
        uses = Counter(v for e in jaxpr.eqns for v in e.invars if not is_literal(v))
        uses.update(v for v in jaxpr.outvars if not is_literal(v))
        done: set[int] = set()
        for i, eqn in enumerate(jaxpr.eqns):
            if i in done:
                continue
            scope = _scope(eqn)
            if scope is not None and scope in self.norms:
                group = [j for j in range(i, len(jaxpr.eqns)) if _scope(jaxpr.eqns[j]) == scope]
                done.update(group)
                batchnorm(self, scope, [jaxpr.eqns[j] for j in group])
                continue
            self._eqn(eqn, uses)
        return [self.read(v) for v in jaxpr.outvars]

    def read(self, v: Any) -> Value:
        return Const(np.asarray(v.val)) if is_literal(v) else self.env[v]

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
                raise self.refuse(
                    eqn,
                    f"it computes with the parameter {dotted(par.path)} (layers must use their "
                    "parameters as they are: a masked or otherwise computed kernel would not be "
                    "the one explained)",
                )
            value = evaluate([eqn], lambda v: self.read(v).value)[outs[0]]  # type: ignore[union-attr]
            self.env[outs[0]] = Par(par.path, np.asarray(value), raw=False)
            return
        root = self._one_root(ins)
        if (
            root is not None
            and root not in self.pending
            and self._rowwise(eqn, root)
            and (prim not in _CALLS or self._one_function(eqn))
        ):
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
            self.calls.append(eqn)
            results = self.walk(inner, list(getattr(closed, "consts", ())), ins)
            self.calls.pop()
            self.env.update(zip(outs, results, strict=True))
            return
        self.env[outs[0]] = structural(self, eqn, ins, uses)

    def _one_function(self, eqn: Any) -> bool:
        """Whether a call computes one known elementwise function (else: read inside it)."""
        (var,) = [v for v in eqn.invars if not is_literal(v) and not self._const(v)]
        out = eqn.outvars[0]
        shape = (self.batch, *tuple(var.aval.shape[1:]))
        return (
            identify(self._runner([eqn], out, functools.partial(operator.is_, var)), shape)
            is not None
        )

    def _one_root(self, ins: Sequence[Value]) -> str | None:
        roots = {x.name if isinstance(x, Act) else x.root for x in ins if isinstance(x, Act | Run)}
        if len(roots) != 1 or any(isinstance(x, Par) for x in ins):
            return None
        return roots.pop()

    def _rowwise(self, eqn: Any, root: str) -> bool:
        """Whether ``eqn`` keeps to the elementwise (or, on vectors, row-wise) family."""
        if eqn.primitive.name.startswith(_NOT_ELEMENTWISE):
            return False
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
                needed |= {v for v in eqn.invars if not is_literal(v)}
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
            reads = {v for e in rest for v in e.invars if not is_literal(v)} - made
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
        v = next(v for e in piece for v in e.invars if not is_literal(v) and is_root(v))
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


__all__ = ["Reader"]
