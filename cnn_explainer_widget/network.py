"""A network: `Layer` records with their weights, and one jitted forward pass over them.

`Network` holds the layer descriptions (`cnn_explainer_widget.layers`: a sequence, or a graph
whose layers name the layers they read) and the parameters of its conv, dense and batch-norm
layers, and runs a single `jax.jit`-compiled forward pass (`cnn_explainer_widget._forward`)
that returns every intermediate activation. It also says which neurons exist, so a selection sent
by the front end is checked here (`Network.normalise_selection`).

Networks come from model sources: the shipped Tiny VGG (`cnn_explainer_widget.tiny_vgg`), a
user's Flax module (`cnn_explainer_widget.flax_module`) or a saved file
(`cnn_explainer_widget.model_file`); `cnn_explainer_widget.model.as_network` picks the source.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from cnn_explainer_widget._compile_cache import own_cache, paused_gc
from cnn_explainer_widget._forward import apply_layer, compiler_options, forward_flat, forward_into
from cnn_explainer_widget._selection import SelectionError, check_ablation, check_selection
from cnn_explainer_widget._spent import SpentOutputs
from cnn_explainer_widget.layers import Layer, connect


class Network:
    """`Layer` records in a topological order, their parameters, and one jitted forward pass.

    Parameters
    ----------
    layers:
        The layers in order (the input is implicit). A layer whose ``inputs`` is ``()`` reads
        the layer before it (the first one: ``"input"``); others name the layers they read,
        all listed before them. The network's output is its last layer: a softmax reading a
        dense layer (its "logits").
    params:
        ``{layer_name: {"kernel": array, "bias": array or None}}`` for conv and dense layers;
        ``{"mean", "var", "scale", "bias"}`` (scale and bias may be None) for batch norms.
    input_shape:
        ``(H, W, C)`` of one input image.
    classes:
        One name per output class.
    name:
        A display name.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        params: dict[str, dict[str, np.ndarray | None]],
        input_shape: tuple[int, int, int],
        classes: Sequence[str],
        name: str = "network",
    ) -> None:
        self.input_shape = tuple(int(v) for v in input_shape)
        self.layers: tuple[Layer, ...] = connect(layers, self.input_shape)
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        self.name = name
        # Own read-only copies: a numpy-backed parameter edited in place later must change
        # neither the kernels shown nor the outputs computed.
        self._params: dict[str, dict[str, np.ndarray | None]] | None = {
            k: {n: None if v is None else _frozen_copy(v) for n, v in p.items()}
            for k, p in params.items()
        }
        n_out = self.layers[-1].output_shape[0]
        if len(self.classes) != n_out:
            raise ValueError(f"{len(self.classes)} class names given for {n_out} network outputs")
        # jax.device_put, not jnp.asarray: the latter compiles a small program per shape (five
        # for Tiny VGG, 0.1-0.3 s of a fresh widget's start).
        self._device_params = jax.tree_util.tree_map(jax.device_put, self._params)
        self._param_layout = _layout(self._device_params)  # what `set_weights` must be given
        # The jitted pass returns a flat tuple in layer order (no dict to sort or rebuild), and
        # takes the parameters as one pre-flattened tuple of leaves.
        leaves, treedef = jax.tree_util.tree_flatten(self._device_params)
        self._param_leaves = tuple(leaves)
        options = compiler_options(self.layers)
        # Also the pass with some channels set to 0: ``keep`` masks instead of None make it
        # another trace, compiled once per set of ablated layers.
        self._forward = jax.jit(
            functools.partial(forward_flat, self.layers, treedef), compiler_options=options
        )
        # The same pass writing into a previous large result's buffers (`_spent`).
        self._forward_into = jax.jit(
            functools.partial(forward_into, self.layers, treedef),
            compiler_options=options,
            donate_argnums=(4,),
            keep_unused=True,
        )
        self._spent = SpentOutputs()
        self._bytes_per_image = 4 * sum(int(np.prod(la.output_shape)) for la in self.layers)
        # Calls already compiled, by (batch size, ablated layers, into spent buffers): the first
        # call of each compiles with JAX's persistent cache in the package's folder and no
        # garbage collection (`_compile_cache.own_cache`, `paused_gc`).
        self._compiled: set[tuple[int, tuple[str, ...] | None, bool]] = set()
        # A run-time True: each fused convolution sits in a `lax.cond` on it (`forward_flat`).
        self._once = jax.device_put(np.True_) if jax.default_backend() == "cpu" else None
        self._keys = self.keys
        # Layer name -> its key in an `activations` result (the last dense is "logits", ...).
        self._key_of = {
            "input": "input",
            **dict(zip((la.name for la in self.layers), self._keys[1:], strict=True)),
        }

    def same_structure(self, other: Network) -> bool:
        """Whether ``other`` has the same layers, classes and parameter shapes."""
        return (
            self.layers == other.layers
            and self.input_shape == other.input_shape
            and self.classes == other.classes
            and _structure(self.params) == _structure(other.params)
            and all(
                a.shape == b.shape
                for a, b in zip(self._param_leaves, other._param_leaves, strict=True)
            )
        )

    def use_weights_of(self, other: Network) -> None:
        """Take ``other``'s weights (same structure), keeping this network's compiled pass."""
        if not self.same_structure(other):
            raise ValueError("use_weights_of needs a network of the same structure")
        self._params = other._params
        self._device_params = other._device_params
        self._param_leaves = other._param_leaves

    @property
    def params(self) -> dict[str, dict[str, np.ndarray | None]]:
        """``{layer_name: {"kernel": array, "bias": array or None}}``: the weights, numpy."""
        if self._params is None:
            self._params = {
                name: {k: None if v is None else np.asarray(v) for k, v in p.items()}
                for name, p in self._device_params.items()
            }
        return self._params

    def set_weights(self, params: dict[str, dict[str, Any]]) -> None:
        """Use ``params`` (same names and shapes, numpy or JAX arrays) from now on.

        The compiled pass is kept; float32 JAX arrays are used as they are (no copy).

        Raises
        ------
        ValueError
            If a layer or a shape differs from the current parameters.
        """
        device: dict[str, dict[str, Any]] = {}
        for name, p in params.items():
            device[name] = {
                k: v if v is None or _is_f32_array(v) else jax.device_put(np.asarray(v, np.float32))
                for k, v in p.items()
            }
        # The order jax.tree_util flattens a dict of dicts in: sorted keys, Nones left out.
        leaves = [
            v for name in sorted(device) for _, v in sorted(device[name].items()) if v is not None
        ]
        if _layout(device) != self._param_layout or any(
            a.shape != b.shape for a, b in zip(leaves, self._param_leaves, strict=True)
        ):
            raise ValueError("set_weights needs parameters of the same layers and shapes")
        self._params = None  # numpy views made when `params` is read
        self._device_params = device
        self._param_leaves = tuple(leaves)

    @property
    def keys(self) -> tuple[str, ...]:
        """Names of the activations `activations` returns, in order."""
        return ("input", *(_activation_key(self.layers, i) for i in range(len(self.layers))))

    def key_of(self, name: str) -> str:
        """The key of layer ``name`` in an `activations` result ("logits" for the output)."""
        return self._key_of[name]

    def output_of(self, acts: dict[str, np.ndarray], name: str) -> np.ndarray:
        """Layer ``name``'s output (``"input"``: the input) in an `activations` result."""
        return acts[self._key_of[name]]

    def input_of(self, acts: dict[str, np.ndarray], name: str) -> np.ndarray:
        """What one-input layer ``name`` reads, in an `activations` result (its first input)."""
        return self.output_of(acts, self.layer(name).inputs[0])

    def inputs_of(self, acts: dict[str, np.ndarray], name: str) -> list[np.ndarray]:
        """Every output layer ``name`` reads, in its ``inputs`` order."""
        return [self.output_of(acts, source) for source in self.layer(name).inputs]

    def layer(self, name: str) -> Layer:
        """The layer called ``name``; `KeyError` naming the known layers otherwise."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r}; layers are {[la.name for la in self.layers]}")

    def selectable_layers(self) -> dict[str, tuple[int, tuple[int, int] | None]]:
        """Layer name → (neuron count, map size (H, W) or None) for every layer with neurons."""
        h, w, c = self.input_shape
        out: dict[str, tuple[int, tuple[int, int] | None]] = {"input": (c, (h, w))}
        for layer in self.layers:
            if layer.kind in ("flatten", "softmax"):
                continue
            shape = layer.output_shape
            out[layer.name] = (
                (shape[2], (shape[0], shape[1])) if len(shape) == 3 else (shape[0], None)
            )
        return out

    def normalise_selection(self, value: Any) -> dict[str, Any] | None:
        """Check a selection ``{'layer', 'index'[, 'y', 'x']}``; return it cleaned.

        Raises
        ------
        SelectionError
            Saying which key is wrong and what is accepted.
        """
        return check_selection(self.selectable_layers(), value)

    def normalise_ablation(self, ablate: Any) -> dict[str, tuple[int, ...]]:
        """Check ``{layer: [index, ...]}`` naming neurons to switch off; return it sorted.

        Layers are those with neurons (not the input, flatten or softmax); indices are
        channels (a dense layer's units). Layers with no index are dropped.

        Raises
        ------
        ValueError
            Naming the entry that is wrong and what is accepted.
        """
        counts = {
            la.name: la.output_shape[-1]
            for la in self.layers
            if la.kind not in ("flatten", "softmax")
        }
        return check_ablation(counts, ablate)

    def activations(self, x: np.ndarray, ablate: Any = None) -> dict[str, np.ndarray]:
        """Run the forward pass on one image ``(H, W, C)`` or a batch ``(N, H, W, C)``.

        ``ablate`` (see `normalise_ablation`) sets those channels of those layers' outputs to 0
        and recomputes every later layer.
        """
        off = self.normalise_ablation(ablate)
        x = _frozen_copy(self._check_input(x))  # never the caller's array back
        single = x.ndim == 3
        batch = x[None] if single else x
        # A previous result of this size that nobody may hold any more: written into.
        spent = None if off else self._spent.take(len(batch))
        compiled = (len(batch), tuple(off) if off else None, spent is not None)
        if compiled in self._compiled:
            outputs = self._run(batch, off, spent)
        else:
            with own_cache(), paused_gc():  # the first call compiles (or loads from the cache)
                outputs = self._run(batch, off, spent)
            self._compiled.add(compiled)
        # On CPU np.asarray is a zero-copy, read-only view of each result buffer (as
        # jax.device_get gives), about 0.5 µs an array.
        keys = self._keys
        result = {keys[0]: x}
        for key, out in zip(keys[1:], outputs, strict=True):
            result[key] = np.asarray(out)[0] if single else np.asarray(out)
        if not off:  # only now: the views above keep the next call from writing into them
            self._spent.keep(len(batch), outputs, self._bytes_per_image * len(batch))
        return result

    def _run(
        self,
        batch: np.ndarray,
        off: dict[str, tuple[int, ...]],
        spent: tuple[jax.Array, ...] | None = None,
    ) -> tuple[jax.Array, ...]:
        """The compiled pass on a checked batch, with the channels in ``off`` set to 0.

        ``spent``: a previous result of this batch size, donated for the outputs' memory.
        """
        if spent is not None:
            into: tuple[jax.Array, ...] = self._forward_into(
                self._param_leaves, batch, None, self._once, spent
            )
            return into
        if not off:
            outputs: tuple[jax.Array, ...] = self._forward(
                self._param_leaves, batch, None, self._once
            )
            return outputs
        masks = {}
        for name, indices in off.items():
            keep = np.ones(self.layer(name).output_shape[-1], bool)
            keep[list(indices)] = False
            masks[name] = keep
        ablated: tuple[jax.Array, ...] = self._forward(self._param_leaves, batch, masks, self._once)
        return ablated

    def _check_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray | jax.Array):
            raise TypeError(
                f"expected an image as a numpy array shaped {self.input_shape} (or a batch "
                f"(N, {', '.join(map(str, self.input_shape))})), got {type(x).__name__}; "
                "use load_image() to turn a path, PIL image or bytes into one"
            )
        array = np.asarray(x)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"expected a numeric image array, got dtype {array.dtype}")
        if array.shape[-3:] != self.input_shape or array.ndim not in (3, 4):
            raise ValueError(
                f"expected an image shaped {self.input_shape} or a batch (N, "
                f"{', '.join(map(str, self.input_shape))}), got shape {array.shape}"
            )
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise ValueError("image contains NaN or infinite values")
        return array


def _structure(params: dict[str, dict[str, np.ndarray | None]]) -> dict[str, dict[str, bool]]:
    """The tree structure of ``params``: its keys, and which entries are None (no bias)."""
    return {k: {n: v is None for n, v in p.items()} for k, p in params.items()}


def _frozen_copy(value: Any) -> np.ndarray:
    """A float32 copy of ``value`` that nobody can write (not even through the caller's array)."""
    out = np.array(value, dtype=np.float32, copy=True)
    out.flags.writeable = False
    return out


def _is_f32_array(v: Any) -> bool:
    # Not isinstance(v, jax.Array): an ABC check, ~20 µs on a busy machine.
    return not isinstance(v, np.ndarray) and hasattr(v, "devices") and v.dtype == np.float32


def _layout(params: dict[str, dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Which parameters (kernel, bias) each layer has."""
    return {
        name: tuple(sorted(k for k, v in p.items() if v is not None)) for name, p in params.items()
    }


def _activation_key(layers: Sequence[Layer], i: int) -> str:
    """Activations-dict key of layer ``i``: final dense 'logits', final softmax 'probabilities'."""
    layer = layers[i]
    if layer.kind == "softmax" and i == len(layers) - 1:
        return "probabilities"
    if layer.kind == "dense" and i == len(layers) - 2 and layers[-1].kind == "softmax":
        return "logits"
    return layer.name


__all__ = ["Network", "SelectionError", "apply_layer", "compiler_options"]
