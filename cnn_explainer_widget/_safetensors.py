"""Weights files: safetensors, read with the `safetensors` package, checked on top.

The `safetensors` package reads the container and refuses overlapping, holed or truncated
tensor data. Before it runs, this module reads the header itself, bounded, and refuses what
the format allows but a weights file never needs: a header over `MAX_HEADER_BYTES`, duplicate
keys, deep nesting, dtypes other than float32, absurd shapes, more than `MAX_TENSORS` tensors
or more than `MAX_TENSOR_BYTES` of data. Files are memory-mapped (`safetensors.safe_open`),
never read whole, and each check names the tensor or field that is wrong. `dumps` writes the
format itself (deterministically, see there) and checks its output with the package's reader.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load as _st_load

#: Largest JSON header read (a model's architecture, classes and history fit in a few KB).
MAX_HEADER_BYTES = 1024 * 1024
#: Most tensors in one file.
MAX_TENSORS = 1024
#: Most bytes of tensor data in one file (the widget sends every weight to the page).
MAX_TENSOR_BYTES = 256 * 1024 * 1024
#: Most dimensions of one tensor.
MAX_NDIM = 8


class WeightsFileError(ValueError):
    """A weights file that is missing, truncated, or not what the model expects."""


def dumps(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise float32 ``tensors`` (in the given order) and ``metadata`` to safetensors bytes.

    Written here rather than with ``safetensors.numpy.save``, which orders the metadata by hash
    (a different file each run): the shipped weights file must be reproducible bit for bit. The
    result is checked with the `safetensors` package's own reader.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[str(name)] = {
            "dtype": "F32",
            "shape": list(np.shape(array)),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    # The spec allows padding the header with spaces; pad to 8 bytes so tensors stay aligned.
    header_bytes += b" " * (-len(header_bytes) % 8)
    blob = struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(chunks)
    _st_load(blob)  # raises if the package would not read it
    return blob


def loads(blob: bytes, source: str = "weights") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes into ``(tensors, metadata)``; raise `WeightsFileError` if broken."""
    blob = bytes(blob)
    header, metadata = _check_header(blob[:8], lambda n: blob[8 : 8 + n], len(blob), source)
    try:
        arrays = _st_load(blob)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise WeightsFileError(f"{source}: corrupt safetensors file ({_reason(exc)})") from None
    return {name: _checked(arrays[name], name, source) for name in header}, metadata


def load_file(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file from ``path`` (memory-mapped; checked before anything is read)."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise WeightsFileError(f"weights file not found: {path}")
    try:
        with path.open("rb") as file:
            size = path.stat().st_size
            header, metadata = _check_header(file.read(8), file.read, size, source)
        tensors: dict[str, np.ndarray] = {}
        with safe_open(str(path), framework="numpy") as st:
            for name in header:
                tensors[name] = _checked(st.get_tensor(name), name, source)
    except (SafetensorError, OSError) as exc:
        raise WeightsFileError(f"{source}: corrupt safetensors file ({_reason(exc)})") from None
    return tensors, metadata


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise WeightsFileError(f"header key {key[:80]!r} appears twice")
        out[key] = value
    return out


def _check_header(
    first: bytes, read: Any, size: int, source: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The tensor entries ``{name: {dtype, shape, data_offsets}}`` and the metadata, checked."""
    if len(first) < 8:
        raise WeightsFileError(f"{source}: truncated weights file ({size} bytes, no header)")
    (header_len,) = struct.unpack("<Q", first)
    if header_len > MAX_HEADER_BYTES:
        raise WeightsFileError(
            f"{source}: header length {header_len:,} bytes is over the {MAX_HEADER_BYTES:,} "
            "accepted (truncated or corrupt file?)"
        )
    if 8 + header_len > size:
        raise WeightsFileError(
            f"{source}: truncated or corrupt weights file (bad header length {header_len:,} "
            f"for {size:,} bytes)"
        )
    raw = read(header_len)
    try:
        header = json.loads(raw, object_pairs_hook=_no_duplicates)
    except WeightsFileError as exc:
        raise WeightsFileError(f"{source}: corrupt weights header ({exc})") from None
    except RecursionError:
        raise WeightsFileError(f"{source}: corrupt weights header (nested too deeply)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsFileError(f"{source}: corrupt weights header ({exc})") from None
    if not isinstance(header, dict):
        raise WeightsFileError(f"{source}: corrupt weights header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsFileError(
            f"{source}: corrupt weights header (__metadata__ is not a table of strings)"
        )
    if len(header) > MAX_TENSORS:
        raise WeightsFileError(
            f"{source}: {len(header):,} tensors; weights files hold at most {MAX_TENSORS:,}"
        )
    total = 0
    for name, info in header.items():
        where = f"{source}: tensor {name[:80]!r}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise WeightsFileError(f"{where} has a malformed entry")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype != "F32":
            raise WeightsFileError(f"{where} has dtype {dtype!r}, expected F32")
        if not (isinstance(shape, list) and len(shape) <= MAX_NDIM and all(map(_is_size, shape))):
            raise WeightsFileError(f"{where} has a malformed shape {str(shape)[:80]}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_size, offsets))):
            raise WeightsFileError(f"{where} has malformed data offsets")
        nbytes = 4 * math.prod(shape)
        if nbytes > MAX_TENSOR_BYTES:
            raise WeightsFileError(
                f"{where} has shape {shape}: {nbytes:,} bytes; at most {MAX_TENSOR_BYTES:,} "
                "bytes of weights are read"
            )
        start, end = offsets
        if end - start != nbytes or 8 + header_len + end > size:
            raise WeightsFileError(
                f"{where} is truncated or corrupt (needs bytes {start}..{end}, "
                f"{size - 8 - header_len} in the file)"
            )
        total += nbytes
    if total > MAX_TENSOR_BYTES:
        raise WeightsFileError(
            f"{source}: {total:,} bytes of weights; at most {MAX_TENSOR_BYTES:,} are read"
        )
    return header, {str(k): v for k, v in metadata.items()}


def _checked(array: np.ndarray, name: str, source: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise WeightsFileError(f"{source}: tensor {name!r} contains NaN or infinite values")
    array = np.array(array, dtype=np.float32)  # our own copy, not a view of the mapped file
    array.flags.writeable = False
    return array


def _is_size(value: object) -> bool:
    return type(value) is int and value >= 0
