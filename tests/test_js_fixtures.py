"""The front end's test fixtures are what the Python package sends today.

`scripts/make_js_fixture.py` writes real payload messages into ``js/test/fixtures/``; vitest
checks the TypeScript math against them. Here the script runs again into a temporary folder and
every file must match the committed one: headers exactly (numbers to float32 rounding), binary
payloads as float32 arrays to within rounding that another CPU's XLA may differ by. A change to
the protocol, the model, the preprocessing or the script that was not followed by
``python scripts/make_js_fixture.py`` fails here.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np

from conftest import ROOT, js_fixture_script

FIXTURES = ROOT / "js" / "test" / "fixtures"
HAND_WRITTEN = {"load.ts", "node-modules.d.ts"}


def _same_json(a: Any, b: Any, where: str) -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), where
        assert np.isclose(a, b, rtol=1e-4, atol=1e-6), f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _same_json(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_json(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _floats(path: Any) -> np.ndarray:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return np.frombuffer(data, "<f4")


def test_the_js_fixtures_are_fresh(tmp_path):
    js_fixture_script().main(tmp_path)
    committed = {p.name for p in FIXTURES.iterdir()} - HAND_WRITTEN
    fresh = {p.name for p in tmp_path.iterdir()}
    assert fresh == committed, "run python scripts/make_js_fixture.py"
    for name in sorted(fresh):
        new, old = tmp_path / name, FIXTURES / name
        hint = f"{name} is stale: run python scripts/make_js_fixture.py"
        if name.endswith(".json"):
            _same_json(json.loads(new.read_text()), json.loads(old.read_text()), hint)
        else:
            a, b = _floats(new), _floats(old)
            assert a.shape == b.shape, hint
            close = np.isclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True)
            assert close.all(), f"{hint} ({(~close).sum()} of {a.size} values differ)"
