"""JAX's persistent compilation cache for the package's own executables, and a quiet compile.

A fresh kernel's first widget spends about a quarter of a second compiling Tiny VGG's forward
pass. JAX can keep compiled executables on disk (its persistent compilation cache,
``jax_compilation_cache_dir``), so the next kernel loads the executable instead of compiling
it. `own_cache` points that cache at the package's folder in the user's cache directory
(``~/.cache/cnn-explainer-widget/jax`` on Linux, bounded to `MAX_BYTES`, least recently used
entries evicted) for the package's compiles only: JAX's settings are restored and its cache
reset afterwards, so the user's own programs are cached as the user configured (by default,
not at all). JAX writes and reads the entries (its own format); the package never unpickles
anything.

Turn it off with the environment variable ``CNN_EXPLAINER_WIDGET_CACHE=off`` (or ``0``), or
with JAX's own ``jax.config.update("jax_enable_compilation_cache", False)``; set the variable
to a folder to keep the cache there. Like any JAX cache folder it must be writable only by you:
whoever can write to it can make your kernel run their code.

`paused_gc` pauses Python's cyclic garbage collector during such a first call: tracing and
lowering allocate tens of thousands of objects, which made the collector run about 30 times
during a fresh widget's construction, among them a full pass over a kernel's ~150,000 objects
(jax and IPython's), 0.13-0.17 s of a 0.3-0.4 s `CNNExplainer()` measured at load 6-7.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
from jax.experimental.compilation_cache import compilation_cache as jax_cache

#: The environment variable: "off", "0", "false" or "no" turn the cache off; a path moves it.
ENV_VAR = "CNN_EXPLAINER_WIDGET_CACHE"
#: Largest size of the package's cache folder; JAX evicts the least recently used entries.
#: Tiny VGG's forward pass is ~21 KB.
MAX_BYTES = 64 * 2**20

#: The JAX settings `own_cache` changes, restored afterwards.
_SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_compilation_cache_max_size",
)
_lock = threading.Lock()


def cache_dir() -> Path | None:
    """The package's cache folder, or None when the cache is turned off."""
    value = os.environ.get(ENV_VAR, "").strip()
    if value.lower() in ("off", "0", "false", "no"):
        return None
    if not getattr(jax.config, "jax_enable_compilation_cache", True):
        return None
    if value:
        return Path(value).expanduser()
    return _user_cache_home() / "cnn-explainer-widget" / "jax"


def _user_cache_home() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _set(name: str, value: Any) -> None:
    jax.config.update(name, value)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def own_cache() -> Iterator[None]:
    """Inside: JAX compiles read and write the package's cache folder, whatever they cost.

    Wrap the first call of a jitted function of the package (the call that compiles) in it.
    Nothing changes when the cache is off or its folder cannot be made.
    """
    path = cache_dir()
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            path = None
    if path is None:
        yield
        return
    with _lock:
        saved = {name: getattr(jax.config, name) for name in _SETTINGS}
        jax_cache.reset_cache()  # JAX opens its cache folder once; open ours
        _set("jax_compilation_cache_dir", str(path))
        _set("jax_persistent_cache_min_compile_time_secs", 0.0)
        _set("jax_compilation_cache_max_size", MAX_BYTES)
        try:
            yield
        finally:
            for name, value in saved.items():
                _set(name, value)
            jax_cache.reset_cache()  # the user's own cache (or none) from the next compile


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Inside: no cyclic garbage collection (reference counting still frees memory).

    The collector is switched back on afterwards if it was on (a nested or concurrent pause
    leaves it to the outermost).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


__all__ = ["ENV_VAR", "MAX_BYTES", "cache_dir", "own_cache", "paused_gc"]
