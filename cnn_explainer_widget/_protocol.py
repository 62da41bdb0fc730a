"""The payload the kernel sends to the front end: one versioned, binary-buffered message each.

Two messages, both plain dicts whose bulk lives in a single ``bytes`` entry ``data`` (ipywidgets
sends it as one binary websocket frame; the front end receives a ``DataView``):

``encode_network`` (sent once per widget, trait ``_network``)::

    {"version": 3, "name": str, "input_shape": [H, W, C], "classes": [str, ...],
     "layers": [{"name", "kind", "function", "input_shape", "output_shape", "kernel_size",
                 "stride", "padding", "options", "module",
                 "inputs": [str, ...], "dilation": [dy, dx] | None, "groups": int,
                 "source": str | None,
                 "kernel": {"shape", "offset"} | None, "bias": {"shape", "offset"} | None,
                 "stats": {"mean", "var", "scale", "bias"} (batchnorm only)}],
     "data": bytes}

``kind`` is "conv", "activation", "pool", "batchnorm", "add", "concat", "global_pool",
"flatten", "dense" or "softmax" (see `cnn_explainer_widget.layers.Layer`). Shapes are as in
`Layer` ((H, W, C) for spatial layers, (C,) after a global pool). ``inputs`` names the layers a
layer reads, always explicitly ("input": the image; add and concat read two or more, in order);
layers come in a topological order. ``dilation`` (None: 1) and ``groups`` are a conv's lax
``rhs_dilation`` and ``feature_group_count``: with groups, the kernel is (C_out, C_in / groups,
kh, kw) and output channel o reads input channels [g·C_in/groups, (g+1)·C_in/groups), g =
o // (C_out/groups). ``source`` says where the layer comes from in the user's code (None if not
known). A batchnorm's ``stats`` holds ``{"shape", "offset"}`` of its per-channel running
``mean`` and ``var`` and of ``scale`` and ``bias`` (each None when the layer has none), and its
``options`` the ``epsilon``: y = (x − mean) / √(var + ε) · scale + bias. ``offset`` counts
float32 values into ``data``. Conv kernels are laid out (C_out, C_in, kh, kw), so one neuron's
kernel is contiguous; dense kernels (out, in), with ``in`` in the flatten order (h, w, c),
channels fastest (a dense reading a global pool's (C,) has in = C).
``module`` numbers groups of layers: a group starts at each conv or dense layer and takes the
activations and pools that follow it (conv_1_1 + relu_1_1; conv_1_2 + relu_1_2 + max_pool_1;
...). These are the "unit" colour ranges; js/src/colors.ts derives them, and the blocks of the
"module" colour scale, from the layer kinds itself.

``encode_activations`` (sent on every image change, trait ``_activations``)::

    {"version": 3, "seq": int, "image": {"name": str, "source": str},
     "layers": [{"name", "shape", "offset" | "derived", "min": [...], "max": [...]}],
     "data": bytes}

``layers`` holds "input" and every layer but flatten, named as in the network message (so the
last dense layer is "output", not "logits"). Spatial maps are channel first, ``shape`` [C, H, W],
so each neuron's map is contiguous; 1-D layers have ``shape`` [N]. ``min``/``max`` give each
channel's true range (one entry per neuron; a 1-D layer has a single entry). A layer the front
end can rebuild bit for bit from the layer before it (a ReLU, a max pool) has no ``offset`` but
``"derived": {"op": "relu" | "max_pool", "from": name, ...}`` (a max pool adds ``window``,
``stride`` and ``padding`` as in the network message); see `_derivation`.

Large layers (`FULL_UPDATE_BYTES`): when an update sent this way would exceed 4 MiB, every
spatial map but a small input (at most `EXACT_INPUT_BYTES`) travels as a *preview* instead:
no ``offset``, but ``"preview": {"shape": [C, h, w], "offset": bytes into "previews"}`` where
``previews`` is a second ``bytes`` entry of the message holding uint8 maps: each channel
averaged over blocks down to at most `PREVIEW_SIDE` pixels on its longer side (the size the
overview draws), then quantised over the channel's true ``min``/``max`` (0 → min, 255 → max).
No map is derived then. The front end paints the overview from previews and asks the kernel for
the exact float32 values a view needs with the ``fetch`` message (`cnn_explainer_widget._fetch`):
Tiny VGG and any network whose exact update fits keep the exact payload, without ``previews``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.network import Network

#: Version of the payload schema; js/src/payload.ts has the same number (a test checks).
PROTOCOL_VERSION = 3

#: Largest exact update (float32 maps, ReLU/max-pool as recipes); beyond it maps go as previews.
FULL_UPDATE_BYTES = 4 * 2**20
#: Longest side of a preview map: the overview draws maps at most 56 px wide.
PREVIEW_SIDE = 56
#: An input up to this size stays exact in a reduced update (the first layer's views read it).
EXACT_INPUT_BYTES = 2**20
#: What one image update should move at most; `payload_warning` speaks above it.
UPDATE_BUDGET_BYTES = 5_000_000


def layer_modules(network: Network) -> list[int]:
    """Module number of each layer: a new module starts at every conv or dense layer."""
    modules, current = [], 0
    for i, layer in enumerate(network.layers):
        if layer.kind in ("conv", "dense") and i > 0:
            current += 1
        modules.append(current)
    return modules


def _pack(chunks: list[np.ndarray]) -> tuple[bytes, list[int]]:
    offsets, total = [], 0
    for chunk in chunks:
        offsets.append(total)
        total += chunk.size
    return b"".join(np.ascontiguousarray(c, dtype="<f4").tobytes() for c in chunks), offsets


def _ref(chunks: list[np.ndarray], value: np.ndarray) -> dict[str, Any]:
    """Append ``value`` to ``chunks``; its reference (the chunk number becomes an offset)."""
    chunks.append(value)
    return {"shape": list(value.shape), "chunk": len(chunks) - 1}


def encode_network(network: Network) -> dict[str, Any]:
    """The network's structure and weights, sent once per widget."""
    chunks: list[np.ndarray] = []
    layers: list[dict[str, Any]] = []
    for layer, module in zip(network.layers, layer_modules(network), strict=True):
        entry: dict[str, Any] = {
            "name": layer.name,
            "kind": layer.kind,
            "function": layer.function,
            "input_shape": list(layer.input_shape),
            "output_shape": list(layer.output_shape),
            "kernel_size": list(layer.kernel_size) if layer.kernel_size else None,
            "stride": list(layer.stride) if layer.stride else None,
            "padding": [list(p) for p in layer.padding] if layer.padding else None,
            "options": dict(layer.options),
            "module": module,
            "inputs": list(layer.inputs),
            "dilation": list(layer.dilation) if layer.dilation else None,
            "groups": layer.groups,
            "source": layer.source,
            "kernel": None,
            "bias": None,
        }
        params = network.params.get(layer.name, {})
        if layer.kind == "batchnorm":
            stats: dict[str, Any] = {}
            for key in ("mean", "var", "scale", "bias"):
                value = params.get(key)
                stats[key] = None if value is None else _ref(chunks, value)
            entry["stats"] = stats
            layers.append(entry)
            continue
        kernel, bias = params.get("kernel"), params.get("bias")
        if kernel is not None:
            # conv HWIO -> (C_out, C_in, kh, kw); dense (in, out) -> (out, in).
            kernel = kernel.transpose(3, 2, 0, 1) if layer.kind == "conv" else kernel.T
            entry["kernel"] = {"shape": list(kernel.shape), "chunk": len(chunks)}
            chunks.append(kernel)
        if bias is not None:
            entry["bias"] = {"shape": list(bias.shape), "chunk": len(chunks)}
            chunks.append(bias)
        layers.append(entry)
    data, offsets = _pack(chunks)
    for entry in layers:
        refs = [entry["kernel"], entry["bias"], *entry.get("stats", {}).values()]
        for ref in refs:
            if ref is not None:
                ref["offset"] = offsets[ref.pop("chunk")]
    return {
        "version": PROTOCOL_VERSION,
        "name": network.name,
        "input_shape": list(network.input_shape),
        "classes": list(network.classes),
        "layers": layers,
        "data": data,
    }


def _derivation(layer: Layer, source: str) -> dict[str, Any] | None:
    """How the front end can rebuild ``layer`` exactly from ``source``, or None.

    Only bit-exact operations qualify: ReLU (max(0, x)) and max pooling (a maximum over
    float32 values) give the same float32 numbers in JavaScript as in XLA. Sending them as
    recipes instead of maps halves an update for Tiny VGG (804 KB → 405 KB).
    """
    if len(layer.input_shape) != 3:
        return None
    if layer.kind == "activation" and layer.function == "relu":
        return {"op": "relu", "from": source}
    if layer.kind == "pool" and layer.function == "max":
        assert layer.kernel_size and layer.stride and layer.padding
        return {
            "op": "max_pool",
            "from": source,
            "window": list(layer.kernel_size),
            "stride": list(layer.stride),
            "padding": [list(p) for p in layer.padding],
        }
    return None


def encode_activations(
    network: Network,
    acts: dict[str, np.ndarray],
    seq: int,
    image_name: str,
    image_source: str,
    derive: bool = True,
) -> dict[str, Any]:
    """One image's activations, channel first, with each neuron's true range.

    With ``derive`` (the default) ReLU and max-pool maps are sent as recipes (`_derivation`)
    rather than numbers; ``derive=False`` sends every map (the front end's test fixtures use it
    as the ground truth the rebuilt maps are checked against). An update whose exact maps would
    take more than `FULL_UPDATE_BYTES` sends previews instead (see the module docstring).

    Each map sent is copied once, channel first, straight into the payload's buffer, and its
    ranges are reduced over that contiguous copy (reducing over a transposed view is about
    nine times slower). A derived ReLU's ranges are its source's through the ReLU
    (``max(0, ·)`` is monotone, so that is exact).
    """
    plan: list[tuple[str, np.ndarray, dict[str, Any] | None]] = []
    total = 0
    for layer in (None, *network.layers):
        name = "input" if layer is None else layer.name
        if layer is not None and layer.kind == "flatten":
            continue
        value = np.asarray(network.output_of(acts, name), np.float32)
        # A derived layer reads one spatial map: the layer it names first (never a flatten).
        derived = None if layer is None or not derive else _derivation(layer, layer.inputs[0])
        if derived is None:
            total += value.size
        plan.append((name, value, derived))
    head = {
        "version": PROTOCOL_VERSION,
        "seq": seq,
        "image": {"name": image_name, "source": image_source},
    }
    if 4 * total > FULL_UPDATE_BYTES:
        return head | _encode_reduced([(name, value) for name, value, _ in plan])
    data = np.empty(total, "<f4")
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    entries: list[dict[str, Any]] = []
    offset = 0
    for name, value, derived in plan:
        shape = [value.shape[2], *value.shape[:2]] if value.ndim == 3 else list(value.shape)
        entry: dict[str, Any] = {"name": name, "shape": shape}
        if derived is not None and derived["op"] == "relu":
            lo, hi = ranges[derived["from"]]
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        else:
            if derived is None:
                flat = data[offset : offset + value.size]
                entry["offset"] = offset
                offset += value.size
            else:
                flat = np.empty(value.size, np.float32)
            if value.ndim == 3:
                np.copyto(flat.reshape(shape), value.transpose(2, 0, 1))
                channels = flat.reshape(shape[0], -1)
                lo, hi = channels.min(axis=1), channels.max(axis=1)
            else:
                np.copyto(flat, value.reshape(-1))
                lo, hi = flat.min(keepdims=True), flat.max(keepdims=True)
        ranges[name] = (lo, hi)
        entry["min"], entry["max"] = lo.tolist(), hi.tolist()
        if derived is not None:
            entry["derived"] = derived
        entries.append(entry)
    return head | {"layers": entries, "data": data.tobytes()}


def preview_shape(height: int, width: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """Size of a map's preview: the map scaled down to at most ``side`` on its longer side."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _block_mean(value: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Mean over ``size`` nearly equal blocks of ``value`` along ``axis``."""
    n = value.shape[axis]
    if size == n:
        return value
    if n % size == 0:  # equal blocks: a reshape, ten times faster than reduceat
        k = n // size
        blocks = value.reshape(*value.shape[:axis], size, k, *value.shape[axis + 1 :])
        mean: np.ndarray = blocks.sum(axis=axis + 1, dtype=np.float32) * np.float32(1 / k)
        return mean
    starts = (np.arange(size) * n) // size
    counts = np.diff(np.append(starts, n)).astype(np.float32)
    sums = np.add.reduceat(value, starts, axis=axis, dtype=np.float32)
    shape = [1] * value.ndim
    shape[axis] = size
    return sums / counts.reshape(shape)


def preview(value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """An (H, W, C) map as uint8 (C, h, w): block means quantised over each channel's range.

    Level ``q`` stands for ``lo + q * (hi - lo) / 255``; a channel with one value (or a range
    that is not finite) is all 0. NaN and infinite means go to the nearest end.
    """
    h, w = preview_shape(value.shape[0], value.shape[1])
    small = _block_mean(_block_mean(value, 0, h), 1, w)
    span = (hi - lo).astype(np.float32)
    ok = np.isfinite(span) & (span > 0)
    scale = np.where(ok, 255 / np.where(ok, span, 1), 0).astype(np.float32)
    offset = np.where(np.isfinite(lo), lo, 0).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.nan_to_num((small - offset) * scale, nan=0.0, posinf=255.0, neginf=0.0)
    q = np.rint(np.clip(q, 0, 255)).astype(np.uint8)
    return np.ascontiguousarray(q.transpose(2, 0, 1))


def _encode_reduced(plan: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Layers, exact data and previews of an update too large to send exactly."""
    exact: list[np.ndarray] = []
    small: list[bytes] = []
    entries: list[dict[str, Any]] = []
    offset = byte = 0
    for name, value in plan:
        if value.ndim == 3:
            shape = [value.shape[2], *value.shape[:2]]
            # rows first (an elementwise reduction along contiguous memory), then the columns:
            # forty times faster than reducing over axes (0, 1) at once
            rows = value.reshape(value.shape[0], -1)
            lo = rows.min(axis=0).reshape(-1, shape[0]).min(axis=0)
            hi = rows.max(axis=0).reshape(-1, shape[0]).max(axis=0)
        else:
            shape = list(value.shape)
            lo, hi = value.min(keepdims=True), value.max(keepdims=True)
        entry: dict[str, Any] = {"name": name, "shape": shape}
        if value.ndim != 3 or (name == "input" and value.nbytes <= EXACT_INPUT_BYTES):
            flat = value.transpose(2, 0, 1) if value.ndim == 3 else value
            exact.append(np.ascontiguousarray(flat, "<f4").reshape(-1))
            entry["offset"] = offset
            offset += value.size
        else:
            q = preview(value, lo, hi)
            entry["preview"] = {"shape": list(q.shape), "offset": byte}
            small.append(q.tobytes())
            byte += q.size
        entry["min"], entry["max"] = lo.tolist(), hi.tolist()
        entries.append(entry)
    data = np.concatenate(exact) if exact else np.empty(0, "<f4")
    return {"layers": entries, "data": data.tobytes(), "previews": b"".join(small)}


def message_bytes(message: dict[str, Any]) -> int:
    """Bytes ``message`` takes on the wire: its JSON without binary entries, plus those."""
    binary = {k: v for k, v in message.items() if isinstance(v, bytes | memoryview)}
    rest = {k: v for k, v in message.items() if k not in binary}
    return len(json.dumps(rest, separators=(",", ":"))) + sum(
        memoryview(v).nbytes for v in binary.values()
    )


def payload_warning(network: Network, message: dict[str, Any]) -> str | None:
    """What to tell the user when one image update of ``network`` is over the budget, or None."""
    size = message_bytes(message)
    if size <= UPDATE_BUDGET_BYTES:
        return None
    maps = sum(1 for e in message["layers"] if "preview" in e)
    return (
        f"{network.name}: every image update sends {size / 1e6:.1f} MB to the page "
        f"({maps} layers of maps, previews included; the widget aims at "
        f"{UPDATE_BUDGET_BYTES / 1e6:.0f} MB), so each new image will be slow to draw and the "
        "page will hold a lot of memory. Use a smaller input_shape, fewer or narrower layers, "
        "or pool earlier; activations(x, model=...) gives every value in Python without the "
        "widget."
    )
