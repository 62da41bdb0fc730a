"""Files the page uploads: checked before decoding, and reassembled when sent in pieces.

JupyterLab's websocket drops any message over 10 MiB, so the front end sends a file as
``upload-chunk`` messages of 4 MiB (js/src/ui/upload.ts); a small file may also come whole, as
one ``upload`` message. Nothing here decodes an image: the widget does, from the bytes returned.

The pieces of one upload are not handled in the order the page sent them, nor on one thread.
With ipykernel 7 and JupyterLab 4.4 or later, comm messages carry a subshell id, and ipykernel
routes each incoming comm message to the thread (main shell or subshell) that last *published*
on that comm (``ipykernel.comm.BaseComm._reply_subshell_for``). When the widget publishes from
another thread in the middle of an upload (the answer to the page's ping is enough), the
remaining pieces go to the other thread: the two threads handle the pieces concurrently, in
any order. `ChunkedUploads` therefore keeps pieces by index per upload id, under a lock, and
only says a piece is missing when an upload is dropped (its memory is needed for a newer
upload, or nothing came for `STALE_SECONDS`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnn_explainer_widget._text import clean_name

#: Largest upload accepted from the front end, checked before decoding.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest piece of a chunked upload. JupyterLab's websocket drops any message over 10 MiB, so the
#: front end sends files in pieces of 4 MiB (js/src/ui/upload.ts); 8 MiB leaves room.
MAX_CHUNK_BYTES = 8 * 1024 * 1024
#: Most pieces one upload may declare (the page sends at most 5 for `MAX_UPLOAD_BYTES`).
MAX_PIECES = 256
#: An unfinished upload that got no piece for this long is dropped, saying which pieces are
#: missing (checked whenever a piece of any upload arrives).
STALE_SECONDS = 60.0


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


@dataclass
class _Pending:
    """An unfinished upload: what its first piece declared, and the pieces held so far."""

    name: str
    count: int
    size: int
    order: int  # when its first piece arrived, among all uploads (older: smaller)
    last: float  # clock() when its latest piece arrived
    parts: dict[int, bytes] = field(default_factory=dict)
    held: int = 0

    def lost(self) -> str:
        """The message for this upload, dropped unfinished: which pieces never arrived."""
        gone = [i + 1 for i in range(self.count) if i not in self.parts]
        if len(gone) == 1:
            which = f"piece {gone[0]} of {self.count}"
        elif len(gone) <= 6:
            which = f"pieces {', '.join(map(str, gone[:-1]))} and {gone[-1]} of {self.count}"
        else:
            which = f"{len(gone)} of its {self.count} pieces"
        return f"Could not use {self.name}: {which} never arrived; please upload it again."


class ChunkedUploads:
    """Reassembles ``upload-chunk`` messages into files, whatever order and thread they come on.

    Pieces are kept by index per upload id; a duplicate piece is ignored. All unfinished
    uploads together hold at most `MAX_UPLOAD_BYTES`: a piece that would exceed it drops the
    oldest other unfinished uploads, saying which of their pieces never arrived; so does an
    upload that got no piece for `STALE_SECONDS`. When an upload completes, older unfinished
    ones are dropped silently (the newer file is what the user sees). An upload refused for an
    inconsistent piece is dropped. The later pieces of a dropped upload are ignored.

    Parameters
    ----------
    clock:
        Seconds, for `STALE_SECONDS` (``time.monotonic``; tests pass their own).
    """

    #: Ids of dropped uploads remembered, so that their later pieces are ignored.
    DROPPED_KEPT = 64

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._dropped: dict[int, None] = {}
        self._order = 0
        self._clock = clock

    @property
    def held_bytes(self) -> int:
        """Bytes held in unfinished uploads (at most `MAX_UPLOAD_BYTES`)."""
        with self._lock:
            return sum(p.held for p in self._pending.values())

    @property
    def unfinished(self) -> int:
        """How many uploads are waiting for pieces."""
        with self._lock:
            return len(self._pending)

    def add(self, content: dict[str, Any], buffers: Any) -> tuple[str, bytes] | None:
        """One piece of a file: ``{"id", "index", "count", "size", "name"}`` and one buffer.

        Returns
        -------
        tuple or None
            ``(name, data)`` when this piece completes its file, else None (also for a message
            without the four integer fields, a duplicate piece or a piece of a refused upload,
            which are ignored).

        Raises
        ------
        UploadRefused
            When this upload is too large, or its pieces contradict each other or do not add
            up to its size (it is dropped); or when an older unfinished upload was dropped
            for lack of memory or time (the message names its missing pieces).
        """
        name = upload_name(content)
        fields = [content.get(k) for k in ("id", "index", "count", "size")]
        ints = [v for v in fields if type(v) is int]
        if len(ints) != 4:
            return None
        upload_id, index, count, size = ints
        chunk: memoryview | None = None
        if isinstance(buffers, list | tuple) and len(buffers) == 1:
            try:
                chunk = memoryview(buffers[0]).cast("B")
            except (TypeError, ValueError):
                chunk = None
        with self._lock:
            if upload_id in self._dropped:
                return None
            now = self._clock()
            lost = [
                self._give_up(k)
                for k, p in list(self._pending.items())
                if k != upload_id and now - p.last > STALE_SECONDS
            ]
            try:
                done = self._add(upload_id, index, count, size, name, chunk, now, lost)
            except UploadRefused:
                self._drop(upload_id)
                raise
        if done is None and lost:
            raise UploadRefused(lost[-1])
        return done

    def _add(
        self,
        upload_id: int,
        index: int,
        count: int,
        size: int,
        name: str,
        chunk: memoryview | None,
        now: float,
        lost: list[str],
    ) -> tuple[str, bytes] | None:
        incomplete = f"Could not use {name}: it arrived incomplete; please upload it again."
        if size > MAX_UPLOAD_BYTES:
            raise UploadRefused(too_large(name, size))
        if size < 0 or not 1 <= count <= MAX_PIECES or not 0 <= index < count or chunk is None:
            raise UploadRefused(incomplete)
        cur = self._pending.get(upload_id)
        if cur is None:
            self._order += 1
            cur = _Pending(name, count, size, self._order, now)
            self._pending[upload_id] = cur
        if (cur.count, cur.size) != (count, size) or chunk.nbytes > MAX_CHUNK_BYTES:
            raise UploadRefused(incomplete)
        cur.last = now
        if index in cur.parts:
            return None  # a duplicate: that piece is already held
        if cur.held + chunk.nbytes > size:
            raise UploadRefused(incomplete)
        # Room for the piece: drop the oldest other unfinished uploads (their pieces are lost).
        while sum(p.held for p in self._pending.values()) + chunk.nbytes > MAX_UPLOAD_BYTES:
            oldest = min(
                (k for k in self._pending if k != upload_id), key=lambda k: self._pending[k].order
            )
            lost.append(self._give_up(oldest))
        cur.parts[index] = bytes(chunk)
        cur.held += chunk.nbytes
        if len(cur.parts) < count:
            return None
        self._drop(upload_id)
        if cur.held != size:
            raise UploadRefused(incomplete)
        for older in [k for k, p in self._pending.items() if p.order < cur.order]:
            self._drop(older)  # superseded: the newer file is what the user sees
        return cur.name, b"".join(cur.parts[i] for i in range(count))

    def _give_up(self, upload_id: int) -> str:
        """Drop an unfinished upload; the message saying which of its pieces never arrived."""
        gone = self._drop(upload_id)
        assert gone is not None
        return gone.lost()

    def _drop(self, upload_id: int) -> _Pending | None:
        """Forget an upload (finished or not); its later pieces (duplicates) are ignored."""
        self._dropped[upload_id] = None
        while len(self._dropped) > self.DROPPED_KEPT:
            del self._dropped[next(iter(self._dropped))]
        return self._pending.pop(upload_id, None)


def too_large(name: str, size: int) -> str:
    """The message for an upload of ``size`` bytes, over `MAX_UPLOAD_BYTES`."""
    return (
        f"Could not use {name}: it is {size:,} bytes; uploads up to "
        f"{MAX_UPLOAD_BYTES:,} bytes are accepted."
    )
