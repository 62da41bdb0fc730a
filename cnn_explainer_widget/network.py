"""A network as a list of plain layer descriptions, and one jitted forward pass over it.

Every view of the widget explains a network the same way, whatever Flax module it came from:
as a sequence of `Layer` records (convolution, elementwise activation, pooling, flatten, dense,
softmax) with their real hyperparameters and weights. `Network` holds that sequence and runs a
single `jax.jit`-compiled forward pass that returns every intermediate activation.

`network_from_model` builds a `Network` from the shipped `TinyVGG` or from a user's
``nnx.Sequential`` of supported layers (see the README's "Your own network" section).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

LayerKind = Literal["conv", "activation", "pool", "flatten", "dense", "softmax"]
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


@dataclass(frozen=True)
class Layer:
    """One layer of a network, described by what it computes.

    Attributes
    ----------
    name:
        Unique layer name, e.g. ``"conv_1_1"``. Keys of `Network.activations` and of the widget's
        selection use it.
    kind:
        ``"conv"``, ``"activation"``, ``"pool"``, ``"flatten"``, ``"dense"`` or ``"softmax"``.
    output_shape:
        Shape of one example's output: ``(H, W, C)`` for spatial layers, ``(N,)`` otherwise.
    input_shape:
        Shape of one example's input to this layer.
    kernel_size, stride, padding:
        For ``conv`` and ``pool``: window size ``(kh, kw)``, stride ``(sh, sw)`` and explicit
        padding ``((top, bottom), (left, right))`` (SAME is resolved to numbers).
    function:
        For ``activation``: the function's name (a key of `ACTIVATIONS`); for ``pool``: ``"max"``
        or ``"avg"``.
    options:
        Extra keyword arguments of the function (``negative_slope`` of a leaky ReLU,
        ``count_include_pad`` of an average pool).
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


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a convolution or pooling along one axis: ⌊(n + p − k) / s⌋ + 1."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def resolve_padding(
    padding: Any, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]
) -> Padding:
    """Turn a Flax/lax padding spec ('SAME', 'VALID', int, or pairs) into explicit numbers."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0), (0, 0))
        if mode == "SAME":
            pads = []
            for n, k, s in zip(in_hw, kernel, stride, strict=True):
                out = -(-n // s)
                total = max((out - 1) * s + k - n, 0)
                pads.append((total // 2, total - total // 2))
            return (pads[0], pads[1])
        raise ValueError(f"padding {padding!r} is not supported; use 'SAME', 'VALID' or numbers")
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    pairs = [tuple(p) if isinstance(p, Sequence) else (int(p), int(p)) for p in padding]
    if len(pairs) != 2 or any(len(p) != 2 for p in pairs):
        raise ValueError(f"padding {padding!r} must give two (before, after) pairs")
    (t, b), (left, r) = pairs
    return ((int(t), int(b)), (int(left), int(r)))


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
        self.input_shape = tuple(int(v) for v in input_shape)
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        self.name = name
        self.params: dict[str, dict[str, np.ndarray | None]] = {
            k: {n: None if v is None else np.asarray(v, np.float32) for n, v in p.items()}
            for k, p in params.items()
        }
        n_out = self.layers[-1].output_shape[0]
        if len(self.classes) != n_out:
            raise ValueError(f"{len(self.classes)} class names given for {n_out} network outputs")
        self._device_params = jax.tree_util.tree_map(jnp.asarray, self.params)
        # The jitted pass returns a flat tuple in layer order (no dict to sort or rebuild), and
        # takes the parameters as one pre-flattened tuple of leaves.
        leaves, treedef = jax.tree_util.tree_flatten(self._device_params)
        self._param_leaves = tuple(leaves)
        self._forward = jax.jit(
            functools.partial(_forward_flat, self.layers, treedef),
            compiler_options=_compiler_options(),
        )
        # The same pass with some channels set to 0 (compiled once per set of ablated layers).
        self._forward_ablated = jax.jit(
            functools.partial(_forward_flat, self.layers, treedef),
            compiler_options=_compiler_options(),
        )
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
            and jax.tree_util.tree_structure(self._device_params)
            == jax.tree_util.tree_structure(other._device_params)
            and all(
                a.shape == b.shape
                for a, b in zip(self._param_leaves, other._param_leaves, strict=True)
            )
        )

    def use_weights_of(self, other: Network) -> None:
        """Take ``other``'s weights (same structure), keeping this network's compiled pass."""
        if not self.same_structure(other):
            raise ValueError("use_weights_of needs a network of the same structure")
        self.params = other.params
        self._device_params = other._device_params
        self._param_leaves = other._param_leaves

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
        x = self._check_input(x)
        single = x.ndim == 3
        batch = x[None] if single else x
        if off:
            masks = {}
            for name, indices in off.items():
                keep = np.ones(self.layer(name).output_shape[-1], bool)
                keep[list(indices)] = False
                masks[name] = keep
            outputs = self._forward_ablated(self._param_leaves, batch, masks)
        else:
            outputs = self._forward(self._param_leaves, batch)
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

    def _check_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray | jax.Array):
            raise TypeError(
                f"expected an image as a numpy array shaped {self.input_shape} (or a batch "
                f"(N, {', '.join(map(str, self.input_shape))})), got {type(x).__name__}; "
                "use load_image() to turn a path, PIL image or bytes into one"
            )
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"expected a numeric image array, got dtype {x.dtype}")
        if x.shape[-3:] != self.input_shape or x.ndim not in (3, 4):
            raise ValueError(
                f"expected an image shaped {self.input_shape} or a batch (N, "
                f"{', '.join(map(str, self.input_shape))}), got shape {x.shape}"
            )
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise ValueError("image contains NaN or infinite values")
        return x


def _compiler_options() -> dict[str, Any] | None:
    """XLA options for this package's own executables (the user's JAX settings stay as they are).

    On CPU, preferring 512-bit vectors lets XLA use AVX-512 where the processor has it (it is
    only a preference: other CPUs keep their widest vectors). bench/forward.py measured
    batch-32 throughput 2,510 → 3,180 images/s and one image 640 → 625 µs on the
    development machine.
    """
    if jax.default_backend() != "cpu":
        return None
    return {"xla_cpu_prefer_vector_width": 512}


def _activation_key(layers: Sequence[Layer], i: int) -> str:
    """Activations-dict key of layer ``i``: final dense 'logits', final softmax 'probabilities'."""
    layer = layers[i]
    if layer.kind == "softmax" and i == len(layers) - 1:
        return "probabilities"
    if layer.kind == "dense" and i == len(layers) - 2 and layers[-1].kind == "softmax":
        return "logits"
    return layer.name


def _forward(layers: tuple[Layer, ...], params: dict, x: jax.Array) -> dict[str, jax.Array]:
    """Pure forward pass over ``layers``, returning every layer's output (batch first)."""
    outputs: dict[str, jax.Array] = {}
    for i, layer in enumerate(layers):
        x = apply_layer(layer, params.get(layer.name, {}), x)
        outputs[_activation_key(layers, i)] = x
    return outputs


def _forward_flat(
    layers: tuple[Layer, ...],
    treedef: Any,
    leaves: tuple[jax.Array, ...],
    x: jax.Array,
    keep: dict[str, jax.Array] | None = None,
) -> tuple[jax.Array, ...]:
    """`_forward` on flattened parameters, returning the outputs as a tuple in layer order.

    ``keep`` maps a layer name to a boolean mask over its channels: the others are set to 0.
    """
    params = jax.tree_util.tree_unflatten(treedef, leaves)
    outputs = []
    for layer in layers:
        x = apply_layer(layer, params.get(layer.name, {}), x)
        if keep is not None and layer.name in keep:
            x = jnp.where(keep[layer.name], x, 0.0)
        outputs.append(x)
    return tuple(outputs)


def apply_layer(layer: Layer, p: dict, x: jax.Array) -> jax.Array:
    """Apply one layer to a batch ``x`` (NHWC for spatial layers, (N, F) otherwise)."""
    if layer.kind == "conv":
        assert layer.stride and layer.padding
        y = _conv(x, p["kernel"], layer.stride, layer.padding)
        return y if p.get("bias") is None else y + p["bias"]
    if layer.kind == "activation":
        return ACTIVATIONS[layer.function](x, **layer.options)
    if layer.kind == "pool":
        assert layer.kernel_size and layer.stride and layer.padding
        window = (1, *layer.kernel_size, 1)
        strides = (1, *layer.stride, 1)
        pads = ((0, 0), *layer.padding, (0, 0))
        if layer.function == "max":
            return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, pads)
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
        if layer.options.get("count_include_pad", True):
            return total / math.prod(layer.kernel_size)
        ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
        counts = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pads)
        return total / counts
    if layer.kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if layer.kind == "dense":
        y = x @ p["kernel"]
        return y if p.get("bias") is None else y + p["bias"]
    if layer.kind == "softmax":
        return jax.nn.softmax(x, axis=-1)
    raise ValueError(f"unknown layer kind {layer.kind!r}")


#: Force one convolution formulation ("lax", "broadcast" or "shift"); None picks by shape.
_CONV_IMPL: str | None = None
#: Largest intermediate (bytes) of the "shift" formulation; above it, lax.conv is faster.
_SHIFT_MAX_BYTES = 2 * 1024 * 1024


def _conv(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], padding: Padding) -> jax.Array:
    """An NHWC × HWIO convolution without bias, in the formulation fastest on CPU for its shape.

    All three compute the same sum (only float rounding differs). XLA:CPU's convolution is slow
    for Tiny VGG's few channels, so:

    - ``broadcast`` (few input channels, e.g. an RGB first layer): the kh·kw·C_in shifted input
      slices times kernel rows, summed in one fused elementwise loop;
    - ``shift`` (small maps): one matmul of every input pixel with every kernel tap,
      ``(N·H·W, C_in) @ (C_in, kh·kw·C_out)``, then the kh·kw shifted slices of that summed
      in one fused loop; a batch goes through in chunks whose tap products stay in cache
      (`_SHIFT_MAX_BYTES`), and only maps small enough for chunks of ≥ 4 images use it;
    - ``lax``: ``lax.conv_general_dilated`` otherwise.
    """
    kh, kw, cin, cout = kernel.shape
    impl = _CONV_IMPL
    n, h, w, _ = x.shape
    (top, bottom), (left, right) = padding
    hp, wp = h + top + bottom, w + left + right
    per_image = hp * wp * kh * kw * cout * 4  # bytes of one image's tap products ("shift")
    if impl is None:
        if cin <= 4:
            impl = "broadcast"
        elif n * per_image <= _SHIFT_MAX_BYTES or 4 * per_image <= _SHIFT_MAX_BYTES:
            impl = "shift"
        else:
            impl = "lax"
    if impl == "lax":
        return jax.lax.conv_general_dilated(
            x, kernel, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    if top or bottom or left or right:
        x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    sh, sw = stride
    oh = (hp - kh) // sh + 1
    ow = (wp - kw) // sw + 1

    def window(a: jax.Array, i: int, j: int) -> jax.Array:
        # Rows i, i + sh, ... and columns j, j + sw, ... of the (padded) map: oh × ow of them.
        return jax.lax.slice(
            a,
            (0, i, j, *([0] * (a.ndim - 3))),
            (n, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, *a.shape[3:]),
            (1, sh, sw, *([1] * (a.ndim - 3))),
        )

    terms: list[jax.Array] = []
    if impl == "broadcast":
        for i in range(kh):
            for j in range(kw):
                tap = window(x, i, j)
                terms.extend(tap[..., c : c + 1] * kernel[i, j, c] for c in range(cin))
    elif impl == "shift":
        chunk = max(1, min(n, _SHIFT_MAX_BYTES // per_image))
        while n % chunk:
            chunk -= 1
        if chunk < n:
            # Keep the tap products in cache: convolve `chunk` images at a time in a loop.
            parts = x.reshape(n // chunk, chunk, hp, wp, cin)
            y = jax.lax.map(lambda part: _conv(part, kernel, stride, ((0, 0), (0, 0))), parts)
            return y.reshape(n, *y.shape[2:])
        taps = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(cin, kh * kw * cout)
        z = (x.reshape(-1, cin) @ taps).reshape(n, hp, wp, kh * kw, cout)
        for i in range(kh):
            for j in range(kw):
                terms.append(window(z[:, :, :, i * kw + j, :], i, j))
    else:
        raise ValueError(f"unknown convolution formulation {impl!r}")
    y = terms[0]
    for t in terms[1:]:
        y = y + t
    return y


class Flatten(nnx.Module):
    """Flatten each example to a vector in (h, w, c) order, channels fastest, as Keras does."""

    def __call__(self, x: jax.Array) -> jax.Array:
        """Flatten all but the batch axis."""
        return x.reshape(x.shape[0], -1)


def _function_name(fn: Any) -> tuple[str, dict[str, Any]] | None:
    """Name and options of a supported elementwise activation, or None."""
    options: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        options = dict(fn.keywords)
        if fn.args:
            return None
        fn = fn.func
    for name, known in ACTIVATIONS.items():
        if fn is known or getattr(nnx, name, None) is fn:
            return name, options
    return None


def _pool_op(fn: Any) -> str | None:
    from flax import linen

    base = fn.func if isinstance(fn, functools.partial) else fn
    if base in (nnx.max_pool, linen.max_pool):
        return "max"
    if base in (nnx.avg_pool, linen.avg_pool):
        return "avg"
    return None


def _describe_item(item: Any) -> str:
    if isinstance(item, functools.partial):
        return f"functools.partial({getattr(item.func, '__name__', item.func)!r}, ...)"
    return getattr(item, "__name__", None) or type(item).__name__


def network_from_layers(
    items: Sequence[Any],
    input_shape: Sequence[int],
    classes: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    name: str = "network",
) -> Network:
    """Describe a sequence of Flax NNX layers and functions as a `Network`.

    Supported items, in any sensible order: ``nnx.Conv`` (any kernel size, stride and padding,
    with or without bias; no dilation or groups), elementwise activations (``nnx.relu``,
    ``nnx.gelu``, ``nnx.tanh``, ``nnx.sigmoid``, ``nnx.leaky_relu``, ``nnx.elu``, ``nnx.silu``,
    also wrapped in ``functools.partial``), ``functools.partial(nnx.max_pool | nnx.avg_pool,
    window_shape=..., strides=..., padding=...)``, `Flatten`, ``nnx.Linear`` and a final
    ``nnx.softmax``. A softmax is appended when the last item is a ``Linear``.

    Raises
    ------
    ValueError
        Naming the first unsupported item, or a shape that does not fit.
    """
    h, w, c = (int(v) for v in input_shape)
    shape: tuple[int, ...] = (h, w, c)
    layers: list[Layer] = []
    params: dict[str, dict[str, np.ndarray | None]] = {}
    counters: dict[str, int] = {}

    def auto_name(base: str) -> str:
        counters[base] = counters.get(base, 0) + 1
        return f"{base}_{counters[base]}"

    items = list(items)
    if not items:
        raise ValueError("the network has no layers")
    for i, item in enumerate(items):
        given = names[i] if names is not None else None
        where = f"layer {i} ({_describe_item(item)})"
        if isinstance(item, nnx.Conv):
            if len(shape) != 3:
                raise ValueError(f"{where}: a Conv needs an (H, W, C) input, got shape {shape}")
            if any(d != 1 for d in np.atleast_1d(item.kernel_dilation or 1)) or any(
                d != 1 for d in np.atleast_1d(item.input_dilation or 1)
            ):
                raise ValueError(f"{where}: dilated convolutions are not supported")
            if item.feature_group_count != 1:
                raise ValueError(f"{where}: grouped convolutions are not supported")
            kernel = np.asarray(item.kernel[...], np.float32)
            kh, kw, cin, cout = kernel.shape
            if cin != shape[2]:
                raise ValueError(f"{where}: expects {cin} input channels, gets {shape[2]}")
            strides = item.strides if item.strides is not None else 1
            stride = (strides, strides) if isinstance(strides, int) else tuple(strides)
            if isinstance(item.padding, str) and item.padding.upper() not in ("SAME", "VALID"):
                raise ValueError(f"{where}: padding {item.padding!r} is not supported")
            padding = resolve_padding(item.padding, shape[:2], (kh, kw), stride)
            oh = conv_output_size(shape[0], kh, stride[0], *padding[0])
            ow = conv_output_size(shape[1], kw, stride[1], *padding[1])
            if oh < 1 or ow < 1:
                raise ValueError(f"{where}: kernel {kh}×{kw} does not fit its {shape} input")
            layer_name = given or auto_name("conv")
            bias = None if item.bias is None else np.asarray(item.bias[...], np.float32)
            params[layer_name] = {"kernel": kernel, "bias": bias}
            new_shape: tuple[int, ...] = (oh, ow, cout)
            layers.append(
                Layer(layer_name, "conv", shape, new_shape, (kh, kw), stride, padding)  # type: ignore[arg-type]
            )
        elif isinstance(item, nnx.Linear):
            kernel = np.asarray(item.kernel[...], np.float32)
            if len(shape) != 1 or kernel.shape[0] != shape[0]:
                raise ValueError(
                    f"{where}: expects {kernel.shape[0]} inputs, gets shape {shape} "
                    "(add Flatten() before the first Linear)"
                )
            layer_name = given or auto_name("dense")
            bias = None if item.bias is None else np.asarray(item.bias[...], np.float32)
            params[layer_name] = {"kernel": kernel, "bias": bias}
            new_shape = (kernel.shape[1],)
            layers.append(Layer(layer_name, "dense", shape, new_shape))
        elif isinstance(item, Flatten):
            new_shape = (math.prod(shape),)
            layers.append(Layer(given or "flatten", "flatten", shape, new_shape))
        elif _pool_op(item) is not None:
            op = _pool_op(item)
            if not isinstance(item, functools.partial) or "window_shape" not in item.keywords:
                raise ValueError(
                    f"{where}: give pooling as functools.partial(nnx.{op}_pool, "
                    "window_shape=(2, 2), strides=(2, 2))"
                )
            if len(shape) != 3:
                raise ValueError(f"{where}: pooling needs an (H, W, C) input, got shape {shape}")
            kw_ = item.keywords
            window = tuple(int(v) for v in kw_["window_shape"])
            stride = tuple(int(v) for v in (kw_.get("strides") or window))
            padding = resolve_padding(kw_.get("padding", "VALID"), shape[:2], window, stride)
            oh = conv_output_size(shape[0], window[0], stride[0], *padding[0])
            ow = conv_output_size(shape[1], window[1], stride[1], *padding[1])
            if oh < 1 or ow < 1:
                raise ValueError(f"{where}: window {window} does not fit its {shape} input")
            options = {}
            if op == "avg":
                options["count_include_pad"] = bool(kw_.get("count_include_pad", True))
            layer_name = given or auto_name(f"{op}_pool")
            layers.append(
                Layer(
                    layer_name,
                    "pool",
                    shape,
                    (oh, ow, shape[2]),
                    window,
                    stride,
                    padding,  # type: ignore[arg-type]
                    function=op,
                    options=options,
                )
            )
        elif item is nnx.softmax or item is jax.nn.softmax:
            if i != len(items) - 1:
                raise ValueError(f"{where}: softmax is only supported as the last layer")
            layers.append(Layer(given or "softmax", "softmax", shape, shape))
        elif (fn := _function_name(item)) is not None:
            fn_name, options = fn
            layer_name = given or auto_name(fn_name)
            layers.append(
                Layer(layer_name, "activation", shape, shape, function=fn_name, options=options)
            )
        else:
            raise ValueError(
                f"unsupported {where}: supported are nnx.Conv, nnx.Linear, Flatten, "
                "activation functions (relu, gelu, tanh, sigmoid, leaky_relu, elu, silu), "
                "functools.partial(nnx.max_pool | nnx.avg_pool, ...) and a final nnx.softmax"
            )
        shape = layers[-1].output_shape
    if layers[-1].kind == "dense":
        layers.append(Layer("softmax", "softmax", shape, shape))
    if layers[-1].kind != "softmax" or len(layers) < 2 or layers[-2].kind != "dense":
        raise ValueError("the network must end with an nnx.Linear (optionally then nnx.softmax)")
    # The final dense layer is the output layer, named as in the original.
    last = layers[-2]
    if names is None and last.name.startswith("dense_"):
        layers[-2] = Layer("output", "dense", last.input_shape, last.output_shape)
        params["output"] = params.pop(last.name)
    n_out = layers[-1].output_shape[0]
    if classes is None:
        classes = [f"class {k}" for k in range(n_out)]
    return Network(layers, params, (h, w, c), classes, name=name)
