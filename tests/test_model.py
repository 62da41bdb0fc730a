"""The jitted forward pass against an independent float64 numpy reference, layer by layer."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from cnn_explainer_widget import (
    CLASS_NAMES,
    DEFAULT_IMAGES,
    Flatten,
    activations,
    load_image,
    load_tiny_vgg,
    network_from_layers,
)
from cnn_explainer_widget.network import SelectionError
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

from numpy_reference import network_forward

TINY_VGG_KEYS = (
    "input",
    "conv_1_1",
    "relu_1_1",
    "conv_1_2",
    "relu_1_2",
    "max_pool_1",
    "conv_2_1",
    "relu_2_1",
    "conv_2_2",
    "relu_2_2",
    "max_pool_2",
    "flatten",
    "logits",
    "probabilities",
)
TINY_VGG_SHAPES = {
    "input": (64, 64, 3),
    "conv_1_1": (62, 62, 10),
    "relu_1_1": (62, 62, 10),
    "conv_1_2": (60, 60, 10),
    "relu_1_2": (60, 60, 10),
    "max_pool_1": (30, 30, 10),
    "conv_2_1": (28, 28, 10),
    "relu_2_1": (28, 28, 10),
    "conv_2_2": (26, 26, 10),
    "relu_2_2": (26, 26, 10),
    "max_pool_2": (13, 13, 10),
    "flatten": (1690,),
    "logits": (10,),
    "probabilities": (10,),
}
TOL = 1e-4


def assert_matches_reference(got: dict, ref: dict, tol: float = TOL) -> None:
    assert list(got) == list(ref)
    for key, expected in ref.items():
        value = got[key]
        assert value.shape == expected.shape, key
        assert value.dtype == np.float32, key
        err = np.max(np.abs(value.astype(np.float64) - expected), initial=0.0)
        assert err <= tol, f"{key}: max |jax - numpy| = {err:.3g}"


@pytest.fixture(scope="module")
def network():
    return tiny_vgg_network()


@pytest.fixture(scope="module")
def images(image_dir):
    return {name: load_image(image_dir / name) for name, _ in DEFAULT_IMAGES}


@pytest.fixture(scope="module")
def white():
    return load_image(Path(__file__).parent / "data" / "white.jpeg")


@pytest.mark.parametrize(("name", "label"), DEFAULT_IMAGES)
def test_default_image_matches_reference_and_class(network, images, name, label):
    x = images[name]
    got = activations(x)
    ref = network_forward(network, x)
    assert_matches_reference(got, ref)
    assert CLASS_NAMES[int(np.argmax(got["probabilities"]))] == label
    assert CLASS_NAMES[int(np.argmax(ref["probabilities"]))] == label


def test_white_image_matches_reference(network, white):
    assert white.shape == (64, 64, 3)
    assert_matches_reference(activations(white), network_forward(network, white))


def test_keys_order_shapes_dtypes(images):
    got = activations(images["espresso_1.jpeg"])
    assert tuple(got) == TINY_VGG_KEYS
    assert {k: v.shape for k, v in got.items()} == TINY_VGG_SHAPES
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in got.values())
    np.testing.assert_allclose(got["probabilities"].sum(), 1.0, rtol=1e-5)


def test_batch_equals_single(images, white):
    batch = np.stack([*images.values(), white])
    got = activations(batch)
    assert tuple(got) == TINY_VGG_KEYS
    for key, shape in TINY_VGG_SHAPES.items():
        assert got[key].shape == (len(batch), *shape), key
    for i, x in enumerate(batch):
        single = activations(x)
        for key in TINY_VGG_KEYS:
            np.testing.assert_allclose(got[key][i], single[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_batch_of_one_keeps_leading_axis(images):
    x = images["bus_1.jpeg"]
    got = activations(x[None])
    single = activations(x)
    for key in TINY_VGG_KEYS:
        assert got[key].shape == (1, *single[key].shape)
        np.testing.assert_allclose(got[key][0], single[key], rtol=1e-5, atol=1e-5)


def test_results_are_independent_arrays(images):
    """Mutating one result must not change another or a later call's result."""
    x = images["koala_1.jpeg"]
    first = activations(x.copy())
    saved = {k: v.copy() for k, v in first.items()}
    for v in first.values():
        if v.flags.writeable:
            v[...] = 123.0
    second = activations(x)
    for key in TINY_VGG_KEYS:
        np.testing.assert_array_equal(second[key], saved[key], err_msg=key)


def test_module_call_equals_activation_logits(images):
    model = load_tiny_vgg()
    batch = np.stack(list(images.values()))
    logits = np.asarray(model(batch))
    np.testing.assert_allclose(activations(batch)["logits"], logits, rtol=1e-5, atol=1e-4)


def test_input_is_passed_through(images):
    x = images["car_1.jpeg"]
    np.testing.assert_array_equal(activations(x)["input"], x)
    np.testing.assert_array_equal(
        activations((x * 255).astype(np.uint8))["input"], np.floor(x * 255)
    )


@pytest.fixture(scope="module")
def other_networks():
    rngs = nnx.Rngs(7)
    strided = network_from_layers(
        [
            nnx.Conv(1, 4, kernel_size=(3, 3), strides=(2, 2), padding="SAME", rngs=rngs),
            nnx.leaky_relu,
            nnx.Conv(4, 6, kernel_size=(5, 5), padding="SAME", use_bias=False, rngs=rngs),
            nnx.gelu,
            functools.partial(nnx.avg_pool, window_shape=(3, 3), strides=(2, 2), padding="SAME"),
            nnx.Conv(6, 5, kernel_size=(2, 3), strides=(1, 2), padding=((1, 0), (2, 1)), rngs=rngs),
            nnx.tanh,
            functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2), padding="SAME"),
            Flatten(),
            nnx.Linear(4 * 3 * 5, 7, rngs=rngs),
        ],
        (32, 32, 1),
    )
    varied = network_from_layers(
        [
            nnx.Conv(3, 8, kernel_size=(4, 4), strides=(3, 3), padding="VALID", rngs=rngs),
            functools.partial(nnx.leaky_relu, negative_slope=0.2),
            functools.partial(
                nnx.avg_pool,
                window_shape=(3, 3),
                strides=(1, 1),
                padding=((1, 1), (1, 1)),
                count_include_pad=False,
            ),
            nnx.sigmoid,
            nnx.Conv(8, 3, kernel_size=(1, 1), use_bias=False, rngs=rngs),
            nnx.silu,
            functools.partial(nnx.max_pool, window_shape=(3, 3), strides=(2, 2), padding="SAME"),
            nnx.elu,
            Flatten(),
            nnx.Linear(3 * 3 * 3, 16, rngs=rngs),
            nnx.relu,
            nnx.Linear(16, 4, use_bias=False, rngs=rngs),
            nnx.softmax,
        ],
        (17, 19, 3),
    )
    return {"strided_same_avgpool_1ch": strided, "varied": varied}


@pytest.mark.parametrize("which", ["strided_same_avgpool_1ch", "varied"])
def test_other_networks_match_reference(other_networks, which):
    network = other_networks[which]
    rng = np.random.default_rng(0)
    # Inputs of both signs and beyond [0, 1], so every nonlinearity sees its whole range.
    batch = rng.uniform(-4.0, 4.0, (3, *network.input_shape)).astype(np.float32)
    got = network.activations(batch)
    ref = network_forward(network, batch)
    assert tuple(got) == network.keys
    assert_matches_reference(got, ref)
    single = network.activations(batch[1])
    assert_matches_reference(single, network_forward(network, batch[1]))
    shapes = [network.input_shape, *(layer.output_shape for layer in network.layers)]
    for key, shape in zip(network.keys, shapes, strict=True):
        assert single[key].shape == shape, key
        np.testing.assert_allclose(single[key], got[key][1], rtol=1e-5, atol=1e-5, err_msg=key)


def test_the_network_checks_a_selection_without_the_widget():
    network = tiny_vgg_network()
    assert network.normalise_selection(None) is None
    assert network.normalise_selection({"layer": "conv_1_1", "index": 9, "y": 61, "x": 0}) == {
        "layer": "conv_1_1",
        "index": 9,
        "y": 61,
        "x": 0,
    }
    assert network.selectable_layers()["output"] == (10, None)
    for bad, match in [
        ({"layer": "conv_1_1", "index": 10}, r"index'\] must be an int in \[0, 9\]"),
        ({"layer": "flatten", "index": 0}, "must be one of"),
        ({"layer": "output", "index": 0, "y": 0, "x": 0}, "have no map"),
        ({"layer": "conv_1_1", "index": 0, "y": 62, "x": 0}, r"'y'\] must be an int in \[0, 61\]"),
        ([1], "must be None or a dict"),
    ]:
        with pytest.raises(SelectionError, match=match):
            network.normalise_selection(bad)


def _wide_network(channels: int, size: int, rngs: nnx.Rngs):
    """A user's network with many channels: its convolutions take the `lax` formulation."""
    conv = functools.partial(nnx.Conv, kernel_size=(3, 3), rngs=rngs)
    pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
    side = ((size - 4) // 2 - 2) // 2
    return network_from_layers(
        [
            conv(3, channels, padding="VALID"), nnx.relu,
            conv(channels, channels, padding="VALID"), nnx.relu, pool,
            conv(channels, channels, strides=(1, 1), padding="SAME"), nnx.gelu,
            conv(channels, channels, padding="VALID"), nnx.relu, pool,
            Flatten(), nnx.Linear(side * side * channels, 5, rngs=rngs),
        ],
        (size, size, 3),
    )  # fmt: skip


@pytest.mark.parametrize("batch", [1, 256])
def test_wide_user_network_at_batch_1_and_256_matches_reference(batch):
    """32 channels (`lax` with the library options), 3 (`broadcast`): every layer ≤ 1e-5."""
    from cnn_explainer_widget import _convolution

    network = _wide_network(32, 14, nnx.Rngs(3))
    convs = [la for la in network.layers if la.kind == "conv"]
    used = {_convolution.formulation(network.params[la.name]["kernel"].shape) for la in convs}
    assert used == {"broadcast", "lax"}
    x = np.random.default_rng(batch).uniform(-1, 2, (batch, 14, 14, 3)).astype(np.float32)
    assert_matches_reference(network.activations(x), network_forward(network, x), tol=1e-5)


@pytest.mark.parametrize("impl", ["broadcast", "lax"])
def test_each_convolution_formulation_matches_reference(impl, monkeypatch):
    """Every formulation, forced on a strided, padded network, inside the compiled pass (a
    fused one sits in a `lax.cond` so it is computed once): every layer ≤ 1e-5, batch 1 and 5."""
    from cnn_explainer_widget import _convolution

    monkeypatch.setattr(_convolution, "_CONV_IMPL", impl)
    rngs = nnx.Rngs(11)
    network = network_from_layers(
        [
            nnx.Conv(2, 6, (3, 3), strides=(2, 1), padding=((1, 2), (0, 1)), rngs=rngs),
            nnx.relu,
            nnx.Conv(6, 5, (2, 3), padding="SAME", rngs=rngs),
            nnx.tanh,
            Flatten(),
            nnx.Linear(8 * 9 * 5, 4, rngs=rngs),
        ],
        (15, 10, 2),
    )
    rng = np.random.default_rng(5)
    for shape in ((1, 15, 10, 2), (5, 15, 10, 2)):
        x = rng.uniform(-2, 2, shape).astype(np.float32)
        assert_matches_reference(network.activations(x), network_forward(network, x), tol=1e-5)
