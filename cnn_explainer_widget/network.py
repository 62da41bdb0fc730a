"""A network: `Layer` records with their weights, and one jitted forward pass over them.

`Network` holds the sequence of layer descriptions (`cnn_explainer_widget.layers`) and the
parameters of its conv and dense layers, and runs a single `jax.jit`-compiled forward pass that
returns every intermediate activation. It also says which neurons exist, so a selection sent
by the front end is checked here (`Network.normalise_selection`).

Networks come from model sources: the shipped Tiny VGG (`cnn_explainer_widget.tiny_vgg`), a
user's Flax module (`cnn_explainer_widget.flax_module`) or a saved file
(`cnn_explainer_widget.model_file`); `cnn_explainer_widget.model.as_network` picks the source.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnn_explainer_widget._compile_cache import own_cache
from cnn_explainer_widget._convolution import LIBRARY_DOT_OPTIONS, conv, formulation, wants_library
from cnn_explainer_widget._text import short
from cnn_explainer_widget.layers import ACTIVATIONS, Layer

#: Keys of `Network.activations` that are not layer names.
_RESERVED = ("input", "logits", "probabilities")


class SelectionError(ValueError):
    """A selection that names no neuron of the network (see `Network.normalise_selection`)."""


class Network:
    """A sequence of `Layer` records with their parameters and one jitted forward pass.

    Parameters
    ----------
    layers:
        The layers in order (the input is implicit).
    params:
        ``{layer_name: {"kernel": array, "bias": array or None}}`` for conv and dense layers.
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
        self.layers: tuple[Layer, ...] = tuple(layers)
        names = [la.name for la in self.layers]
        clash = next((n for i, n in enumerate(names) if n in names[:i] or n in _RESERVED), None)
        if clash is not None:
            raise ValueError(
                f"layer name {clash!r} is used twice or is reserved ({', '.join(_RESERVED)} "
                "are keys of the activations); give each layer its own name"
            )
        self.input_shape = tuple(int(v) for v in input_shape)
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
        # The jitted pass returns a flat tuple in layer order (no dict to sort or rebuild), and
        # takes the parameters as one pre-flattened tuple of leaves.
        leaves, treedef = jax.tree_util.tree_flatten(self._device_params)
        self._param_leaves = tuple(leaves)
        options = compiler_options(self.layers)
        self._forward = jax.jit(
            functools.partial(_forward_flat, self.layers, treedef), compiler_options=options
        )
        # The same pass with some channels set to 0 (compiled once per set of ablated layers).
        self._forward_ablated = jax.jit(
            functools.partial(_forward_flat, self.layers, treedef), compiler_options=options
        )
        # Batch sizes (and ablated layers) already compiled: the first call of each compiles
        # with JAX's persistent cache in the package's folder (`_compile_cache.own_cache`).
        self._compiled: set[tuple[int, tuple[str, ...] | None]] = set()
        # A run-time True: each fused convolution sits in a `lax.cond` on it (`_forward_flat`).
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
        if _layout(device) != _layout(self._device_params) or any(
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
        """What layer ``name`` reads: the previous layer's output in an `activations` result."""
        position = [la.name for la in self.layers].index(name)
        return self.output_of(acts, "input" if position == 0 else self.layers[position - 1].name)

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
        if value is None:
            return None
        if not isinstance(value, dict):
            raise SelectionError(
                f"selected must be None or a dict like {{'layer': 'conv_1_1', 'index': 0}}, "
                f"got {type(value).__name__}"
            )
        extra = set(value) - {"layer", "index", "y", "x"}
        if extra:
            raise SelectionError(
                f"selected has unknown key(s) {sorted(map(short, extra))[:5]}; "
                "allowed: layer, index, y, x"
            )
        layers = self.selectable_layers()
        layer, index = value.get("layer"), value.get("index")
        if not isinstance(layer, str) or layer not in layers:
            raise SelectionError(
                f"selected['layer'] must be one of {list(layers)}, got {short(layer)}"
            )
        count, size = layers[layer]
        if type(index) is not int or not 0 <= index < count:
            raise SelectionError(
                f"selected['index'] must be an int in [0, {count - 1}] for {layer}, "
                f"got {short(index)}"
            )
        result: dict[str, Any] = {"layer": layer, "index": index}
        if "y" in value or "x" in value:
            y, x = value.get("y"), value.get("x")
            if size is None:
                raise SelectionError(f"{layer} neurons have no map: give no 'y'/'x'")
            for axis, v, n in (("y", y, size[0]), ("x", x, size[1])):
                if type(v) is not int or not 0 <= v < n:
                    raise SelectionError(
                        f"selected[{axis!r}] must be an int in [0, {n - 1}] for {layer}, "
                        f"got {short(v)}"
                    )
            result.update(y=y, x=x)
        return result

    def normalise_ablation(self, ablate: Any) -> dict[str, tuple[int, ...]]:
        """Check ``{layer: [index, ...]}`` naming neurons to switch off; return it sorted.

        Layers are those with neurons (conv, activation, pool, dense; not the input, flatten or
        softmax); indices are channels (a dense layer's units). Layers with no index are dropped.

        Raises
        ------
        ValueError
            Naming the entry that is wrong and what is accepted.
        """
        if ablate is None:
            return {}
        if not isinstance(ablate, dict):
            raise ValueError(
                "ablate must be a dict like {'conv_1_2': [3, 5]} (layer name → channel "
                f"indices), got {type(ablate).__name__}"
            )
        counts = {
            la.name: la.output_shape[-1]
            for la in self.layers
            if la.kind not in ("flatten", "softmax")
        }
        result: dict[str, tuple[int, ...]] = {}
        for name, indices in ablate.items():
            if not isinstance(name, str) or name not in counts:
                shown = repr(name)[:40]
                raise ValueError(
                    f"ablate: no layer {shown} with neurons; layers are {list(counts)}"
                )
            if isinstance(indices, str | bytes) or not isinstance(
                indices, Sequence | set | frozenset | np.ndarray
            ):
                kind = type(indices).__name__
                raise ValueError(f"ablate[{name!r}] must be a list of neuron indices, got {kind}")
            n = counts[name]
            for i in indices:
                if isinstance(i, bool | np.bool_) or not isinstance(i, int | np.integer):
                    raise ValueError(f"ablate[{name!r}]: indices must be ints, got {repr(i)[:40]}")
                if not 0 <= int(i) < n:
                    raise ValueError(f"ablate[{name!r}]: index {int(i)} is not in [0, {n - 1}]")
            indices = list(indices)
            if indices:
                result[name] = tuple(sorted({int(i) for i in indices}))
        return {la.name: result[la.name] for la in self.layers if la.name in result}

    def activations(self, x: np.ndarray, ablate: Any = None) -> dict[str, np.ndarray]:
        """Run the forward pass on one image ``(H, W, C)`` or a batch ``(N, H, W, C)``.

        ``ablate`` (see `normalise_ablation`) sets those channels of those layers' outputs to 0
        and recomputes every later layer.
        """
        off = self.normalise_ablation(ablate)
        x = _frozen_copy(self._check_input(x))  # never the caller's array back
        single = x.ndim == 3
        batch = x[None] if single else x
        compiled = (len(batch), tuple(off) if off else None)
        if compiled in self._compiled:
            outputs = self._run(batch, off)
        else:
            with own_cache():
                outputs = self._run(batch, off)
            self._compiled.add(compiled)
        # On CPU np.asarray is a zero-copy, read-only view of each result buffer (as
        # jax.device_get gives), about 0.5 µs an array.
        keys = self._keys
        if single:
            result = {keys[0]: x}
            for key, out in zip(keys[1:], outputs, strict=True):
                result[key] = np.asarray(out)[0]
            return result
        result = {keys[0]: x}
        for key, out in zip(keys[1:], outputs, strict=True):
            result[key] = np.asarray(out)
        return result

    def _run(self, batch: np.ndarray, off: dict[str, tuple[int, ...]]) -> tuple[jax.Array, ...]:
        """The compiled pass on a checked batch, with the channels in ``off`` set to 0."""
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
        ablated: tuple[jax.Array, ...] = self._forward_ablated(
            self._param_leaves, batch, masks, self._once
        )
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
            and _formulation(layer, 1) == "lax"
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
    return (*layer.kernel_size, layer.input_shape[2], layer.output_shape[2])


def _formulation(layer: Layer, n: int) -> str:
    """The convolution formulation of conv ``layer`` for a batch of ``n``."""
    assert layer.padding
    hw = (layer.input_shape[0], layer.input_shape[1])
    return formulation(n, hw, _kernel_shape(layer), layer.padding)


def _activation_key(layers: Sequence[Layer], i: int) -> str:
    """Activations-dict key of layer ``i``: final dense 'logits', final softmax 'probabilities'."""
    layer = layers[i]
    if layer.kind == "softmax" and i == len(layers) - 1:
        return "probabilities"
    if layer.kind == "dense" and i == len(layers) - 2 and layers[-1].kind == "softmax":
        return "logits"
    return layer.name


def _forward_flat(
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
    (``broadcast``/``shift``, see `cnn_explainer_widget._convolution.conv`) in a ``lax.cond``
    on it. XLA:CPU fuses such a sum into every consumer: the layer's output, its ReLU and the
    next layer's input each computed it again (conv_1_1 three times). The result of a
    conditional is a buffer, so the sum is computed once; a constant predicate would be folded
    away, hence the argument.
    """
    params = jax.tree_util.tree_unflatten(treedef, leaves)
    outputs = []
    for layer in layers:
        p = params.get(layer.name, {})
        if once is not None and layer.kind == "conv" and _formulation(layer, x.shape[0]) != "lax":
            shape = (x.shape[0], *layer.output_shape)
            x = jax.lax.cond(
                once,
                functools.partial(apply_layer, layer, p),
                lambda v, shape=shape: jnp.zeros(shape, v.dtype),
                x,
            )
        else:
            x = apply_layer(layer, p, x)
        if keep is not None and layer.name in keep:
            x = jnp.where(keep[layer.name], x, 0.0)
        outputs.append(x)
    return tuple(outputs)


def apply_layer(layer: Layer, p: dict[str, Any], x: jax.Array) -> jax.Array:
    """Apply one layer to a batch ``x`` (NHWC for spatial layers, (N, F) otherwise)."""
    if layer.kind == "conv":
        assert layer.stride and layer.padding
        y = conv(x, p["kernel"], layer.stride, layer.padding)
        return y if p.get("bias") is None else y + p["bias"]
    if layer.kind == "activation":
        assert layer.function is not None
        return ACTIVATIONS[layer.function](x, **layer.options)
    if layer.kind == "pool":
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
    if layer.kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if layer.kind == "dense":
        product: jax.Array = x @ p["kernel"]
        return product if p.get("bias") is None else product + p["bias"]
    if layer.kind == "softmax":
        return jax.nn.softmax(x, axis=-1)
    raise ValueError(f"unknown layer kind {layer.kind!r}")


__all__ = ["Network", "SelectionError", "apply_layer"]
