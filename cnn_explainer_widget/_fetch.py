"""The ``fetch`` message: the exact maps a view needs, asked for by the page (widget layer).

An update too large to send exactly carries previews of the maps (`_protocol`); when the page
opens a view that needs exact values it asks for them::

    js -> py  {"type": "fetch", "id": int, "seq": int,
               "layers": [{"layer": str, "channels": [int, ...]}, ...]}

and the kernel answers with one message per piece, each with one buffer of float32 values,
channel first, ``(len(channels), y1 - y0, W)``, at most `MAX_PART_BYTES` (JupyterLab drops any
websocket message over 10 MiB)::

    py -> js  {"type": "values", "id", "seq", "layer", "channels": [int, ...],
               "rows": [y0, y1], "shape": [C, H, W], "part": int, "parts": int}

or, when the request is refused, by one ``{"type": "values", "id", "seq", "error": str}``
(``"stale"`` when ``seq`` is not the image the kernel shows: the page has an update coming).
The page is not trusted: everything is checked before anything is sliced, at most
`MAX_FETCH_LAYERS` layers and `MAX_FETCH_VALUES` values are answered per request, and replies
are made one piece at a time, so the kernel holds at most one piece more than its activations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from cnn_explainer_widget._text import short
from cnn_explainer_widget.network import Network

#: Most layers one request may name (a view reads a layer, its inputs and its own output).
MAX_FETCH_LAYERS = 8
#: Most float32 values one request is answered with (64 MiB).
MAX_FETCH_VALUES = 16 * 2**20
#: Largest piece of an answer (JupyterLab's websocket drops messages over 10 MiB).
MAX_PART_BYTES = 4 * 2**20
#: Ids are JavaScript integers.
MAX_ID = 2**53


class FetchError(ValueError):
    """A fetch request the kernel refuses (the message says what is accepted)."""


def map_layers(network: Network) -> dict[str, tuple[int, int, int]]:
    """The entries a page may fetch, with their (H, W, C): the input and every spatial layer."""
    maps = {"input": tuple(network.input_shape)}
    for layer in network.layers:
        if len(layer.output_shape) == 3 and layer.kind != "flatten":
            maps[layer.name] = tuple(layer.output_shape)
    return maps  # type: ignore[return-value]


def parse_fetch(network: Network, content: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """The (layer, channels) pairs of a fetch request, checked; `FetchError` says what is wrong."""
    layers = content.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_FETCH_LAYERS:
        raise FetchError(f"'layers' must be a list of 1 to {MAX_FETCH_LAYERS} entries")
    maps = map_layers(network)
    out: list[tuple[str, list[int]]] = []
    total = 0
    for item in layers:
        if not isinstance(item, dict) or set(item) != {"layer", "channels"}:
            raise FetchError("each entry must be {'layer': name, 'channels': [index, ...]}")
        name, channels = item["layer"], item["channels"]
        if not isinstance(name, str) or name not in maps:
            raise FetchError(f"no map layer {short(name)}; map layers are {', '.join(maps)}")
        h, w, c = maps[name]
        if (
            not isinstance(channels, list)
            or not 1 <= len(channels) <= c
            or not all(type(i) is int and 0 <= i < c for i in channels)
            or len(set(channels)) != len(channels)
        ):
            raise FetchError(f"channels of {name} must be distinct indices in [0, {c})")
        total += len(channels) * h * w
        if total > MAX_FETCH_VALUES:
            raise FetchError(f"a request may ask for at most {MAX_FETCH_VALUES} values")
        out.append((name, channels))
    return out


def _pieces(h: int, w: int, channels: list[int]) -> list[tuple[list[int], int, int]]:
    """Split (channels × h × w) float32 values into pieces of at most `MAX_PART_BYTES`."""
    per_channel = 4 * h * w
    if per_channel <= MAX_PART_BYTES:
        k = MAX_PART_BYTES // per_channel
        return [(channels[i : i + k], 0, h) for i in range(0, len(channels), k)]
    rows = max(1, MAX_PART_BYTES // (4 * w))
    return [([c], y, min(h, y + rows)) for c in channels for y in range(0, h, rows)]


def fetch_replies(
    network: Network, acts: dict[str, np.ndarray], seq: int, content: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], list[bytes]]]:
    """The messages answering ``content`` (a fetch request) for the image ``seq`` shows.

    Yields ``(content, buffers)`` pairs to send in order, one piece at a time. A request that
    is malformed, too large or for another image gets one message with ``error``.
    """
    req_id, req_seq = content.get("id"), content.get("seq")
    if type(req_id) is not int or not 0 <= req_id < MAX_ID or type(req_seq) is not int:
        return  # nothing to answer to: the page always sends both
    base = {"type": "values", "id": req_id, "seq": req_seq}
    if req_seq != seq:
        yield base | {"error": "stale"}, []
        return
    try:
        wanted = parse_fetch(network, content)
    except FetchError as exc:
        yield base | {"error": f"fetch refused: {exc}"}, []
        return
    maps = map_layers(network)
    plan = [
        (name, piece)
        for name, channels in wanted
        for piece in _pieces(maps[name][0], maps[name][1], channels)
    ]
    for part, (name, (channels, y0, y1)) in enumerate(plan):
        h, w, c = maps[name]
        value = network.output_of(acts, name)
        piece = np.ascontiguousarray(value[y0:y1, :, channels].transpose(2, 0, 1), "<f4")
        reply = base | {
            "layer": name,
            "channels": channels,
            "rows": [y0, y1],
            "shape": [c, h, w],
            "part": part,
            "parts": len(plan),
        }
        yield reply, [piece.tobytes()]
