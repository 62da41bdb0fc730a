"""Data-set scan speed and memory: `top_activations` against a loop of `activations` calls.

Run by hand from the repository root::

    python bench/scan.py            # full run (about 3 minutes on 2 cores)
    python bench/scan.py --quick    # 5,000 images, 20,000 from the generator, 1 repetition

Part 1, images per second over 20,000 in-memory uint8 images (the ten default images with
pixel noise), for two neurons (a deep one, ``relu_2_2[3]``, and a shallow one, ``conv_1_2[0]``),
each median of 3 runs, alternating in the same process:

- ``top_activations(images, layer, index, k=9, batch_size=256)``;
- the baseline: a loop over batches of 256 that converts the batch to float in [0, 1], calls
  ``activations(batch)`` (every layer, as numpy arrays), takes the neuron's map maximum and
  argmax with numpy and keeps a running top 9 (what a user writes without `top_activations`).

Both give the same top-9 list (checked). Part 2: peak RSS of a fresh process that scans
100,000 images from a generator (each image made on the fly, never all in memory) with
``top_activations``, read from ``/proc/self/status`` (VmHWM, the process's high-water mark),
next to the peak the same process had reached after importing and compiling on a first small
scan.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import save  # noqa: E402

from cnn_explainer_widget import DEFAULT_IMAGES, activations, load_image, top_activations  # noqa: E402
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network  # noqa: E402

RSS_SCRIPT = """
import sys, json
import numpy as np
from cnn_explainer_widget import top_activations
n = int(sys.argv[1])
def rss_mb():
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's over fork + exec).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def stream(count):
    rng = np.random.default_rng(0)
    for _ in range(count):
        yield rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
top_activations(stream(300), "relu_2_2", 3, k=9, progress=False)  # import + compile
warm = rss_mb()
top = top_activations(stream(n), "relu_2_2", 3, k=9, progress=False)
json.dump({"warm_mb": warm, "peak_mb": rss_mb(), "top": top[:3]}, sys.stdout)
"""


def make_images(n: int) -> np.ndarray:
    base = np.stack(
        [load_image(ROOT / "cnn_explainer_widget" / "images" / f) for f, _ in DEFAULT_IMAGES]
    )
    rng = np.random.default_rng(0)
    out = np.empty((n, 64, 64, 3), np.uint8)
    for start in range(0, n, 1000):
        m = min(1000, n - start)
        noisy = base[rng.integers(0, len(base), m)] + rng.normal(0, 0.05, (m, 64, 64, 3))
        out[start : start + m] = np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8)
    return out


def loop_of_activations(images: np.ndarray, layer: str, index: int, k: int = 9) -> list:
    key = tiny_vgg_network().key_of(layer)
    top: list[tuple[float, int, int]] = []  # (-value, image index, flat position)
    width = 0
    for start in range(0, len(images), 256):
        batch = images[start : start + 256].astype(np.float32) / 255.0
        maps = activations(batch)[key][..., index]
        flat = maps.reshape(len(maps), -1)
        width = maps.shape[2] if maps.ndim == 3 else 1
        values, where = flat.max(axis=1), flat.argmax(axis=1)
        top = sorted(
            top
            + [
                (-float(v), start + i, int(p))
                for i, (v, p) in enumerate(zip(values, where, strict=True))
            ]
        )[:k]
    return [(i, -v, (p // width, p % width)) for v, i, p in top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, one repetition")
    args = parser.parse_args()
    n = 5_000 if args.quick else 20_000
    n_stream = 20_000 if args.quick else 100_000
    repeats = 1 if args.quick else 3

    images = make_images(n)
    print(f"{n:,} uint8 images in memory ({images.nbytes / 1e6:.0f} MB); "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    results: dict = {"n": n, "neurons": {}}
    rows = []
    for layer, index in (("relu_2_2", 3), ("conv_1_2", 0)):
        # Warm both up (compilation is not what is measured) and check they agree.
        ours = top_activations(images[:512], layer, index, progress=False)
        theirs = loop_of_activations(images[:512], layer, index)
        assert [r[0] for r in ours] == [r[0] for r in theirs], (ours, theirs)
        t_ours, t_loop = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            ours = top_activations(images, layer, index, progress=False)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            theirs = loop_of_activations(images, layer, index)
            t_loop.append(time.perf_counter() - t)
        assert [r[0] for r in ours] == [r[0] for r in theirs], (ours, theirs)
        a, b = statistics.median(t_ours), statistics.median(t_loop)
        rows.append((f"{layer}[{index}]", a, b))
        results["neurons"][f"{layer}[{index}]"] = {"top_activations_s": t_ours, "loop_s": t_loop}

    print()
    print(f"{'neuron':<14} {'top_activations':>18} {'img/s':>9} {'activations loop':>18} "
          f"{'img/s':>9} {'speed-up':>9}")  # fmt: skip
    print("-" * 82)
    for name, a, b in rows:
        print(f"{name:<14} {a:>16.2f} s {n / a:>9,.0f} {b:>16.2f} s {n / b:>9,.0f} {b / a:>8.2f}x")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(n_stream)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rss = json.loads(done.stdout)
    results["rss"] = {"images": n_stream, **rss}
    print()
    print(f"scan of {n_stream:,} images from a generator (fresh process): peak RSS "
          f"{rss['peak_mb']:.0f} MB (after import + compile: {rss['warm_mb']:.0f} MB)")  # fmt: skip
    print(f"results: {save('scan', results)}")


if __name__ == "__main__":
    main()
