"""Forward-pass speed: `activations()` against the independent numpy reference, side by side.

Run by hand from the repository root::

    python bench/forward.py            # full run (a few minutes on 2 cores)
    python bench/forward.py --quick    # fewer repetitions

Prints, for one image and for batches of 1, 32, 256 and 1024: the median wall time of
`Network.activations` (every layer's output as numpy arrays) and of the float64 numpy reference
(tests/numpy_reference.py, vectorised over the batch), images per second, and the ratio; then
the time a fresh Python process takes to its first result (import, load weights,
compile, run), median of 3 fresh processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from cnn_explainer_widget import DEFAULT_IMAGES, load_image  # noqa: E402
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network  # noqa: E402

from numpy_reference import network_forward  # noqa: E402

COLD_SCRIPT = """
import time
t0 = time.perf_counter()
import numpy as np
from cnn_explainer_widget import activations, load_image
from cnn_explainer_widget.images import default_image_path
out = activations(load_image(default_image_path("espresso_1.jpeg")))
assert out["probabilities"].shape == (10,)
print(time.perf_counter() - t0)
"""


def timings(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def cold_start(env: dict[str, str]) -> tuple[float, float]:
    """(seconds from process start to first result, in-script seconds after the interpreter)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", COLD_SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - t, float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0

    network = tiny_vgg_network()
    images = np.stack(
        [load_image(ROOT / "cnn_explainer_widget" / "images" / n) for n, _ in DEFAULT_IMAGES]
    )
    rng = np.random.default_rng(0)

    def batch_of(n: int) -> np.ndarray:
        return images[rng.integers(0, len(images), n)]

    print(f"cpu cores: {os.cpu_count()}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    import jax

    print(f"jax {jax.__version__}, numpy {np.__version__}, backend {jax.default_backend()}")
    print()
    header = (
        f"{'case':<22}{'jax median':>13}{'jax img/s':>11}"
        f"{'numpy median':>15}{'numpy img/s':>13}{'numpy/jax':>11}"
    )
    print(header)
    print("-" * len(header))
    cases = [
        ("one image (H,W,C)", images[7], 1, int(400 * scale), int(40 * scale)),
        ("batch 1", batch_of(1), 1, int(200 * scale), int(40 * scale)),
        ("batch 32", batch_of(32), 32, int(60 * scale), int(12 * scale) or 3),
        ("batch 256", batch_of(256), 256, int(20 * scale), 3),
        ("batch 1024", batch_of(1024), 1024, int(8 * scale), 1),
    ]
    for name, x, n, jax_reps, np_reps in cases:
        jax_t = statistics.median(timings(lambda x=x: network.activations(x), max(jax_reps, 5)))
        np_t = statistics.median(
            timings(lambda x=x: network_forward(network, x), np_reps, warmup=int(n < 256))
        )
        print(
            f"{name:<22}{fmt(jax_t):>13}{n / jax_t:>11,.0f}"
            f"{fmt(np_t):>15}{n / np_t:>13,.0f}{np_t / jax_t:>10.1f}x"
        )

    print()
    runs = [cold_start(dict(os.environ)) for _ in range(3)]
    total = statistics.median(r[0] for r in runs)
    inner = statistics.median(r[1] for r in runs)
    print(
        f"cold first result: {total:.2f} s from process start "
        f"({inner:.2f} s after the interpreter started; median of 3 fresh processes)"
    )


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
