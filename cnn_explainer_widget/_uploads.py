"""Files the page uploads: checked before decoding, and reassembled when sent in pieces.

JupyterLab's websocket drops any message over 10 MiB, so the front end sends a file as
``upload-chunk`` messages of 4 MiB (js/src/ui/upload.ts); a small file may also come whole, as
one ``upload`` message. Nothing here decodes an image: the widget does, from the bytes returned.
"""

from __future__ import annotations

from typing import Any

from cnn_explainer_widget._text import clean_name

#: Largest upload accepted from the front end, checked before decoding.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest piece of a chunked upload. JupyterLab's websocket drops any message over 10 MiB, so the
#: front end sends files in pieces of 4 MiB (js/src/ui/upload.ts); 8 MiB leaves room.
MAX_CHUNK_BYTES = 8 * 1024 * 1024


class UploadRefused(ValueError):
    """An upload that cannot be used; the message says why, for the widget to show."""


def upload_name(content: dict[str, Any]) -> str:
    """The file name a message gives, made safe to show, or "the uploaded file"."""
    name = content.get("name")
    return clean_name(name) if isinstance(name, str) and name else "the uploaded file"


def whole_upload(content: dict[str, Any], buffers: Any) -> tuple[str, bytes]:
    """The name and bytes of an ``upload`` message: ``{"name"}`` and one buffer.

    Raises
    ------
    UploadRefused
        When the message holds no single buffer of bytes, or more than `MAX_UPLOAD_BYTES`.
    """
    name = upload_name(content)
    if not isinstance(buffers, list | tuple) or len(buffers) != 1:
        count = len(buffers) if isinstance(buffers, list | tuple) else 0
        raise UploadRefused(f"Could not use {name}: expected one file, got {count}.")
    try:
        size = memoryview(buffers[0]).nbytes
    except TypeError:
        raise UploadRefused(f"Could not use {name}: the file did not arrive as bytes.") from None
    if size > MAX_UPLOAD_BYTES:
        raise UploadRefused(too_large(name, size))
    return name, bytes(memoryview(buffers[0]))


class ChunkedUploads:
    """Reassembles ``upload-chunk`` messages into files (one upload at a time)."""

    def __init__(self) -> None:
        # The upload being reassembled (at most one, at most MAX_UPLOAD_BYTES).
        self._chunks: dict[str, Any] | None = None

    def add(self, content: dict[str, Any], buffers: Any) -> tuple[str, bytes] | None:
        """One piece of a file: ``{"id", "index", "count", "size", "name"}`` and one buffer.

        Pieces of one upload arrive in order (index 0 starts a new upload and drops any
        unfinished one); the last completes it. Anything inconsistent drops the upload with a
        message; at most `MAX_UPLOAD_BYTES` are ever held.

        Returns
        -------
        tuple or None
            ``(name, data)`` once the last piece completes the file, else None (also for a
            message without the four integer fields, which is ignored).

        Raises
        ------
        UploadRefused
            When the upload is too large or did not arrive whole.
        """
        name = upload_name(content)
        fields = [content.get(k) for k in ("id", "index", "count", "size")]
        ints = [v for v in fields if type(v) is int]
        if len(ints) != 4:
            return None
        upload_id, index, count, size = ints
        if size > MAX_UPLOAD_BYTES:
            self._chunks = None
            if index == 0:
                raise UploadRefused(too_large(name, size))
            return None
        chunk: memoryview | None = None
        if isinstance(buffers, list | tuple) and len(buffers) == 1:
            try:
                chunk = memoryview(buffers[0])
            except TypeError:
                chunk = None
        cur = self._chunks
        if index == 0:
            cur = {"id": upload_id, "count": count, "size": size, "parts": [], "n": 0}
            self._chunks = cur
        if (
            cur is None
            or chunk is None
            or (cur["id"], cur["count"], cur["size"]) != (upload_id, count, size)
            or not len(cur["parts"]) == index < count
            or chunk.nbytes > MAX_CHUNK_BYTES
            or cur["n"] + chunk.nbytes > size
        ):
            self._chunks = None
            raise UploadRefused(
                f"Could not use {name}: it arrived incomplete; please upload it again."
            )
        cur["parts"].append(bytes(chunk))
        cur["n"] += chunk.nbytes
        if index == count - 1:
            self._chunks = None
            if cur["n"] != size:
                raise UploadRefused(
                    f"Could not use {name}: it arrived incomplete; please upload it again."
                )
            return name, b"".join(cur["parts"])
        return None


def too_large(name: str, size: int) -> str:
    """The message for an upload of ``size`` bytes, over `MAX_UPLOAD_BYTES`."""
    return (
        f"Could not use {name}: it is {size:,} bytes; uploads up to "
        f"{MAX_UPLOAD_BYTES:,} bytes are accepted."
    )
