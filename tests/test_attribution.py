"""saliency, grad_cam and ablation against independent implementations written here.

The reference network is Tiny VGG written out in plain ``jax.lax`` from the NNX module's own
parameters (not through `Network`), differentiated with plain ``jax.grad``; the ablation
reference is the float64 numpy forward pass with the channels zeroed by hand.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnn_explainer_widget import (
    CLASS_NAMES,
    DEFAULT_IMAGES,
    Flatten,
    activations,
    grad_cam,
    load_image,
    load_tiny_vgg,
    network_from_layers,
    saliency,
)
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

from numpy_reference import activation_key, apply_layer

TOL = 1e-4


@pytest.fixture(scope="module")
def images(image_dir):
    return [load_image(image_dir / name) for name, _ in DEFAULT_IMAGES]


@pytest.fixture(scope="module")
def params():
    m = load_tiny_vgg()
    return {
        name: (jnp.asarray(getattr(m, name).kernel[...]), jnp.asarray(getattr(m, name).bias[...]))
        for name in ("conv_1_1", "conv_1_2", "conv_2_1", "conv_2_2", "output")
    }


def plain_tiny_vgg(params, x, off=()):
    """Every hidden layer of Tiny VGG for a batch, in plain lax, and the logits.

    ``off``: (layer, channel) pairs set to 0 after that layer.
    """

    def conv(h, name):
        k, b = params[name]
        return (
            jax.lax.conv_general_dilated(
                h, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            + b
        )

    def pool(h):
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def relu(h):
        return jnp.maximum(h, 0)

    steps = [
        ("conv_1_1", lambda h: conv(h, "conv_1_1")),
        ("relu_1_1", relu),
        ("conv_1_2", lambda h: conv(h, "conv_1_2")),
        ("relu_1_2", relu),
        ("max_pool_1", pool),
        ("conv_2_1", lambda h: conv(h, "conv_2_1")),
        ("relu_2_1", relu),
        ("conv_2_2", lambda h: conv(h, "conv_2_2")),
        ("relu_2_2", relu),
        ("max_pool_2", pool),
        ("output", lambda h: h.reshape(x.shape[0], -1) @ params["output"][0] + params["output"][1]),
    ]
    a, h = {}, x
    for name, step in steps:
        h = step(h)
        for layer, channel in off:
            if layer == name:
                h = h.at[..., channel].set(0.0)
        a[name] = h
    return a


def plain_score(params, x, layer, index, off=()):
    return plain_tiny_vgg(params, x, off)[layer][..., index].sum()


@functools.partial(jax.jit, static_argnums=(2, 4))
@functools.partial(jax.grad, argnums=1)
def plain_saliency(params, x, layer, index, off=()):
    return plain_score(params, x, layer, index, off)


@functools.partial(jax.jit, static_argnums=(2, 3))
def plain_grad_cam(params, x, cam_layer, layer, index):
    """Grad-CAM by the paper: gradients of the score w.r.t. A through a stop-and-replace."""
    maps = plain_tiny_vgg(params, x)[cam_layer]

    def score_from(a):
        # Recompute everything after cam_layer from a replaced A (plain code, no Network).
        order = list(plain_tiny_vgg(params, x))
        out = {cam_layer: a}
        prev = a
        for name in order[order.index(cam_layer) + 1 :]:
            if name.startswith("conv"):
                k, b = params[name]
                prev = (
                    jax.lax.conv_general_dilated(
                        prev, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
                    )
                    + b
                )
            elif name.startswith("relu"):
                prev = jnp.maximum(prev, 0)
            elif name.startswith("max_pool"):
                prev = jax.lax.reduce_window(
                    prev, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID"
                )
            else:
                k, b = params["output"]
                prev = prev.reshape(1, -1) @ k + b
            out[name] = prev
        return out[layer][..., index].sum()

    g = jax.grad(score_from)(maps)
    alpha = g.mean(axis=(1, 2))[0]
    return jnp.maximum((maps[0] * alpha).sum(-1), 0)


def assert_close(got, want, what):
    err = float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
    assert err <= TOL, f"{what}: max |ours - plain jax.grad| = {err:.3g}"


@pytest.mark.parametrize(("i", "label"), list(enumerate(label for _, label in DEFAULT_IMAGES)))
def test_saliency_matches_plain_grad(images, params, i, label):
    x = images[i]
    # A class by name (its logit) and a neuron (the sum of its map), against plain jax.grad.
    want = plain_saliency(params, x[None], "output", CLASS_NAMES.index(label))[0]
    got = saliency(x, label)
    assert got.shape == x.shape and got.dtype == np.float32
    assert np.abs(want).max() > 1e-3  # a real gradient, not zeros on both sides
    assert_close(got, want, f"saliency {label}")
    neuron = {"layer": "conv_2_1", "index": i}
    want = plain_saliency(params, x[None], "conv_2_1", i)[0]
    assert_close(saliency(x, neuron), want, f"saliency conv_2_1[{i}]")


@pytest.mark.parametrize(("i", "label"), list(enumerate(label for _, label in DEFAULT_IMAGES)))
def test_grad_cam_matches_plain_grad(images, params, i, label):
    x = images[i]
    cls = CLASS_NAMES.index(label)
    want = plain_grad_cam(params, x[None], "relu_2_2", "output", cls)
    got = grad_cam(x, "relu_2_2", cls)
    assert got.shape == (26, 26) and got.dtype == np.float32
    assert want.max() > 0
    assert_close(got, want, f"grad_cam relu_2_2 {label}")
    want = plain_grad_cam(params, x[None], "max_pool_1", "conv_2_2", i)
    assert_close(
        grad_cam(x, "max_pool_1", {"layer": "conv_2_2", "index": i}), want, "grad_cam neuron"
    )


def test_saliency_and_grad_cam_of_an_ablated_network(images, params):
    x = images[6]
    off = {"conv_1_2": [3, 5], "relu_2_1": [0]}
    pairs = (("conv_1_2", 3), ("conv_1_2", 5), ("relu_2_1", 0))
    want = plain_saliency(params, x[None], "output", 6, pairs)[0]
    got = saliency(x, "espresso", ablate=off)
    assert_close(got, want, "ablated saliency")
    assert not np.allclose(got, saliency(x, "espresso"), atol=1e-3)
    # A class whose logit unit is off has a constant score: no gradient anywhere.
    assert not saliency(x, 6, ablate={"output": [6]}).any()
    assert not grad_cam(x, "relu_2_2", 6, ablate={"output": [6]}).any()
    with pytest.raises(ValueError, match="no layer 'conv_9'"):
        saliency(x, 6, ablate={"conv_9": [1]})


def test_class_index_and_name_agree_and_differ_between_classes(images):
    x = images[6]
    np.testing.assert_array_equal(saliency(x, 6), saliency(x, "espresso"))
    assert not np.allclose(saliency(x, 6), saliency(x, 0))


def test_dense_neuron_is_the_logit(images):
    x = images[2]
    np.testing.assert_allclose(
        saliency(x, {"layer": "output", "index": 2}), saliency(x, "pizza"), atol=1e-7
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x: saliency(x, "cat"), ValueError, "no class 'cat'"),
        (lambda x: saliency(x, 10), ValueError, "out of range"),
        (lambda x: saliency(x, -1), ValueError, "out of range"),
        (lambda x: saliency(x, True), TypeError, "class index"),
        (lambda x: saliency(x, 2.0), TypeError, "class index"),
        (lambda x: saliency(x, {"layer": "conv_9", "index": 0}), ValueError, "one of"),
        (lambda x: saliency(x, {"layer": "flatten", "index": 0}), ValueError, "one of"),
        (lambda x: saliency(x, {"layer": "conv_1_1", "index": 10}), ValueError, "10 neurons"),
        (lambda x: saliency(x, {"layer": "conv_1_1"}), ValueError, "exactly the keys"),
        (lambda x: grad_cam(x, "output", 0), ValueError, r"\(H, W\) maps"),
        (lambda x: grad_cam(x, "input", 0), ValueError, r"\(H, W\) maps"),
        (
            lambda x: grad_cam(x, "conv_2_2", {"layer": "conv_1_1", "index": 0}),
            ValueError,
            "comes before",
        ),
        (lambda x: saliency(x[None].repeat(2, 0), 0), ValueError, "one image"),
        (lambda x: saliency(x[:32], 0), ValueError, "shaped"),
        (lambda x: saliency(x.tolist(), 0), TypeError, "numpy array"),
        (lambda x: saliency(np.full_like(x, np.nan), 0), ValueError, "NaN"),
    ],
)
def test_bad_arguments_are_refused_clearly(images, call, error, match):
    with pytest.raises(error, match=match):
        call(images[0])


# ---- ablation -------------------------------------------------------------------------------


def masked_reference(network, x, off):
    """float64 numpy forward pass; after each layer in ``off`` its channels are zeroed."""
    h = np.asarray(x, np.float64)[None]
    out = {"input": h}
    for i, layer in enumerate(network.layers):
        h = apply_layer(layer, network.params.get(layer.name, {}), h)
        if layer.name in off:
            h = h.copy()
            h[..., off[layer.name]] = 0.0
        out[activation_key(network.layers, i)] = h
    return {k: v[0] for k, v in out.items()}


@pytest.mark.parametrize(
    "off",
    [
        {"conv_1_2": [3, 5]},
        {"relu_1_1": [0], "max_pool_1": [9, 2], "conv_2_2": [1, 4, 7]},
        {"output": [6]},
    ],
)
def test_ablation_matches_masked_reference(images, off):
    network = tiny_vgg_network()
    x = images[6]
    got = activations(x, ablate=off)
    ref = masked_reference(network, x, off)
    assert list(got) == list(ref)
    for key in ref:
        err = np.max(np.abs(got[key].astype(np.float64) - ref[key]))
        assert err <= TOL, f"{key}: {err:.3g}"
    plain = activations(x)
    assert not np.allclose(plain["logits"], got["logits"], atol=1e-3)  # it did something
    for layer, indices in off.items():
        key = network.key_of(layer)
        assert np.all(got[key][..., indices] == 0)


def test_ablation_of_own_network_and_batch():
    rngs = nnx.Rngs(3)
    network = network_from_layers(
        [
            nnx.Conv(1, 4, kernel_size=(3, 3), rngs=rngs),
            nnx.tanh,
            functools.partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2)),
            Flatten(),
            nnx.Linear(8 * 8 * 4, 6, rngs=rngs),
            nnx.relu,
            nnx.Linear(6, 3, rngs=rngs),
        ],
        (16, 16, 1),
    )
    names = [la.name for la in network.layers]
    dense, act = names[4], names[5]
    off = {names[0]: [2], dense: [0, 5], act: [1]}
    batch = np.random.default_rng(1).uniform(0, 1, (3, 16, 16, 1)).astype(np.float32)
    got = activations(batch, model=network, ablate=off)
    for j in range(3):
        ref = masked_reference(network, batch[j], off)
        for key in ref:
            assert np.max(np.abs(got[key][j] - ref[key])) <= TOL, key


@pytest.mark.parametrize(
    ("ablate", "match"),
    [
        ([("conv_1_1", 0)], "must be a dict"),
        ({"conv_9": [0]}, "no layer 'conv_9'"),
        ({"flatten": [0]}, "no layer 'flatten'"),
        ({"softmax": [0]}, "no layer 'softmax'"),
        ({"input": [0]}, "no layer 'input'"),
        ({"conv_1_1": 3}, "list of neuron indices"),
        ({"conv_1_1": "3"}, "list of neuron indices"),
        ({"conv_1_1": [10]}, r"index 10 is not in \[0, 9\]"),
        ({"conv_1_1": [-1]}, r"not in \[0, 9\]"),
        ({"conv_1_1": [True]}, "must be ints"),
        ({"conv_1_1": [1.0]}, "must be ints"),
        ({"output": [10]}, r"not in \[0, 9\]"),
    ],
)
def test_bad_ablation_is_refused(images, ablate, match):
    with pytest.raises(ValueError, match=match):
        activations(images[0], ablate=ablate)


def test_empty_ablation_is_the_plain_pass(images):
    plain = activations(images[3])
    for off in (None, {}, {"conv_1_1": []}):
        got = activations(images[3], ablate=off)
        for key in plain:
            np.testing.assert_array_equal(got[key], plain[key])
