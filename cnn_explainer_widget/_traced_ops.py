"""What a run of traced JAX operations computes: evaluated on numbers, recognised by its values.

The tracer (`cnn_explainer_widget._tracer`) meets elementwise functions as JAX builds them:
``nnx.relu`` is one ``custom_jvp_call``, ``nnx.gelu`` a dozen primitives (``erfc``, ``mul``,
...), a softmax a row of reductions. Rather than knowing every way JAX may spell a function,
`identify` runs the operations on test values and compares the result with each function the
explainer knows (`cnn_explainer_widget.layers.ACTIVATIONS`, with ``negative_slope``/``alpha``
fitted from the values, and softmax): what the model computes decides, not how it was written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from cnn_explainer_widget.layers import ACTIVATIONS


class TraceError(ValueError):
    """An operation of the model that cannot be explained; the message says which and where."""


@dataclass(frozen=True)
class Act:
    """A layer's output (``"input"``: the image)."""

    name: str


@dataclass(frozen=True)
class Par:
    """A model parameter: its path in the module and its value (``raw``: not reshaped)."""

    path: tuple[Any, ...]
    value: np.ndarray
    raw: bool = True


@dataclass(frozen=True)
class Const:
    """A value that depends neither on the input nor on the parameters."""

    value: np.ndarray


@dataclass(frozen=True)
class Run:
    """Elementwise (or row-wise) equations on one layer's output, not yet recognised."""

    root: str
    eqns: tuple[Any, ...]


Value = Act | Par | Const | Run


def is_literal(v: Any) -> bool:
    """Whether a jaxpr operand is a literal (a constant written into the equation)."""
    return hasattr(v, "val")


def dotted(path: Sequence[Any]) -> str:
    """A module path as text: ``("block1", "conv1")`` → ``"block1.conv1"``."""
    return ".".join(str(p) for p in path)


#: The "function" of a recognised run: an activation with its options, softmax, or identity.
Identified = tuple[str, dict[str, Any]]


def evaluate(eqns: Sequence[Any], read: Callable[[Any], Any]) -> dict[Any, Any]:
    """Run jaxpr equations in order; ``read(var)`` gives a value not computed by them.

    Returns every variable the equations compute (JAX arrays).
    """
    values: dict[Any, Any] = {}

    def get(v: Any) -> Any:
        if hasattr(v, "val"):  # a Literal
            return v.val
        return values[v] if v in values else read(v)

    for eqn in eqns:
        params = eqn.primitive.get_bind_params(eqn.params)  # as jax.core.eval_jaxpr does
        with eqn.ctx.manager:
            out = eqn.primitive.bind(*(get(v) for v in eqn.invars), **params)
        outs = out if eqn.primitive.multiple_results else [out]
        for var, value in zip(eqn.outvars, outs, strict=True):
            values[var] = value
    return values


def sample_values(shape: tuple[int, ...]) -> np.ndarray:
    """Float32 test inputs of ``shape`` spread over [−6, 6], zero and ±1 included."""
    rng = np.random.default_rng(0)
    values = rng.uniform(-6.0, 6.0, shape).astype(np.float32)
    flat = values.reshape(-1)
    flat[: min(3, flat.size)] = np.array([0.0, 1.0, -1.0], np.float32)[: min(3, flat.size)]
    return values


def _close(a: np.ndarray, b: Any) -> bool:
    b = np.asarray(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=2e-5, atol=2e-6))


def _short(value: float) -> float:
    """``value`` with 6 significant digits (a fitted 0.20000000325 is the user's 0.2)."""
    return float(f"{value:.6g}")


def identify(fn: Callable[[np.ndarray], Any], shape: tuple[int, ...]) -> Identified | None:
    """What ``fn`` computes on arrays of ``shape``, or None if it is no function known here.

    Candidates: the identity, every activation of `ACTIVATIONS` (``leaky_relu``'s slope and
    ``elu``'s alpha read from the values at negative inputs, then checked everywhere), and a
    softmax over the last axis (for 2-D inputs).
    """
    t = sample_values(shape)
    try:
        got = np.asarray(fn(t), np.float64)
    except Exception:  # the run cannot be evaluated on its own (not elementwise after all)
        return None
    if got.shape != t.shape or not np.isfinite(got).all():
        return None
    if _close(got, t):
        return ("identity", {})
    for name in ("relu", "sigmoid", "tanh", "silu"):
        if _close(got, ACTIVATIONS[name](t)):
            return (name, {})
    for approximate in (False, True):
        if _close(got, jax.nn.gelu(t, approximate=approximate)):
            return ("gelu", {"approximate": approximate})
    negative = t < -0.5
    if negative.any():
        slope = _short(float(np.median(got[negative] / t[negative])))
        if _close(got, jax.nn.leaky_relu(t, negative_slope=slope)):
            return ("leaky_relu", {"negative_slope": slope})
        alpha = _short(float(np.median(got[negative] / np.expm1(t[negative]))))
        if _close(got, jax.nn.elu(t, alpha=alpha)):
            return ("elu", {"alpha": alpha})
    if t.ndim == 2 and _close(got, jax.nn.softmax(t, axis=-1)):
        return ("softmax", {})
    return None


__all__ = [
    "Act",
    "Const",
    "Identified",
    "Par",
    "Run",
    "TraceError",
    "Value",
    "dotted",
    "evaluate",
    "identify",
    "is_literal",
    "sample_values",
]
