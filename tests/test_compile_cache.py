"""JAX's persistent compilation cache holds the package's executables, and only those.

Each case runs in a fresh interpreter (the cache is what a new kernel meets), with the cache
folder under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT

SCRIPT = """
import json, jax, numpy as np
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None
)
from cnn_explainer_widget import activations, load_image
from cnn_explainer_widget.images import default_image_path
x = load_image(default_image_path("koala_1.jpeg"))
logits = activations(x)["logits"]
settings = {n: getattr(jax.config, n) for n in (
    "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
    "jax_compilation_cache_max_size")}
forward_hits = len(hits)
jax.jit(lambda v: v * 3 + 1)(np.arange(5.0)).block_until_ready()  # the user's own program
print(json.dumps({"logits": logits.tolist(), "hits": forward_hits, "settings": settings}))
"""


def _run(tmp_path, cache: str) -> dict:
    env = {
        **os.environ,
        "CNN_EXPLAINER_WIDGET_CACHE": cache,
        "XDG_CACHE_HOME": str(tmp_path / "home-cache"),
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


def _entries(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*-cache")) if folder.exists() else []


def test_a_new_process_loads_the_forward_pass_from_the_cache(tmp_path):
    folder = tmp_path / "cnnx-cache"
    first = _run(tmp_path, str(folder))
    entries = _entries(folder)
    # Only the package's forward pass is written; the user's program (compiled after it, in
    # well under JAX's 1 s threshold) is not, and JAX's settings are as they were.
    assert len(entries) == 1 and entries[0].startswith("jit_forward_flat"), entries
    assert first["hits"] == 0
    assert first["settings"] == {
        "jax_compilation_cache_dir": None,
        "jax_persistent_cache_min_compile_time_secs": 1.0,
        "jax_compilation_cache_max_size": -1,
    }
    second = _run(tmp_path, str(folder))
    assert second["hits"] == 1  # loaded, not compiled
    assert second["logits"] == first["logits"]  # the same executable: the same bits
    assert _entries(folder) == entries
    assert not (tmp_path / "home-cache").exists()  # the variable moved the cache


def test_the_default_folder_is_in_the_user_cache_and_off_writes_nothing(tmp_path):
    _run(tmp_path, "off")
    assert not (tmp_path / "home-cache").exists()
    _run(tmp_path, "")
    entries = _entries(tmp_path / "home-cache" / "cnn-explainer-widget" / "jax")
    assert len(entries) == 1, entries
