"""Where the forward pass's time goes, layer by layer, and what fresh output memory costs.

Run by hand from the repository root::

    python bench/forward_layers.py                    # Tiny VGG, one image
    python bench/forward_layers.py --batch 32
    taskset -c 0 python bench/forward_layers.py       # the same on one core
    python bench/forward_layers.py --pages            # fresh against reused output memory

**Layers.** The package's compiled pass is cut after each layer (the same layers, weights,
formulations and compiler options, every output kept), and each prefix is timed as
`Network.activations` runs it: outputs written into the previous call's buffers. A layer's
cost is its prefix's median minus the one before (medians of ``--repeats`` calls per image;
the first row includes the call's fixed cost: dispatch and the thread pool's first wake-up).
Differences of a few µs are noise: read the large rows.

**Pages** (``--pages``). One jitted ReLU and one with two outputs, over arrays of 4, 39 and 195
MB, called with fresh outputs each time (XLA allocates them; large ones are fresh pages) and
with the previous outputs donated (written into memory already in use), as
`cnn_explainer_widget._spent` does for large results.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import timings  # noqa: E402

from cnn_explainer_widget._forward import compiler_options, forward_into  # noqa: E402
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network  # noqa: E402


def median_us(fn, repeats: int) -> float:
    return statistics.median(timings(fn, repeats, warmup=max(3, repeats // 20))) * 1e6


def layers(batch: int, repeats: int) -> None:
    network = tiny_vgg_network()
    x = np.random.default_rng(0).random((batch, 64, 64, 3), dtype=np.float32)
    leaves = network._param_leaves
    treedef = jax.tree_util.tree_structure(network._device_params)
    once = jax.device_put(np.True_)
    options = compiler_options(network.layers)
    print(f"Tiny VGG, batch {batch}: µs an image (median of {repeats} calls)")
    print(f"{'layer':<12}{'through it':>12}{'its own':>10}")
    before = 0.0
    for k in range(1, len(network.layers) + 1):
        prefix = functools.partial(forward_into, network.layers[:k], treedef)
        into = jax.jit(prefix, compiler_options=options, donate_argnums=(4,), keep_unused=True)
        state = {"out": jax.jit(prefix, compiler_options=options, keep_unused=True)(
            leaves, x, None, once, ()
        )}  # fmt: skip

        def call(into=into, state=state) -> None:
            state["out"] = jax.block_until_ready(into(leaves, x, None, once, state["out"]))

        total = median_us(call, repeats) / batch
        print(f"{network.layers[k - 1].name:<12}{total:>12.1f}{total - before:>10.1f}")
        before = total


def pages(repeats: int) -> None:
    print(f"ReLU into fresh or reused memory: ms a call (median of {repeats})")
    print(f"{'MB':>5}{'fresh, 1 out':>14}{'reused':>9}{'fresh, 2 out':>14}{'reused':>9}")
    relu = jax.jit(lambda v: jnp.maximum(v, 0))
    two = jax.jit(lambda v: (jnp.maximum(v, 0), v + 1))
    relu_into = jax.jit(lambda v, spent: jnp.maximum(v, 0), donate_argnums=1, keep_unused=True)
    two_into = jax.jit(
        lambda v, spent: (jnp.maximum(v, 0), v + 1), donate_argnums=1, keep_unused=True
    )
    for mb in (4, 39, 195):
        x = jax.device_put(np.random.default_rng(0).standard_normal(mb * 2**18, np.float32))
        row = [f"{mb:>5}"]
        for fresh, into in ((relu, relu_into), (two, two_into)):
            state = {"out": fresh(x)}

            def new(fresh=fresh, x=x) -> None:
                jax.block_until_ready(fresh(x))

            def reuse(into=into, state=state, x=x) -> None:
                state["out"] = jax.block_until_ready(into(x, state["out"]))

            row.append(f"{median_us(new, repeats) / 1e3:>14.2f}")
            row.append(f"{median_us(reuse, repeats) / 1e3:>9.2f}")
        print("".join(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1, help="images a call (default 1)")
    parser.add_argument("--repeats", type=int, default=0, help="calls a prefix (default: auto)")
    parser.add_argument("--pages", action="store_true", help="fresh against reused memory")
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"jax {jax.__version__} ({jax.default_backend()}); load average {load}")
    if args.pages:
        pages(args.repeats or 20)
    else:
        layers(args.batch, args.repeats or max(10, 1000 // args.batch))


if __name__ == "__main__":
    main()
