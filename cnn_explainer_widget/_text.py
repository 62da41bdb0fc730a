"""Short, bounded descriptions of untrusted values for error messages."""

from __future__ import annotations

import reprlib
from typing import Any


def short(value: Any, limit: int = 60) -> str:
    """``value`` as text of at most ``limit`` characters (strings as they are, others repr'd).

    reprlib bounds the work: a huge or deeply nested value is never fully repr()'d.
    """
    text = value if isinstance(value, str) else reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
