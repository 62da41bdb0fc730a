"""Forward-pass speed: `activations()` against ONNX Runtime and PyTorch doing the same work.

Run by hand from the repository root, after ``pip install -e ".[bench]"``::

    python bench/forward.py                 # Tiny VGG, the user networks, cold start
    python bench/forward.py --quick         # fewer repetitions
    python bench/forward.py --only tiny     # one section: tiny | users | model | cold

Every framework computes the same network and returns every layer's output as numpy arrays,
measured in the same process, one after the other, each on 2 threads (see bench/_baselines.py):

- **ours**: `Network.activations` (NHWC in, NHWC out);
- **ORT**: ONNX Runtime 2 threads, the same graph built with ``onnx.helper`` from the weights,
  every layer a graph output (NCHW in and out; the input's transpose is not timed);
- **torch**: eager PyTorch on ``channels_last`` tensors under ``inference_mode``, every layer's
  output viewed as numpy.

Before timing, each framework's outputs are checked against ours (max |difference| ≤ 1e-5 ×
max(1, |value|), printed). Sections:

1. ``tiny``: the shipped Tiny VGG at batch 1, 32 and 256: median time per image and the ratios
   ours / ORT and ours / torch (below 1 = ours faster).
2. ``users``: "the user's networks", Tiny VGG's shape with C = 32 or 64 channels in all four
   convolutions at 64, 128 and 224 px (conv-relu-conv-relu-pool twice, flatten, dense to 10):
   per-image time at batch 1 and at a large batch (256, fewer where every output of the batch
   would not fit in ``--max-gb``, default 3 GB; the column says which), ours bN/b1 (per-image
   time at the large batch over at batch 1: ≤ 1 means batching does not hurt) and ours / torch
   and ours / ORT at the large batch.
3. ``model``: ``activations(x, model=m)`` with a `TrainedModel` (an ``nnx.Sequential`` and
   its input shape) against the prebuilt `Network`'s call, the two alternated (the goal:
   within 10 %).
4. ``cold``: a fresh Python process from start to its first result (import, load weights,
   compile, run), median of 3.

The machine is shared: report the load average printed at the start and end with the figures.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _baselines import (  # noqa: E402
    max_difference,
    onnx_runner,
    torch_input,
    torch_runner,
)
from _common import timings  # noqa: E402

from cnn_explainer_widget import (  # noqa: E402
    DEFAULT_IMAGES,
    Flatten,
    TrainedModel,
    activations,
    load_image,
)
from cnn_explainer_widget.model import as_network  # noqa: E402
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network  # noqa: E402

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


def median_time(fn, budget_s: float, lo: int = 3, hi: int = 400) -> float:
    """Median of as many runs as fit in about ``budget_s`` seconds (between lo and hi)."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    repeats = int(min(hi, max(lo, budget_s / max(first, 1e-6))))
    return statistics.median(timings(fn, repeats, warmup=1 if first > 0.05 else 3))


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def check(name: str, ours: dict, theirs: dict) -> float:
    worst = max_difference(ours, theirs)
    scale = max(max(1.0, float(np.max(np.abs(v)))) for v in ours.values())
    if worst > 1e-5 * scale:
        raise SystemExit(f"{name} differs from ours by {worst:.2e}")
    return worst


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


class Contenders:
    """Our network and its ONNX Runtime and PyTorch twins, timed on the same batches."""

    def __init__(self, network) -> None:
        self.network = network
        self.ort = onnx_runner(network, threads=2)
        self.torch = torch_runner(network, threads=2)

    def measure(self, x: np.ndarray, budget_s: float) -> dict[str, float]:
        x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        x_torch = torch_input(x)
        # Checked on (at most) 8 images, so that only one batch's outputs are alive at a time.
        few = x[:8]
        ours = self.network.activations(few)
        diffs = (
            check("ORT", ours, self.ort(np.ascontiguousarray(few.transpose(0, 3, 1, 2)))),
            check("torch", ours, self.torch(torch_input(few))),
        )
        del ours
        result = {
            "ours": median_time(lambda: self.network.activations(x), budget_s),
            "ort": median_time(lambda: self.ort(x_nchw), budget_s),
            "torch": median_time(lambda: self.torch(x_torch), budget_s),
        }
        result["diff"] = max(diffs)
        return result


def tiny(scale: float) -> None:
    network = tiny_vgg_network()
    images = np.stack(
        [load_image(ROOT / "cnn_explainer_widget" / "images" / n) for n, _ in DEFAULT_IMAGES]
    )
    rng = np.random.default_rng(0)
    c = Contenders(network)
    print("Tiny VGG, all 13 outputs; time per image (median); ratio < 1: ours faster")
    head = (
        f"{'batch':>6}{'ours':>11}{'ORT':>11}{'torch':>11}"
        f"{'ours/ORT':>10}{'ours/torch':>12}{'max |diff|':>12}"
    )
    print(head)
    print("-" * len(head))
    for n in (1, 32, 256):
        x = images[rng.integers(0, len(images), n)]
        r = c.measure(x, budget_s=2.0 * scale)
        print(
            f"{n:>6}{fmt(r['ours'] / n):>11}{fmt(r['ort'] / n):>11}{fmt(r['torch'] / n):>11}"
            f"{r['ours'] / r['ort']:>10.2f}{r['ours'] / r['torch']:>12.2f}{r['diff']:>12.1e}"
        )
    print()


def user_network(channels: int, size: int):
    from flax import nnx

    r = nnx.Rngs(0)
    conv = functools.partial(nnx.Conv, kernel_size=(3, 3), padding="VALID", rngs=r)
    pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
    side = ((size - 4) // 2 - 4) // 2
    return nnx.Sequential(
        conv(3, channels), nnx.relu, conv(channels, channels), nnx.relu, pool,
        conv(channels, channels), nnx.relu, conv(channels, channels), nnx.relu, pool,
        Flatten(), nnx.Linear(side * side * channels, 10, rngs=r),
    )  # fmt: skip


def users(scale: float, max_gb: float) -> None:
    print("User networks: Tiny VGG's shape, C channels in all 4 convs; time per image (median)")
    head = (
        f"{'net':>10}{'ours b1':>11}{'batch':>7}{'ours bN':>11}{'bN/b1':>7}"
        f"{'torch bN':>11}{'ORT bN':>11}{'ours/torch':>11}{'ours/ORT':>10}"
    )
    print(head)
    print("-" * len(head))
    rng = np.random.default_rng(0)
    for channels in (32, 64):
        for size in (64, 128, 224):
            network = as_network(user_network(channels, size), input_shape=(size, size, 3))
            per_image = 4 * sum(int(np.prod(la.output_shape)) for la in network.layers)
            batch = int(min(256, max(1, max_gb * 2**30 // per_image)))
            c = Contenders(network)
            x1 = rng.random((1, size, size, 3), dtype=np.float32)
            xb = rng.random((batch, size, size, 3), dtype=np.float32)
            b1 = median_time(lambda x1=x1, n=network: n.activations(x1), 1.0 * scale)
            r = c.measure(xb, budget_s=3.0 * scale)
            print(
                f"{f'{channels}ch {size}px':>10}{fmt(b1):>11}{batch:>7}"
                f"{fmt(r['ours'] / batch):>11}{r['ours'] / batch / b1:>7.2f}"
                f"{fmt(r['torch'] / batch):>11}{fmt(r['ort'] / batch):>11}"
                f"{r['ours'] / r['torch']:>11.2f}{r['ours'] / r['ort']:>10.2f}"
            )
            del c, xb
    print()


def model_call(scale: float) -> None:
    print("activations(x, model=m) against the prebuilt Network's call (medians, interleaved)")
    head = f"{'net':>10}{'batch':>7}{'prebuilt':>11}{'model=m':>11}{'ratio':>8}"
    print(head)
    print("-" * len(head))
    rng = np.random.default_rng(0)
    for channels, size in ((32, 64), (32, 128)):
        # A TrainedModel says its input size (pooling makes 64-67 px all fit the 64 px net).
        model = TrainedModel(
            user_network(channels, size), tuple(map(str, range(10))), (size, size, 3)
        )
        network = as_network(model)
        for n in (1, 8):
            x = rng.random((n, size, size, 3), dtype=np.float32)
            np.testing.assert_allclose(
                activations(x, model=model)["logits"], network.activations(x)["logits"], atol=1e-5
            )
            pre, via = [], []
            first = time.perf_counter()
            network.activations(x)
            reps = int(min(300, max(10, 3.0 * scale / (time.perf_counter() - first))))
            for _ in range(reps):  # alternate, so both see the same machine
                t = time.perf_counter()
                network.activations(x)
                pre.append(time.perf_counter() - t)
                t = time.perf_counter()
                activations(x, model=model)
                via.append(time.perf_counter() - t)
            a, b = statistics.median(pre), statistics.median(via)
            name = f"{channels}ch {size}px"
            print(f"{name:>10}{n:>7}{fmt(a):>11}{fmt(b):>11}{b / a:>8.2f}")
    print()


def cold_start() -> None:
    def once() -> tuple[float, float]:
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            check=True,
        )
        return time.perf_counter() - t, float(proc.stdout.strip().splitlines()[-1])

    runs = [once() for _ in range(3)]
    total = statistics.median(r[0] for r in runs)
    inner = statistics.median(r[1] for r in runs)
    print(
        f"cold first result: {total:.2f} s from process start "
        f"({inner:.2f} s after the interpreter started; median of 3 fresh processes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", choices=["tiny", "users", "model", "cold"], action="append")
    parser.add_argument(
        "--max-gb", type=float, default=3.0, help="memory for one batch's outputs (default 3)"
    )
    args = parser.parse_args()
    scale = 0.3 if args.quick else 1.0
    sections = args.only or ["tiny", "users", "model", "cold"]

    import jax
    import onnxruntime
    import torch

    print(
        f"cpu cores: {os.cpu_count()}; jax {jax.__version__} ({jax.default_backend()}), "
        f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, "
        f"numpy {np.__version__}; load average {load()}"
    )
    print()
    if "tiny" in sections:
        tiny(scale)
    if "users" in sections:
        users(scale, args.max_gb)
    if "model" in sections:
        model_call(scale)
    if "cold" in sections:
        cold_start()
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
