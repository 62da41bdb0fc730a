"""Short, bounded descriptions of untrusted values for error messages, and safe names."""

from __future__ import annotations

import reprlib
import unicodedata
from typing import Any


def short(value: Any, limit: int = 60) -> str:
    """``value`` as text of at most ``limit`` characters (strings as they are, others repr'd).

    reprlib bounds the work: a huge or deeply nested value is never fully repr()'d.
    """
    text = value if isinstance(value, str) else reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Longest image name kept (uploads, paths); longer names are cut with an ellipsis.
MAX_NAME_LENGTH = 80
#: Unicode categories replaced in names: controls, format characters, surrogates, private
#: use, unassigned, and line/paragraph separators (other than the space, every Z* but Zs).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_name(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """``name`` made safe to show and to send: printable, valid Unicode, at most ``limit`` long.

    Lone surrogates (which cannot be encoded as UTF-8, so the page would never get the update)
    and control or format characters (a terminal escape, a right-to-left override) become
    U+FFFD; an empty result becomes "image".
    """
    text = "".join(
        ch if ch == " " or unicodedata.category(ch) not in _UNSAFE_CATEGORIES else "\ufffd"
        for ch in name[: limit * 4]
    ).strip()
    return short(text, limit) if text else "image"
