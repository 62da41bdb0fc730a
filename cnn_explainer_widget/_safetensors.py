"""A minimal, dependency-free reader and writer for the safetensors format (float32 only).

The format is tiny (an 8-byte little-endian header length, a JSON header, then the raw tensor
bytes), so writing it ourselves keeps the weights file byte-for-byte reproducible and avoids a
dependency. Only what the project needs is supported: little-endian float32 tensors and a
string-to-string ``__metadata__`` table.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

_MAX_HEADER_BYTES = 16 * 1024 * 1024


class WeightsFileError(ValueError):
    """A weights file that is missing, truncated, or not what the model expects."""


def dumps(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise float32 ``tensors`` (in the given order) and ``metadata`` to safetensors bytes."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(np.shape(array)),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    # The spec allows padding the header with spaces; pad to 8 bytes so tensors stay aligned.
    header_bytes += b" " * (-len(header_bytes) % 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(chunks)


def loads(blob: bytes, source: str = "weights") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes into ``(tensors, metadata)``; raise `WeightsFileError` if broken."""
    if len(blob) < 8:
        raise WeightsFileError(f"{source}: truncated weights file ({len(blob)} bytes, no header)")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > len(blob):
        raise WeightsFileError(f"{source}: truncated or corrupt weights file (bad header length)")
    try:
        header = json.loads(blob[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsFileError(f"{source}: corrupt weights header ({exc})") from None
    if not isinstance(header, dict):
        raise WeightsFileError(f"{source}: corrupt weights header (not a JSON object)")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict):
        raise WeightsFileError(f"{source}: corrupt weights header (__metadata__ is not a table)")
    body = memoryview(blob)[8 + header_len :]
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise WeightsFileError(f"{source}: tensor {name!r} has a malformed entry") from None
        if dtype != "F32":
            raise WeightsFileError(f"{source}: tensor {name!r} has dtype {dtype}, expected F32")
        if not (isinstance(shape, list) and all(_is_size(n) for n in shape)):
            raise WeightsFileError(f"{source}: tensor {name!r} has a malformed shape {shape!r}")
        if not (_is_size(start) and _is_size(end)):
            raise WeightsFileError(f"{source}: tensor {name!r} has malformed data offsets")
        count = 1
        for n in shape:
            count *= n
        if end > len(body) or end - start != 4 * count or start > end:
            raise WeightsFileError(
                f"{source}: tensor {name!r} is truncated (needs bytes {start}..{end}, "
                f"file has {len(body)})"
            )
        array = np.frombuffer(body[start:end], dtype="<f4").reshape(shape).copy()
        if not np.isfinite(array).all():
            raise WeightsFileError(f"{source}: tensor {name!r} contains NaN or infinite values")
        tensors[name] = array
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _is_size(value: object) -> bool:
    return type(value) is int and value >= 0


def load_file(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"weights file not found: {path}")
    return loads(path.read_bytes(), source=str(path))
