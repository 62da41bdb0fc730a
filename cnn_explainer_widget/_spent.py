"""A large result's buffers, handed back to XLA so that the next result is written into them.

XLA:CPU allocates every output of a call anew. Buffers of a few MB and more come from fresh
pages (``malloc`` maps them and unmaps them when freed), and a first write to a fresh page
faults: on the development machine a ReLU over 39 MB ran at 4.4 GB/s into fresh memory
against 26-34 GB/s into memory already written (``bench/README.md``, "Output buffers"). A batch's
thirteen outputs are all of that size, so a batch of 256 Tiny VGG images or of 16 images of
a 224 px network spent most of its time in page faults, and one image cost more inside a
large batch than alone.

`SpentOutputs` keeps the arrays of the last large result. The next call of the same shape
donates them to the compiled pass (``donate_argnums``), which writes its outputs into them.
JAX donates an array only when nothing else refers to its memory: while the caller still holds
a numpy view of a result, that array is simply not reused (and stays intact), so nothing a
caller kept can change. At most one result's buffers are held, and only results of at least
`MIN_BYTES` (smaller ones come from ``malloc``'s reused memory anyway). A result over
`LONG_HOLD_BYTES` is held for `HOLD_SECONDS` only: a loop over large batches reuses it, and a
single large result the caller dropped gives its memory back soon after.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

import jax

#: Results smaller than this (all outputs together) are not kept: one Tiny VGG image is
#: 0.76 MB, written into memory ``malloc`` already reuses.
MIN_BYTES = 4 * 2**20
#: Results up to this size are held until the next call: 1 GiB is ~1,400 Tiny VGG images, or
#: 32 images of a 224 px network with 32 channels.
LONG_HOLD_BYTES = 2**30
#: How long a larger result is held.
HOLD_SECONDS = 10.0


class SpentOutputs:
    """The arrays of the last large result, by the call they came from (batch size, ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # two threads must never donate the same arrays
        self._key: Hashable | None = None
        self._arrays: tuple[jax.Array, ...] | None = None
        self._expiry: threading.Timer | None = None

    def take(self, key: Hashable) -> tuple[jax.Array, ...] | None:
        """The kept arrays if they came from a call like ``key`` (then no longer kept)."""
        with self._lock:
            arrays, self._arrays = self._arrays, None
            same = self._key == key
            self._key = None
        return arrays if same else None

    def keep(self, key: Hashable, arrays: tuple[jax.Array, ...], nbytes: int) -> None:
        """Keep ``arrays`` (a result of ``nbytes``) for the next call like ``key``.

        Call it only once the caller's views of ``arrays`` exist: an array nobody else refers
        to may be donated, and so deleted, by the next call.
        """
        if nbytes < MIN_BYTES:
            return
        expiry = None
        if nbytes > LONG_HOLD_BYTES:
            expiry = threading.Timer(HOLD_SECONDS, self._expire, (arrays,))
            expiry.daemon = True
        with self._lock:
            self._key, self._arrays = key, arrays
            if self._expiry is not None:
                self._expiry.cancel()
            self._expiry = expiry
        if expiry is not None:
            expiry.start()

    def _expire(self, arrays: tuple[jax.Array, ...]) -> None:
        """Drop ``arrays`` if they are still the ones kept (the timer of a large result)."""
        with self._lock:
            if self._arrays is arrays:
                self._key, self._arrays = None, None


__all__ = ["HOLD_SECONDS", "LONG_HOLD_BYTES", "MIN_BYTES", "SpentOutputs"]
