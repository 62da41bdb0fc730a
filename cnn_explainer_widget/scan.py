"""Which images excite a neuron most: a batched, sharded scan of a data set.

`top_activations` streams images (an array, a folder, or any iterable) through the network in
fixed-size batches, keeping only a running top k, so memory stays bounded however many images
there are. The batched pass is compiled once per network and layer (the neuron's index is an
argument), runs only the layers up to the neuron's, converts uint8 pixels on the device, and
is split over every device JAX sees with ``jax.shard_map`` on a one-axis `jax.sharding.Mesh`:
each device scans its slice of every batch, so the same call uses every chip of a GPU or TPU
host. Batches are padded to one shape, a multiple of the number of devices.

In a multi-process JAX program (``jax.distributed``) each process scans the images it is
given on its own local devices; merge the per-process top lists (values are comparable).
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cnn_explainer_widget._forward import run
from cnn_explainer_widget._image_stream import as_float, batches, image_files, image_source
from cnn_explainer_widget.attribution import check_index, layer_with_neurons
from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.model import resolve_network
from cnn_explainer_widget.network import Network, compiler_options

_scanners: weakref.WeakKeyDictionary[Network, dict[tuple[Any, ...], _Scanner]] = (
    weakref.WeakKeyDictionary()
)


def scan_devices() -> list[jax.Device]:
    """The devices a scan is split over: every device of this process."""
    return list(jax.devices() if jax.process_count() == 1 else jax.local_devices())


class _Scanner:
    """The compiled batched pass for one network and layer: per image, max of a map and where."""

    def __init__(self, network: Network, layer: str) -> None:
        position = [la.name for la in network.layers].index(layer)
        layers: tuple[Layer, ...] = network.layers[: position + 1]
        self.devices = scan_devices()
        self.mesh = Mesh(np.array(self.devices), ("batch",))
        self.data = NamedSharding(self.mesh, PartitionSpec("batch"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        local = functools.partial(_max_of_map, layers)
        sharded = jax.shard_map(
            local,
            mesh=self.mesh,
            in_specs=(PartitionSpec(), PartitionSpec("batch"), PartitionSpec()),
            out_specs=(PartitionSpec("batch"), PartitionSpec("batch")),
        )
        self.fn = jax.jit(sharded, compiler_options=compiler_options())


#: Images per step inside one device's share of a batch (None: the whole share at once).
CHUNK: int | None = 8


def _max_of_map(
    layers: tuple[Layer, ...], params: dict[str, Any], batch: jax.Array, index: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Max of channel ``index``'s map for each image, and its first row-major position.

    The device's share is computed ``CHUNK`` images at a time (a ``lax.map``), so each layer's
    maps stay in cache instead of streaming a whole batch's through memory.
    """
    n = batch.shape[0]
    chunk = n if CHUNK is None else max(c for c in range(1, min(CHUNK, n) + 1) if n % c == 0)
    if chunk < n:
        parts = batch.reshape(n // chunk, chunk, *batch.shape[1:])
        values, where = jax.lax.map(
            lambda part: _max_of_map_at_once(layers, params, part, index), parts
        )
        return values.reshape(n), where.reshape(n)
    return _max_of_map_at_once(layers, params, batch, index)


def _max_of_map_at_once(
    layers: tuple[Layer, ...], params: dict[str, Any], batch: jax.Array, index: jax.Array
) -> tuple[jax.Array, jax.Array]:
    x = batch.astype(jnp.float32)
    if batch.dtype == jnp.uint8:
        x = x / 255.0
    x = run(layers, params, x)[layers[-1].name]
    m = jax.lax.dynamic_index_in_dim(x, index, axis=-1, keepdims=False)
    if m.ndim == 1:
        return m, jnp.zeros(m.shape, jnp.int32)
    flat = m.reshape(m.shape[0], -1)
    return flat.max(axis=1), jnp.argmax(flat, axis=1).astype(jnp.int32)


def _scanner(network: Network, layer: str) -> _Scanner:
    devices = tuple(d.id for d in scan_devices())
    cache = _scanners.setdefault(network, {})
    key = (layer, devices)
    if key not in cache:
        cache[key] = _Scanner(network, layer)
    return cache[key]


@dataclass
class ScanResult:
    """What a scan found: the top list, and (if asked) those images as the network saw them."""

    top: list[tuple[int, float, tuple[int, int]]]
    images: list[np.ndarray] | None


def top_activations(
    images: Any,
    layer: str,
    index: int,
    k: int = 9,
    model: Any = None,
    batch_size: int = 256,
    *,
    progress: bool = True,
) -> list[tuple[int, float, tuple[int, int]]]:
    """The ``k`` images that excite neuron ``(layer, index)`` most.

    Parameters
    ----------
    images:
        An array ``(N, H, W, C)`` of uint8 or of floats in [0, 1] (``(N, H, W)`` for a
        one-channel network); a folder (every image file under it, in sorted path order, read
        with `load_image` at the model's input size); or any iterable of images (arrays shaped
        like the input, or anything `load_image` accepts). Streamed in batches: memory is
        bounded by the batch, not by N.
    layer, index:
        The neuron: a layer with neurons (conv, activation, pool or dense) and a channel (a
        dense layer's unit).
    k:
        How many images to return (fewer if there are fewer images).
    model:
        None for the shipped Tiny VGG, or any model the widget explains.
    batch_size:
        Images per batch (rounded up to a multiple of the number of devices).
    progress:
        Show a ``tqdm`` progress bar.

    Returns
    -------
    list of (image_index, value, (y, x))
        Highest value first; an image's value is the maximum of the neuron's map, reached
        first (row-major) at ``(y, x)`` (``(0, 0)`` for a dense neuron). Ties go to the lower
        image index.
    """
    network = resolve_network(model)
    return scan(network, images, layer, index, k, batch_size, progress=progress).top


def scan(
    network: Network,
    images: Any,
    layer: str,
    index: int,
    k: int = 9,
    batch_size: int = 256,
    *,
    progress: bool = True,
    keep_images: bool = False,
) -> ScanResult:
    """`top_activations` on a `Network`, optionally keeping the top images (float32)."""
    layer = layer_with_neurons(network, layer)
    index = check_index(network, layer, index)
    for name, value in (("k", k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r:.60}")
    scanner = _scanner(network, layer)
    n_dev = len(scanner.devices)
    source, total = image_source(network, images)
    size = min(int(batch_size), total) if total else int(batch_size)
    size = math.ceil(size / n_dev) * n_dev
    out_shape = network.layer(layer).output_shape
    width = out_shape[1] if len(out_shape) == 3 else 1
    params = jax.device_put(network._device_params, scanner.replicated)
    device_index = jax.device_put(jnp.int32(index), scanner.replicated)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"{layer}[{index}]", unit="img", disable=not progress)
    top_idx = np.zeros(0, np.int64)
    top_val = np.zeros(0, np.float32)
    top_pos = np.zeros(0, np.int64)
    kept: dict[int, np.ndarray] = {}
    pending: tuple[Any, np.ndarray, int, int] | None = None

    def merge(item: tuple[Any, np.ndarray, int, int]) -> None:
        nonlocal top_idx, top_val, top_pos
        out, batch, start, count = item
        values = np.asarray(out[0])[:count]
        positions = np.asarray(out[1])[:count].astype(np.int64)
        idx = np.concatenate([top_idx, np.arange(start, start + count)])
        val = np.concatenate([top_val, values])
        pos = np.concatenate([top_pos, positions])
        order = np.lexsort((idx, -val))[:k]  # highest value first, then lower index
        top_idx, top_val, top_pos = idx[order], val[order], pos[order]
        if keep_images:
            for i in top_idx[top_idx >= start]:
                kept[int(i)] = as_float(batch[int(i) - start])
            current = set(top_idx.tolist())
            for i in [i for i in kept if i not in current]:
                del kept[i]
        bar.update(count)

    try:
        for batch, start, count in batches(source, size, network.input_shape):
            out = scanner.fn(params, jax.device_put(batch, scanner.data), device_index)
            if pending is not None:
                merge(pending)  # while the device works on the batch just sent
            pending = (out, batch, start, count)
        if pending is not None:
            merge(pending)
    finally:
        bar.close()
    top = [
        (int(i), float(v), (int(p) // width, int(p) % width))
        for i, v, p in zip(top_idx, top_val, top_pos, strict=True)
    ]
    return ScanResult(top, [kept[i] for i, _, _ in top] if keep_images else None)


def receptive_field(
    layer: str, y: int, x: int, model: Any = None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The input pixels that position ``(y, x)`` of ``layer``'s maps depends on.

    Returns ``((top, bottom), (left, right))``, half-open and clipped to the image; a dense
    neuron (or anything after a flatten) sees the whole image. ``model`` as in
    `top_activations` (a `Network` too).
    """
    network = resolve_network(model)
    h, w, _ = network.input_shape
    position = [la.name for la in network.layers].index(layer_with_neurons(network, layer))
    shape = network.layers[position].output_shape
    size = shape[:2] if len(shape) == 3 else (1, 1)
    for axis, v, n in (("y", y, size[0]), ("x", x, size[1])):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= v < n:
            raise ValueError(f"{axis} must be an int in [0, {n - 1}] for {layer}, got {v!r:.40}")
    # Each layer's box (y0, y1, x0, x1) in its own output, walked back to the input; a layer
    # reading several (an add, a concat) passes the box on to each, and boxes meet as their hull.
    boxes: dict[str, tuple[float, float, float, float]] = {
        network.layers[position].name: (int(y), int(y) + 1, int(x), int(x) + 1)
    }
    for la in reversed(network.layers[: position + 1]):
        if la.name not in boxes:
            continue
        y0, y1, x0, x1 = boxes.pop(la.name)
        if la.kind in ("flatten", "dense", "softmax", "global_pool"):
            y0, y1, x0, x1 = -math.inf, math.inf, -math.inf, math.inf
        elif la.kind in ("conv", "pool"):
            assert la.kernel_size and la.stride and la.padding
            (kh, kw), (sh, sw), ((pt, _), (pl, _)) = la.effective_kernel(), la.stride, la.padding
            y0, y1 = y0 * sh - pt, (y1 - 1) * sh - pt + kh
            x0, x1 = x0 * sw - pl, (x1 - 1) * sw - pl + kw
        for source in la.inputs:
            old = boxes.get(source, (math.inf, -math.inf, math.inf, -math.inf))
            boxes[source] = (min(old[0], y0), max(old[1], y1), min(old[2], x0), max(old[3], x1))
    y0, y1, x0, x1 = boxes["input"]
    return (int(max(y0, 0)), int(min(y1, h))), (int(max(x0, 0)), int(min(x1, w)))


__all__ = ["image_files", "receptive_field", "top_activations"]
