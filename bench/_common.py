"""Shared bits of the hand-run benchmarks (statistics, tables, where results go)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))
RESULTS = REPO / "bench" / "results"  # git-ignored


def timings(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:  # nearest-rank quantile
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "median": statistics.median(ordered),
        "p10": pick(0.1),
        "p90": pick(0.9),
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }


def print_table(rows: list[tuple[str, dict[str, float], str]]) -> None:
    head = f"{'metric':<52} {'median':>10} {'p10':>10} {'p90':>10} {'min':>10} {'max':>10} {'n':>4}"
    print(head)
    print("-" * len(head))
    for name, s, fmt in rows:
        cells = " ".join(f"{format(s[k], fmt):>10}" for k in ("median", "p10", "p90", "min", "max"))
        print(f"{name:<52} {cells} {s['n']:>4}")


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path
