"""Users' own networks in the widget: architectures unlike Tiny VGG, described and explained exactly.

Each architecture goes through ``CNNExplainer(model=...)``. The payload must describe every
layer with its real kernel size, stride and padding; the network's activations must equal the
Flax modules' own outputs; and every detail view's math (window × kernel + bias for a conv, the
max or mean of a pooling window, the function of one value, the dense dot product) must give
the activation at many random positions within 1e-4. Unsupported layers are refused by name.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
import pytest
from flax import nnx

from cnn_explainer_widget import CNNExplainer, Flatten, activations, as_network, train
from cnn_explainer_widget.layers import ACTIVATIONS

TOL = 1e-4


def strided_same() -> tuple[nnx.Sequential, tuple[int, int, int], list[str]]:
    """48×48 RGB, stride-2 SAME convs with 5×5 and 3×3 kernels, padded max pool, 5 classes."""
    r = nnx.Rngs(1)
    model = nnx.Sequential(
        nnx.Conv(3, 6, (5, 5), strides=2, padding="SAME", rngs=r),  # 48 -> 24, pad (1, 2)
        nnx.relu,
        nnx.Conv(6, 12, (3, 3), strides=(2, 2), padding="SAME", rngs=r),  # 24 -> 12, pad (0, 1)
        nnx.sigmoid,
        functools.partial(nnx.max_pool, window_shape=(3, 3), strides=(2, 2), padding="SAME"),
        Flatten(),  # 6 × 6 × 12
        nnx.Linear(6 * 6 * 12, 5, rngs=r),
        nnx.softmax,
    )
    return model, (48, 48, 3), ["a", "b", "c", "d", "e"]


def avgpool_gray() -> tuple[nnx.Sequential, tuple[int, int, int], list[str]]:
    """32×32 grayscale, average pooling (plain and padded), tanh, 3 classes, no final softmax."""
    r = nnx.Rngs(2)
    model = nnx.Sequential(
        nnx.Conv(1, 4, (3, 3), padding="VALID", rngs=r),  # 32 -> 30
        nnx.relu,
        functools.partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2)),  # 15
        nnx.Conv(4, 8, (3, 3), padding="SAME", rngs=r),  # 15
        nnx.tanh,
        functools.partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2), padding="SAME"),
        Flatten(),  # 8 × 8 × 8
        nnx.Linear(8 * 8 * 8, 3, rngs=r),
    )
    return model, (32, 32, 1), ["circle", "square", "triangle"]


def deep_wide() -> tuple[nnx.Sequential, tuple[int, int, int], list[str]]:
    """Deeper and wider: 32 channels, no-bias and explicitly padded convs, several activations,
    an average pool that does not count padding, and a hidden dense layer."""
    r = nnx.Rngs(3)
    model = nnx.Sequential(
        nnx.Conv(3, 16, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, rngs=r),  # 24
        functools.partial(nnx.leaky_relu, negative_slope=0.1),
        nnx.Conv(16, 32, (3, 3), padding=((0, 1), (2, 0)), rngs=r),  # 23 × 24
        nnx.gelu,
        functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2)),  # 11 × 12
        nnx.Conv(32, 32, (1, 1), use_bias=False, rngs=r),
        nnx.tanh,
        nnx.Conv(32, 32, (4, 2), strides=(2, 3), padding=((1, 2), (0, 1)), rngs=r),  # 6 × 4
        nnx.elu,
        functools.partial(
            nnx.avg_pool,
            window_shape=(3, 3),
            strides=(2, 2),
            padding=((1, 1), (1, 1)),
            count_include_pad=False,
        ),  # 3 × 2
        nnx.silu,
        Flatten(),
        nnx.Linear(3 * 2 * 32, 16, rngs=r),
        nnx.leaky_relu,
        nnx.Linear(16, 4, use_bias=False, rngs=r),
        nnx.softmax,
    )
    return model, (24, 24, 3), ["w", "x", "y", "z"]


ARCHITECTURES = {"strided_same": strided_same, "avgpool_gray": avgpool_gray, "deep_wide": deep_wide}

#: What the payload must say about each architecture: (name, kind, output shape, kernel size,
#: stride, padding, function) for the layers whose hyperparameters matter.
EXPECTED = {
    "strided_same": [
        ("conv_1", "conv", [24, 24, 6], [5, 5], [2, 2], [[1, 2], [1, 2]], None),
        ("relu_1", "activation", [24, 24, 6], None, None, None, "relu"),
        ("conv_2", "conv", [12, 12, 12], [3, 3], [2, 2], [[0, 1], [0, 1]], None),
        ("sigmoid_1", "activation", [12, 12, 12], None, None, None, "sigmoid"),
        ("max_pool_1", "pool", [6, 6, 12], [3, 3], [2, 2], [[0, 1], [0, 1]], "max"),
        ("flatten", "flatten", [432], None, None, None, None),
        ("output", "dense", [5], None, None, None, None),
        ("softmax", "softmax", [5], None, None, None, None),
    ],
    "avgpool_gray": [
        ("conv_1", "conv", [30, 30, 4], [3, 3], [1, 1], [[0, 0], [0, 0]], None),
        ("relu_1", "activation", [30, 30, 4], None, None, None, "relu"),
        ("avg_pool_1", "pool", [15, 15, 4], [2, 2], [2, 2], [[0, 0], [0, 0]], "avg"),
        ("conv_2", "conv", [15, 15, 8], [3, 3], [1, 1], [[1, 1], [1, 1]], None),
        ("tanh_1", "activation", [15, 15, 8], None, None, None, "tanh"),
        ("avg_pool_2", "pool", [8, 8, 8], [2, 2], [2, 2], [[0, 1], [0, 1]], "avg"),
        ("flatten", "flatten", [512], None, None, None, None),
        ("output", "dense", [3], None, None, None, None),
        ("softmax", "softmax", [3], None, None, None, None),
    ],
    "deep_wide": [
        ("conv_1", "conv", [24, 24, 16], [3, 3], [1, 1], [[1, 1], [1, 1]], None),
        ("leaky_relu_1", "activation", [24, 24, 16], None, None, None, "leaky_relu"),
        ("conv_2", "conv", [23, 24, 32], [3, 3], [1, 1], [[0, 1], [2, 0]], None),
        ("gelu_1", "activation", [23, 24, 32], None, None, None, "gelu"),
        ("max_pool_1", "pool", [11, 12, 32], [2, 2], [2, 2], [[0, 0], [0, 0]], "max"),
        ("conv_3", "conv", [11, 12, 32], [1, 1], [1, 1], [[0, 0], [0, 0]], None),
        ("tanh_1", "activation", [11, 12, 32], None, None, None, "tanh"),
        ("conv_4", "conv", [6, 4, 32], [4, 2], [2, 3], [[1, 2], [0, 1]], None),
        ("elu_1", "activation", [6, 4, 32], None, None, None, "elu"),
        ("avg_pool_1", "pool", [3, 2, 32], [3, 3], [2, 2], [[1, 1], [1, 1]], "avg"),
        ("silu_1", "activation", [3, 2, 32], None, None, None, "silu"),
        ("flatten", "flatten", [192], None, None, None, None),
        ("dense_1", "dense", [16], None, None, None, None),
        ("leaky_relu_2", "activation", [16], None, None, None, "leaky_relu"),
        ("output", "dense", [4], None, None, None, None),
        ("softmax", "softmax", [4], None, None, None, None),
    ],
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def case(request: pytest.FixtureRequest) -> dict[str, Any]:
    model, shape, classes = ARCHITECTURES[request.param]()
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    widget = CNNExplainer(image, model=model, classes=classes, input_shape=shape)
    return {
        "name": request.param,
        "model": model,
        "shape": shape,
        "classes": classes,
        "image": image,
        "widget": widget,
    }


def test_payload_describes_the_architecture(case):
    payload = case["widget"]._network
    assert payload["input_shape"] == list(case["shape"])
    assert payload["classes"] == case["classes"]
    got = [
        (
            la["name"],
            la["kind"],
            la["output_shape"],
            la["kernel_size"],
            la["stride"],
            la["padding"],
            la["function"],
        )
        for la in payload["layers"]
    ]
    assert got == EXPECTED[case["name"]]
    # Each layer reads the previous one's output, and the weights in the payload are the model's.
    shapes = [list(case["shape"])] + [la["output_shape"] for la in payload["layers"]]
    assert [la["input_shape"] for la in payload["layers"]] == shapes[:-1]
    data = np.frombuffer(payload["data"], "<f4")
    modules = [m for m in case["model"].layers if isinstance(m, nnx.Conv | nnx.Linear)]
    weighted = [la for la in payload["layers"] if la["kind"] in ("conv", "dense")]
    assert len(modules) == len(weighted)
    for module, la in zip(modules, weighted, strict=True):
        kernel = np.asarray(module.kernel[...])
        kernel = kernel.transpose(3, 2, 0, 1) if la["kind"] == "conv" else kernel.T
        k = la["kernel"]
        np.testing.assert_array_equal(
            data[k["offset"] : k["offset"] + kernel.size].reshape(k["shape"]), kernel
        )
        if module.bias is None:
            assert la["bias"] is None
        else:
            b = la["bias"]
            np.testing.assert_array_equal(
                data[b["offset"] : b["offset"] + b["shape"][0]], np.asarray(module.bias[...])
            )


def test_activations_equal_the_flax_modules(case):
    """Every layer's output in the widget equals the user's own modules applied in turn."""
    widget, model = case["widget"], case["model"]
    acts = widget.activations
    x = case["image"][None]
    items = list(model.layers)
    for item, layer in zip(items, widget.network.layers, strict=False):
        x = np.asarray(item(x))
        key = widget.network.keys[widget.network.layers.index(layer) + 1]
        np.testing.assert_allclose(acts[key], x[0], rtol=TOL, atol=TOL, err_msg=layer.name)
    np.testing.assert_allclose(
        acts["probabilities"], np.asarray(jax.nn.softmax(acts["logits"])), atol=1e-6
    )


def _check_neuron(widget: CNNExplainer, layer: Any, index: int, y: int | None, x: int | None):
    sel = {"layer": layer.name, "index": index}
    if y is not None:
        sel.update(y=y, x=x)
    widget.selected = sel
    n = widget.selected_neuron
    assert n is not None and n.layer == layer.name and n.index == index
    acts = widget.activations
    key = widget.network.keys[widget.network.layers.index(layer) + 1]
    if layer.kind == "conv":
        assert n.kernel.shape == (*layer.kernel_size, layer.input_shape[2])
        assert n.window.shape == n.kernel.shape
        bias = 0.0 if n.bias is None else n.bias
        assert abs((n.window * n.kernel).sum() + bias - n.value) <= TOL
    elif layer.kind == "pool":
        assert n.window.shape == layer.kernel_size
        if layer.function == "max":
            expected = np.nanmax(n.window)
        elif layer.options.get("count_include_pad", True):
            expected = np.nansum(n.window) / n.window.size
        else:
            expected = np.nanmean(n.window)
        assert abs(expected - n.value) <= TOL
    elif layer.kind == "activation":
        fn = ACTIVATIONS[layer.function]
        if y is None:  # after a dense layer: one value in, one out
            expected = float(fn(np.float32(n.inputs[0]), **layer.options))
            assert abs(expected - n.activation) <= TOL
            assert abs(n.activation - acts[key][index]) <= TOL
            return
        expected = float(fn(np.float32(n.window[0, 0]), **layer.options))
        assert abs(expected - n.value) <= TOL
    elif layer.kind == "dense":
        value = n.logit if n.kind == "output" else n.activation
        bias = 0.0 if n.bias is None else n.bias
        assert abs(float(n.inputs @ n.kernel) + bias - value) <= TOL
        assert abs(value - acts[key][index]) <= TOL
        return
    if y is not None:
        assert abs(n.value - acts[key][y, x, index]) <= TOL


def test_detail_math_equals_activations_at_random_positions(case):
    widget = case["widget"]
    rng = np.random.default_rng(1)
    checked = 0
    for layer in widget.network.layers:
        if layer.kind in ("flatten", "softmax"):
            continue
        shape = layer.output_shape
        for _ in range(25):
            index = int(rng.integers(shape[-1]))
            if len(shape) == 3:
                # Include the corners, where padding matters most.
                y = int(rng.choice([0, shape[0] - 1, rng.integers(shape[0])]))
                x = int(rng.choice([0, shape[1] - 1, rng.integers(shape[1])]))
                _check_neuron(widget, layer, index, y, x)
            else:
                _check_neuron(widget, layer, index, None, None)
            checked += 1
    assert checked >= 25 * 6


def test_grayscale_input_shape_inferred_and_images_loaded_gray(espresso_path):
    model, _, classes = avgpool_gray()
    network = as_network(model, classes)  # no input_shape: inferred
    assert network.input_shape == (32, 32, 1)
    widget = CNNExplainer(espresso_path, model=model, classes=classes)
    assert widget.image.shape == (32, 32, 1)
    assert widget.classes == ["circle", "square", "triangle"]
    assert abs(sum(widget.probabilities.values()) - 1) < 1e-5


def _base(*middle: Any) -> list[Any]:
    r = nnx.Rngs(0)
    return [nnx.Conv(1, 2, (3, 3), rngs=r), *middle, Flatten(), nnx.Linear(8 * 8 * 2, 3, rngs=r)]


@pytest.mark.parametrize(
    ("item", "named"),
    [
        (nnx.BatchNorm(2, rngs=nnx.Rngs(0)), "BatchNorm"),
        (nnx.Dropout(0.5, rngs=nnx.Rngs(0)), "Dropout"),
        (lambda x: x * 2, "<lambda>"),
        (nnx.LayerNorm(2, rngs=nnx.Rngs(0)), "LayerNorm"),
        (jax.numpy.abs, "abs"),
    ],
    ids=["batchnorm", "dropout", "lambda", "layernorm", "abs"],
)
def test_unsupported_layer_is_named(item, named):
    model = nnx.Sequential(*_base(item))
    with pytest.raises(ValueError, match=rf"unsupported layer 1 \({named}"):
        CNNExplainer(model=model, input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=rf"unsupported layer 1 \({named}"):
        train(model, np.zeros((6, 8, 8, 1), np.float32), [0, 1, 2, 0, 1, 2], progress=False)


def test_other_refusals_name_the_layer():
    r = nnx.Rngs(0)
    dilated = nnx.Sequential(
        *_base()[:0],
        nnx.Conv(1, 2, (3, 3), kernel_dilation=2, rngs=r),
        Flatten(),
        nnx.Linear(8 * 8 * 2, 3, rngs=r),
    )
    with pytest.raises(ValueError, match=r"layer 0 \(Conv\): dilated"):
        as_network(dilated, input_shape=(8, 8, 1))
    early_softmax = nnx.Sequential(*_base(nnx.softmax))
    with pytest.raises(ValueError, match=r"layer 1 .*softmax is only supported as the last"):
        as_network(early_softmax, input_shape=(8, 8, 1))
    bare_pool = nnx.Sequential(*_base(nnx.max_pool))
    with pytest.raises(ValueError, match=r"layer 1 \(max_pool\).*functools.partial"):
        as_network(bare_pool, input_shape=(8, 8, 1))
    no_flatten = nnx.Sequential(nnx.Conv(1, 2, (3, 3), rngs=r), nnx.Linear(2, 3, rngs=r))
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\).*Flatten"):
        as_network(no_flatten, input_shape=(8, 8, 1))
    with pytest.raises(TypeError, match="expected a TinyVGG, an nnx.Sequential"):
        CNNExplainer(model=nnx.Linear(2, 3, rngs=r))


def test_activations_follow_a_model_trained_further():
    """activations(x, model=m) reads m's weights on every call (the compiled pass is reused)."""
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(
        nnx.Conv(1, 4, (3, 3), rngs=rngs), nnx.relu, Flatten(), nnx.Linear(4 * 8 * 8, 3, rngs=rngs)
    )
    x = np.random.default_rng(0).random((8, 8, 1), dtype=np.float32)
    before = activations(x, model=model)["logits"]
    model.layers[3].bias[...] = model.layers[3].bias[...] + 1.0
    after = activations(x, model=model)["logits"]
    np.testing.assert_allclose(after - before, 1.0, atol=1e-5)
