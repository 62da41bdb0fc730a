"""Model source: any Flax NNX module, read from what its forward pass computes.

`network_from_module` traces the module with ``jax.make_jaxpr`` on a zeros input (its
parameters are inputs of the trace, so each is known by its path in the module) and reads the
equations into `Layer` records (`cnn_explainer_widget._tracer`): the user's code is the source
of truth, whatever its classes, attributes or control flow. The module is traced as it
predicts: a copy in inference mode (``nnx.BatchNorm`` with its running statistics,
``nnx.Dropout`` the identity); the user's module is not changed. Each batch norm's equations
are traced inside a name scope so they are read as one layer with the module's epsilon.

`module_weights` reads a traced network's weights again from the module (the widget and
`activations` re-read them on every use, so a model trained further is explained as it is now).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, TypeGuard

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax._src import source_info_util

from cnn_explainer_widget._text import short
from cnn_explainer_widget._traced_layers import SUPPORTED_OPS
from cnn_explainer_widget._traced_ops import Act, Par, Run, TraceError
from cnn_explainer_widget._tracer import Reader
from cnn_explainer_widget.flax_module import checked_input_shape
from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.network import Network

#: Batch size of the traced input: 2, so the batch axis is told apart from any size-1 axis.
_BATCH = 2
#: Frames in these folders are not the user's code: this package, and Flax and JAX (JAX's own
#: filter skips only the standard library's folder, which holds site-packages outside a venv but
#: not inside one, where Flax's BatchNorm would otherwise be named as the source).
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (jax.__file__, flax.__file__, __file__)
    if path is not None
)

#: Each traced network's parameters: layer name → {"kernel", ...: path in the module}.
_paths: weakref.WeakKeyDictionary[Network, dict[str, dict[str, tuple[Any, ...]]]] = (
    weakref.WeakKeyDictionary()
)


def _key(k: Any) -> Any:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return str(k)


def _leaves(state: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """``(path, array)`` of every leaf of an nnx state, in ``jax.tree_util`` order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    out = []
    for keys, leaf in flat:
        path = tuple(_key(k) for k in keys)
        out.append((path[:-1] if path and path[-1] == "value" else path, leaf))
    return out


def _where(eqn: Any) -> str | None:
    """``file.py:line in function`` of the user's code that made ``eqn``, if known."""
    frames = source_info_util.user_frames(eqn.source_info.traceback)
    for frame in frames:
        if not os.path.abspath(frame.file_name).startswith(_LIBRARY_DIRS):
            file = os.path.basename(frame.file_name)
            return f"{file}:{frame.start_line} in {frame.function_name}"
    return None


@contextlib.contextmanager
def _batchnorm_scopes(norms: dict[str, tuple[tuple[Any, ...], float]]) -> Iterator[dict[int, str]]:
    """Trace every ``nnx.BatchNorm`` call inside a name scope ``cnnx_bn_<n>``.

    Yields ``{id(module): scope}``, to be filled (with ``norms``: scope → module path and
    epsilon) for the modules of the graph being traced.
    """
    scopes: dict[int, str] = {}
    original = nnx.BatchNorm.__call__

    def call(self: nnx.BatchNorm, *args: Any, **kwargs: Any) -> Any:
        scope = scopes.get(id(self))
        if scope is None:
            return original(self, *args, **kwargs)
        with jax.named_scope(scope):
            return original(self, *args, **kwargs)

    nnx.BatchNorm.__call__ = call  # type: ignore[method-assign]
    try:
        yield scopes
    finally:
        nnx.BatchNorm.__call__ = original  # type: ignore[method-assign]


def _inference_copy(model: nnx.Module) -> nnx.Module:
    """A copy of ``model`` (same arrays) as it predicts: running statistics, no dropout."""
    graphdef, state = nnx.split(model)
    copy = nnx.merge(graphdef, state)
    for _, node in nnx.iter_graph(copy):
        if isinstance(node, nnx.BatchNorm):
            node.use_running_average = True
        elif isinstance(node, nnx.Dropout):
            node.deterministic = True
    return copy


def network_from_module(
    model: nnx.Module,
    input_shape: Sequence[int],
    classes: Sequence[str] | None = None,
    name: str = "network",
) -> Network:
    """Read any Flax NNX module that maps ``(N, H, W, C)`` images to class scores as a `Network`.

    Raises
    ------
    TraceError
        Naming an operation that cannot be explained and the line of the model's code it
        comes from; or when the model does not end in class scores from a dense layer.
    ValueError
        When the model cannot run on an input shaped ``input_shape``.
    """
    h, w, c = checked_input_shape(input_shape)
    copy = _inference_copy(model)
    graphdef, state = nnx.split(copy)
    named = _leaves(state)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    norms: dict[str, tuple[tuple[Any, ...], float]] = {}
    paths = {id(node): tuple(path) for path, node in nnx.iter_graph(copy)}

    with _batchnorm_scopes(norms) as scopes:

        def forward(params: list[Any], x: jax.Array) -> Any:
            module = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, params))
            for path, node in nnx.iter_graph(module):
                if isinstance(node, nnx.BatchNorm):
                    scope = f"cnnx_bn_{len(norms)}"
                    scopes[id(node)] = scope
                    norms[scope] = (tuple(path), float(node.epsilon))
            return module(x)

        try:
            closed = jax.make_jaxpr(forward)(leaves, jnp.zeros((_BATCH, h, w, c), jnp.float32))
        except Exception as exc:  # the user's own code failed on this input
            raise ValueError(
                f"the model raised {type(exc).__name__} when run on an input shaped {(h, w, c)}: "
                f"{short(str(exc), 300)} (is input_shape the size it was made for?)"
            ) from exc
    del paths
    jaxpr = closed.jaxpr
    if len(jaxpr.outvars) != 1:
        raise TraceError("the model must return one array of class scores")
    reader = Reader(_where, lambda path: _label(copy, path), norms, (h, w, c), _BATCH)
    # Random-number keys (of a Dropout) are parameters too, with no value the explainer reads.
    args = [Par(path, _numbers(leaf)) for path, leaf in named]
    reader.walk(jaxpr, closed.consts, [*args, Act("input")])
    try:
        layers = _finish(reader, jaxpr.outvars[0])
    except TraceError:
        raise
    n_out = layers[-1].output_shape[0]
    classes = [f"class {k}" for k in range(n_out)] if classes is None else classes
    params = {la.name: reader.params[la.name] for la in layers if la.name in reader.params}
    network = Network(layers, params, (h, w, c), classes, name=name)
    _paths[network] = {la.name: reader.paths[la.name] for la in layers if la.name in params}
    return network


def _finish(r: Reader, var: Any) -> list[Layer]:
    """The layers that compute output ``var``, ending in a dense layer and its softmax."""
    out = r.read(var)
    if isinstance(out, Run):
        out = r.materialise(var)
    if not isinstance(out, Act) or out.name == "input":
        raise TraceError("the model's output is not computed from its input by layers")
    reach, todo = set(), [out.name]
    by_name = {la.name: la for la in r.layers}
    while todo:
        name = todo.pop()
        if name != "input" and name not in reach:
            reach.add(name)
            todo.extend(by_name[name].inputs)
    layers = [la for la in r.layers if la.name in reach]
    for name, eqn in r.pending.items():
        if name in reach:
            raise r.refuse(eqn, "a sum over a window or the map that is not divided by its size")
    last = layers[-1]
    if last.kind == "dense":
        shape = last.output_shape
        layers.append(
            Layer(
                r.name("softmax", numbered=False),
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


def _numbers(leaf: Any) -> np.ndarray:
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.number):
        return np.asarray(leaf)
    return np.zeros(0, np.float32)


def _label(model: nnx.Module, path: tuple[Any, ...]) -> str:
    """``Owner.attr`` for the module at ``path`` (``"ResBlock.conv1"``)."""
    if not path:
        return type(model).__name__
    owner: Any = model
    for key in path[:-1]:
        owner = owner[key] if isinstance(key, int) else getattr(owner, str(key), owner)
    return f"{type(owner).__name__}.{path[-1]}"


def module_weights(model: nnx.Module, network: Network) -> dict[str, dict[str, Any]]:
    """``model``'s current parameters for a network `network_from_module` made from it.

    Raises
    ------
    KeyError
        If ``network`` was not made by `network_from_module` or a parameter is gone.
    """
    paths = _paths[network]
    values = dict(_leaves(nnx.state(model)))
    result: dict[str, dict[str, Any]] = {}
    for name, params in network.params.items():
        result[name] = {
            key: None if old is None else jnp.reshape(values[paths[name][key]], old.shape)
            for key, old in params.items()
        }
    return result


def is_module(model: Any) -> TypeGuard[nnx.Module]:
    """Whether ``model`` is a Flax NNX module."""
    return isinstance(model, nnx.Module)


def structure(model: nnx.Module) -> Any:
    """What decides a traced network besides the weights: the module's graph definition."""
    return (type(model), nnx.graphdef(model))


__all__ = [
    "SUPPORTED_OPS",
    "TraceError",
    "is_module",
    "module_weights",
    "network_from_module",
    "structure",
]
