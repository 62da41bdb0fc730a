"""The TypeScript front end: type check, vitest, and the committed bundle equals a fresh build."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import ROOT

JS = ROOT / "js"
STATIC = ROOT / "cnn_explainer_widget" / "static"


@pytest.fixture(scope="module")
def npm() -> str:
    exe = shutil.which("npm")
    assert exe, "npm is needed for the front-end tests (Node.js 20+)"
    assert (JS / "node_modules").is_dir(), "run `npm ci --prefix js` first"
    return exe


def _run(npm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [npm, "--prefix", str(JS), *args], capture_output=True, text=True, timeout=600
    )


def test_typecheck(npm):
    result = _run(npm, "run", "typecheck")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_vitest(npm):
    result = _run(npm, "test")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "passed" in out


def test_committed_bundle_equals_fresh_build(npm):
    committed = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
    assert {"widget.js", "widget.css"} <= set(committed)
    result = _run(npm, "run", "build")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    rebuilt = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
    differ = sorted(n for n in committed if rebuilt.get(n) != committed[n])
    for name in differ:  # leave the working tree as it was
        (STATIC / name).write_bytes(committed[name])
    assert not differ, f"rebuild the bundle (npm --prefix js run build) and commit: {differ}"
