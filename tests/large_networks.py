"""VGG-style networks on 224×224×3 with 64 channels per conv: issue 10's large layers.

Shared by ``tests/test_large_layers.py``, the browser test and ``bench/update_latency.py``.
Weights are random (a fixed seed): what matters is the size of every layer, not the accuracy.
"""

from __future__ import annotations

import functools

from flax import nnx

from cnn_explainer_widget import Flatten

SHAPE = (224, 224, 3)
CHANNELS = 64
CLASSES = [f"class {i}" for i in range(10)]


def _conv(c_in: int, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(c_in, CHANNELS, (3, 3), padding="SAME", rngs=rngs)


def _pool():
    return functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))


def vgg(seed: int = 0) -> nnx.Sequential:
    """conv64-relu-conv64-relu-maxpool twice, flatten, dense, softmax (56×56×64 flattened)."""
    r = nnx.Rngs(seed)
    return nnx.Sequential(
        _conv(3, r), nnx.relu, _conv(CHANNELS, r), nnx.relu, _pool(),
        _conv(CHANNELS, r), nnx.relu, _conv(CHANNELS, r), nnx.relu, _pool(),
        Flatten(),
        nnx.Linear(56 * 56 * CHANNELS, len(CLASSES), rngs=r),
        nnx.softmax,
    )  # fmt: skip


def _full_size(convs: int, activation, seed: int) -> nnx.Sequential:
    """``convs`` conv64-activation pairs at 224×224, one 8×8 pool, dense, softmax."""
    r = nnx.Rngs(seed)
    layers: list = []
    for i in range(convs):
        layers += [_conv(3 if i == 0 else CHANNELS, r), activation]
    layers += [
        functools.partial(nnx.max_pool, window_shape=(8, 8), strides=(8, 8)),
        Flatten(),
        nnx.Linear(28 * 28 * CHANNELS, len(CLASSES), rngs=r),
        nnx.softmax,
    ]
    return nnx.Sequential(*layers)


def vgg_no_pool(seed: int = 0) -> nnx.Sequential:
    """Four conv64-relu at 224×224, one 8×8 pool, dense, softmax: every map at full size."""
    return _full_size(4, nnx.relu, seed)


def vgg_gelu(seed: int = 0) -> nnx.Sequential:
    """Eight conv64-GELU at 224×224 (GELU maps cannot be rebuilt in the page: all are sent)."""
    return _full_size(8, nnx.gelu, seed)


NETWORKS = {"vgg": vgg, "vgg_no_pool": vgg_no_pool, "vgg_gelu": vgg_gelu}
