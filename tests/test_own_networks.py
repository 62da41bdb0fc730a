"""Users' own networks in the widget: architectures unlike Tiny VGG, described and explained exactly.

Each architecture goes through ``CNNExplainer(model=...)``. The payload must describe every
layer with its real kernel size, stride and padding; the network's activations must equal the
Flax modules' own outputs; and every detail view's math (window × kernel + bias for a conv, the
max or mean of a pooling window, the function of one value, the dense dot product) must give
the activation at many random positions within 1e-4. Unsupported layers are refused by name.
"""

from __future__ import annotations

import dataclasses
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


def non_square() -> tuple[nnx.Sequential, tuple[int, int, int], list[str]]:
    """A 20×36 (H ≠ W) RGB input, non-square kernels, strides and pooling windows."""
    r = nnx.Rngs(4)
    model = nnx.Sequential(
        nnx.Conv(3, 4, (3, 5), strides=(1, 2), padding="SAME", rngs=r),
        nnx.relu,
        functools.partial(nnx.max_pool, window_shape=(2, 3), strides=(2, 3)),
        nnx.Conv(4, 6, (3, 3), padding="VALID", rngs=r),
        nnx.tanh,
        Flatten(),
        nnx.Linear(8 * 4 * 6, 3, rngs=r),
        nnx.softmax,
    )
    return model, (20, 36, 3), ["p", "q", "r"]


ARCHITECTURES = {
    "strided_same": strided_same,
    "avgpool_gray": avgpool_gray,
    "deep_wide": deep_wide,
    "non_square": non_square,
}

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
    # H: SAME, stride 1, kernel 3 → 20, pad (1, 1); W: ⌈36 / 2⌉ = 18, pad 17·2 + 5 − 36 = 3.
    "non_square": [
        ("conv_1", "conv", [20, 18, 4], [3, 5], [1, 2], [[1, 1], [1, 2]], None),
        ("relu_1", "activation", [20, 18, 4], None, None, None, "relu"),
        ("max_pool_1", "pool", [10, 6, 4], [2, 3], [2, 3], [[0, 0], [0, 0]], "max"),
        ("conv_2", "conv", [8, 4, 6], [3, 3], [1, 1], [[0, 0], [0, 0]], None),
        ("tanh_1", "activation", [8, 4, 6], None, None, None, "tanh"),
        ("flatten", "flatten", [192], None, None, None, None),
        ("output", "dense", [3], None, None, None, None),
        ("softmax", "softmax", [3], None, None, None, None),
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


def test_grayscale_images_loaded_gray(espresso_path):
    model, shape, classes = avgpool_gray()
    widget = CNNExplainer(espresso_path, model=model, classes=classes, input_shape=shape)
    assert widget.image.shape == (32, 32, 1)
    assert widget.classes == ["circle", "square", "triangle"]
    assert abs(sum(widget.probabilities.values()) - 1) < 1e-5


def test_non_square_input_loads_images_at_its_own_size(espresso_path, tmp_path):
    from PIL import Image

    from cnn_explainer_widget import top_activations

    model, shape, classes = non_square()
    widget = CNNExplainer(espresso_path, model=model, classes=classes, input_shape=shape)
    assert widget.image.shape == (20, 36, 3)
    # The photo is square: the top and bottom are cut to make it 36:20.
    assert widget.image_info.cropped
    assert "centre-cropped to 36:20" in widget.image_info.notice()
    assert "top and bottom" in widget.image_info.notice()
    expected = np.asarray(model(widget.image[None]))[0]
    probs = np.array([widget.probabilities[c] for c in classes])
    np.testing.assert_allclose(probs, expected, atol=TOL)
    # An image of exactly 36×20 is used as it is; a folder scan reads images at 20×36 too.
    exact = (np.random.default_rng(0).random((20, 36, 3)) * 255).astype(np.uint8)
    widget.image = exact
    np.testing.assert_allclose(widget.image, exact / 255.0, atol=1e-6)
    assert widget.image_info.notice() == ""
    Image.fromarray(exact).save(tmp_path / "a.png")
    network = as_network(model, classes, shape)
    [(i, value, _)] = top_activations(tmp_path, "conv_2", 0, k=1, model=network, progress=False)
    assert i == 0
    assert value == pytest.approx(
        float(network.activations(exact / 255.0)["conv_2"][..., 0].max()), abs=TOL
    )


# ---- the input size: found when only one size fits, never guessed --------------------------


def _vgg16_style(r: nnx.Rngs) -> nnx.Sequential:
    """VGG16's layout, 2 channels wide: five SAME conv + 2×2 pool blocks, a 7×7 average pool."""
    block = [
        nnx.Conv(3, 2, (3, 3), rngs=r),
        nnx.relu,
        functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2)),
    ]
    for _ in range(4):
        block += [nnx.Conv(2, 2, (3, 3), rngs=r), nnx.relu, block[-1]]
    pool = functools.partial(nnx.avg_pool, window_shape=(7, 7), strides=(7, 7))
    return nnx.Sequential(*block, pool, Flatten(), nnx.Linear(2, 3, rngs=r))


def test_input_size_inferred_only_when_one_size_fits():
    r = nnx.Rngs(0)
    # Unstrided VALID convs: only 10×10 gives 6×6×2 = 72 inputs to the Linear.
    exact = nnx.Sequential(
        nnx.Conv(1, 2, (3, 3), padding="VALID", rngs=r),
        nnx.relu,
        nnx.Conv(2, 2, (3, 3), padding="VALID", rngs=r),
        Flatten(),
        nnx.Linear(72, 3, rngs=r),
    )
    assert as_network(exact).input_shape == (10, 10, 1)
    # Pooling rounds down: 32×32 to 35×35 all give the same 8×8 maps.
    model, _, classes = avgpool_gray()
    with pytest.raises(
        ValueError, match=r"every square input from 32×32 to 35×35 fits.*input_shape"
    ):
        as_network(model, classes)
    with pytest.raises(ValueError, match=r"from 32×32 to 35×35 fits.*input_shape"):
        CNNExplainer(model=model, classes=classes)
    # A VGG16-style stack with a final 7×7 pool fits 224 to 447: no 256×256 guess.
    with pytest.raises(ValueError, match=r"from 224×224 to 447×447 fits.*input_shape"):
        as_network(_vgg16_style(r))
    assert as_network(_vgg16_style(r), input_shape=(224, 224, 3)).layers[-4].output_shape == (
        1,
        1,
        2,
    )


def test_training_a_folder_asks_for_the_size_when_ambiguous(tmp_path):
    from cnn_explainer_widget import write_image_folder

    x = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 1), dtype=np.uint8)
    folder = write_image_folder(tmp_path / "data", x, [0, 1, 2, 0, 1, 2], ["a", "b", "c"])
    model, _, _ = avgpool_gray()
    with pytest.raises(ValueError, match=r"from 32×32 to 35×35 fits.*image_size=N"):
        train(model, folder, progress=False)


def _base(*middle: Any) -> list[Any]:
    r = nnx.Rngs(0)
    return [nnx.Conv(1, 2, (3, 3), rngs=r), *middle, Flatten(), nnx.Linear(8 * 8 * 2, 3, rngs=r)]


@pytest.mark.parametrize(
    ("item", "named"),
    [
        (lambda x: x * 2, "<lambda>"),
        (nnx.LayerNorm(2, rngs=nnx.Rngs(0)), "LayerNorm"),
        (jax.numpy.abs, "abs"),
    ],
    ids=["lambda", "layernorm", "abs"],
)
def test_unsupported_layer_is_named(item, named):
    model = nnx.Sequential(*_base(item))
    with pytest.raises(ValueError, match=rf"unsupported layer 1 \({named}"):
        CNNExplainer(model=model, input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match=rf"unsupported layer 1 \({named}"):
        train(model, np.zeros((6, 8, 8, 1), np.float32), [0, 1, 2, 0, 1, 2], progress=False)


def test_a_sequential_with_batch_norm_is_explained_by_tracing_and_not_trained():
    model = nnx.Sequential(*_base(nnx.BatchNorm(2, rngs=nnx.Rngs(0)), nnx.relu))
    model.layers[1].mean[...] = jax.numpy.array([0.5, -0.25])
    network = as_network(model, input_shape=(8, 8, 1))
    assert [la.kind for la in network.layers][:3] == ["conv", "batchnorm", "activation"]
    x = np.random.default_rng(0).random((8, 8, 1), dtype=np.float32)
    model.eval()
    want = np.asarray(model.layers[1](model.layers[0](x[None])))[0]
    np.testing.assert_allclose(activations(x, model=model)[network.layers[1].name], want, atol=TOL)
    with pytest.raises(ValueError, match=r"give input_shape=\(H, W, C\) for this Sequential"):
        as_network(model)
    with pytest.raises(ValueError, match=r"unsupported layer 1 \(BatchNorm"):
        train(model, np.zeros((6, 8, 8, 1), np.float32), [0, 1, 2, 0, 1, 2], progress=False)


def test_other_refusals_name_the_layer():
    r = nnx.Rngs(0)
    dilated = nnx.Sequential(
        *_base()[:0],
        nnx.Conv(1, 2, (3, 3), kernel_dilation=2, rngs=r),
        Flatten(),
        nnx.Linear(8 * 8 * 2, 3, rngs=r),
    )
    # Read by tracing (as any module with batch norm, groups or dilation): explained, not refused.
    assert as_network(dilated, input_shape=(8, 8, 1)).layers[0].dilation == (2, 2)
    early_softmax = nnx.Sequential(*_base(nnx.softmax))
    with pytest.raises(ValueError, match=r"layer 1 .*softmax is only supported as the last"):
        as_network(early_softmax, input_shape=(8, 8, 1))
    bare_pool = nnx.Sequential(*_base(nnx.max_pool))
    with pytest.raises(ValueError, match=r"layer 1 \(max_pool\).*functools.partial"):
        as_network(bare_pool, input_shape=(8, 8, 1))
    no_flatten = nnx.Sequential(nnx.Conv(1, 2, (3, 3), rngs=r), nnx.Linear(2, 3, rngs=r))
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\).*Flatten"):
        as_network(no_flatten, input_shape=(8, 8, 1))
    with pytest.raises(
        TypeError, match=r"expected a Flax NNX module \(a TinyVGG, an nnx.Sequential"
    ):
        CNNExplainer(model="my_model.py")
    # Any other module is traced, at the size it is given.
    with pytest.raises(ValueError, match=r"give input_shape=\(H, W, C\) for this Linear"):
        CNNExplainer(model=nnx.Linear(2, 3, rngs=r))
    with pytest.raises(ValueError, match=r"'dot_general' at .*: a dense layer on an output shaped"):
        CNNExplainer(model=nnx.Linear(2, 3, rngs=r), input_shape=(4, 4, 2))


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


# ---- correctness gaps: never explain a different network, never fail later ----------------


def _tiny(*middle: Any, conv: nnx.Conv | None = None) -> nnx.Sequential:
    """An 8×8 grayscale network: a 3×3 SAME conv, ``middle``, Flatten, Linear to 3 classes."""
    r = nnx.Rngs(0)
    conv = conv or nnx.Conv(1, 2, (3, 3), rngs=r)
    return nnx.Sequential(conv, *middle, Flatten(), nnx.Linear(8 * 8 * 2, 3, rngs=r))


def test_conv_mask_is_refused_not_ignored():
    mask = np.zeros((3, 3, 1, 2), np.float32)
    mask[1, 1] = 1.0
    model = _tiny(conv=nnx.Conv(1, 2, (3, 3), mask=mask, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv\): a Conv with a kernel mask"):
        as_network(model, input_shape=(8, 8, 1))


def test_activation_option_given_as_an_array_becomes_a_float(tmp_path):
    from ipywidgets.widgets.widget import _remove_buffers
    from jupyter_client.jsonutil import json_clean

    from cnn_explainer_widget import TrainedModel, load_model

    leaky = functools.partial(nnx.leaky_relu, negative_slope=jax.numpy.array(0.1))
    model = _tiny(leaky)
    x = np.random.default_rng(0).uniform(0, 1, (8, 8, 1)).astype(np.float32)
    widget = CNNExplainer(x, model=model, input_shape=(8, 8, 1))
    options = widget.network.layers[1].options
    assert type(options["negative_slope"]) is float
    assert options["negative_slope"] == pytest.approx(0.1)
    # What the comm sends goes through jupyter_client's json_clean (the array failed there).
    state, _, _ = _remove_buffers(widget.get_state())
    json_clean(state)
    expected = np.asarray(leaky(model.layers[0](x[None])))[0]
    np.testing.assert_allclose(widget.activations["leaky_relu_1"], expected, atol=TOL)
    saved = TrainedModel(model, ("a", "b", "c"), (8, 8, 1)).save(tmp_path / "m.safetensors")
    assert load_model(saved).network().layers[1].options == options


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            functools.partial(nnx.relu, foo=1),
            r"layer 1 \(functools.partial\('relu', ...\)\): relu has no option foo; "
            r"the options it takes: none",
        ),
        (
            functools.partial(nnx.leaky_relu, slope=0.2),
            r"leaky_relu has no option slope; the options it takes: negative_slope \(float\)",
        ),
        (
            functools.partial(nnx.leaky_relu, negative_slope=np.ones(2)),
            r"layer 1 .*leaky_relu's negative_slope must be a single float",
        ),
        (
            functools.partial(nnx.gelu, approximate="no"),
            r"gelu's approximate must be a single bool",
        ),
        (
            functools.partial(nnx.max_pool, window_shape=2, strides=2),
            r"layer 1 \(functools.partial\('max_pool', ...\)\): window_shape and strides must "
            r"be pairs",
        ),
        (
            functools.partial(nnx.max_pool, window_shape=(2, 2), padding=((-1, 0), (0, 0))),
            r"layer 1 .*negative padding .* is not supported",
        ),
        (
            functools.partial(nnx.avg_pool, window_shape=(2, 2), size=3),
            r"layer 1 .*avg_pool takes keywords count_include_pad, padding, strides, "
            r"window_shape, not size",
        ),
        (
            functools.partial(nnx.max_pool, window_shape=(2, 2), padding="REFLECT"),
            r"layer 1 .*padding REFLECT is not supported",
        ),
    ],
    ids=[
        "relu-foo",
        "leaky-slope",
        "slope-vector",
        "gelu-str",
        "pool-int",
        "pool-negative-pad",
        "pool-keyword",
        "pool-reflect",
    ],
)
def test_misconfigured_function_is_refused_by_position(item, message):
    model = _tiny(item)
    with pytest.raises(ValueError, match=message):
        as_network(model, input_shape=(8, 8, 1))


@pytest.mark.parametrize(
    ("conv", "message"),
    [
        (
            dict(kernel_size=3),
            r"layer 0 \(Conv\): kernel_size=3 is a 1-D kernel in Flax NNX .*"
            r"kernel_size=\(3, 3\)",
        ),
        (dict(kernel_size=(3, 3), padding=-1), r"layer 0 \(Conv\): negative padding -1"),
        (
            dict(kernel_size=(3, 3), padding=((1, 1), (-1, 2))),
            r"layer 0 \(Conv\): negative padding",
        ),
        (dict(kernel_size=(3, 3), padding=((1, 1),)), r"layer 0 \(Conv\): padding .* not supp"),
        (dict(kernel_size=(3, 3), padding="CIRCULAR"), r"layer 0 \(Conv\): padding CIRCULAR"),
        (dict(kernel_size=(3, 3, 3)), r"layer 0 \(Conv\): kernel_size=\(3, 3, 3\) is not 2-D"),
    ],
    ids=["int-kernel", "negative-int", "negative-pair", "one-pair", "circular", "3d-kernel"],
)
def test_misconfigured_conv_is_refused_by_position(conv, message):
    r = nnx.Rngs(0)
    model = nnx.Sequential(nnx.Conv(1, 2, rngs=r, **conv), Flatten(), nnx.Linear(8, 3, rngs=r))
    with pytest.raises(ValueError, match=message):
        as_network(model, input_shape=(8, 8, 1))


def test_layer_names_cannot_overwrite_activations():
    from cnn_explainer_widget import TrainedModel
    from cnn_explainer_widget.network import Network

    model = _tiny(nnx.relu)
    for reserved in ("input", "logits", "probabilities"):
        trained = TrainedModel(
            model, ("a", "b", "c"), (8, 8, 1), layer_names=("conv", reserved, "flatten", "out")
        )
        with pytest.raises(ValueError, match=rf"layer 1: the name '{reserved}' is reserved"):
            CNNExplainer(model=trained)
    twice = TrainedModel(model, ("a", "b", "c"), (8, 8, 1), layer_names=("c", "c", "f", "o"))
    with pytest.raises(ValueError, match=r"layer 1: the name 'c' is used by an earlier layer"):
        as_network(twice)
    # Automatic names never clash: a second Flatten is "flatten_2", and every activation key
    # holds its own layer's output.
    two_flattens = _tiny(nnx.relu, Flatten())
    network = as_network(two_flattens, input_shape=(8, 8, 1))
    names = [la.name for la in network.layers]
    assert names == ["conv_1", "relu_1", "flatten", "flatten_2", "output", "softmax"]
    acts = network.activations(np.zeros((8, 8, 1), np.float32))
    assert len(acts) == len(network.layers) + 1
    assert acts["relu_1"].shape == (8, 8, 2) and acts["flatten_2"].shape == (128,)
    # A Network built by hand is checked too.
    layers = list(network.layers)
    layers[1] = dataclasses.replace(layers[1], name="logits")
    with pytest.raises(ValueError, match=r"layer name 'logits' is used twice or is reserved"):
        Network(layers, network.params, (8, 8, 1), network.classes)


def test_dropout_is_the_identity_at_inference():
    r = nnx.Rngs(0)
    model = nnx.Sequential(
        nnx.Conv(1, 2, (3, 3), rngs=r),
        nnx.Dropout(0.5, rngs=r),
        nnx.relu,
        Flatten(),
        nnx.Dropout(0.3, rngs=r),
        nnx.Linear(128, 3, rngs=r),
    )
    x = np.random.default_rng(0).uniform(0, 1, (8, 8, 1)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"nnx.Dropout \(layer 1, 4 of the sequence\) is the"):
        widget = CNNExplainer(x, model=model, input_shape=(8, 8, 1))
    names = [la.name for la in widget.network.layers]
    assert names == ["conv_1", "relu_1", "flatten", "output", "softmax"]
    # The Flax module in evaluation mode (Dropout off), item by item.
    model.eval()
    h, outs = x[None], []
    for item in model.layers:
        h = item(h)
        outs.append(np.asarray(h)[0])
    acts = widget.activations
    for key, out in (("conv_1", 0), ("relu_1", 2), ("flatten", 3), ("logits", 5)):
        np.testing.assert_allclose(acts[key], outs[out], atol=TOL, err_msg=key)
    # Left in training mode, the model's own predictions still skip Dropout.
    model.train()
    from cnn_explainer_widget import TrainedModel

    probs = TrainedModel(model, ("a", "b", "c"), (8, 8, 1)).predict(x)
    np.testing.assert_allclose(probs, acts["probabilities"], atol=1e-5)
    with pytest.raises(ValueError, match=r"train\(\) does not train through nnx.Dropout"):
        train(model, np.zeros((6, 8, 8, 1), np.float32), [0, 1, 2, 0, 1, 2], progress=False)


def test_activations_rebuild_when_the_structure_changes_and_never_read_stale_weights():
    """activations(x, model=m) keeps one Network per model: new weights are read every call,
    a changed layer (another function, another kernel shape) builds a new one."""
    rngs = nnx.Rngs(4)
    model = nnx.Sequential(
        nnx.Conv(2, 3, (3, 3), rngs=rngs), nnx.relu, Flatten(), nnx.Linear(3 * 6 * 6, 4, rngs=rngs)
    )
    x = np.random.default_rng(1).uniform(-1, 1, (2, 6, 6, 2)).astype(np.float32)

    def fresh():
        return as_network(model).activations(x)

    first = activations(x, model=model)
    assert activations(x, model=model)["conv_1"] is not first["conv_1"]  # a new pass each call
    model.layers[0].kernel[...] = model.layers[0].kernel[...] * 2.0  # trained further
    np.testing.assert_allclose(
        activations(x, model=model)["conv_1"], fresh()["conv_1"], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        activations(x, model=model)["conv_1"] - model.layers[0].bias[...],
        2.0 * (first["conv_1"] - model.layers[0].bias[...]),
        rtol=1e-5,
        atol=1e-5,
    )
    model.layers[1] = nnx.tanh  # another function: another structure
    got = activations(x, model=model)
    assert "tanh_1" in got and "relu_1" not in got
    np.testing.assert_allclose(got["tanh_1"], np.tanh(got["conv_1"]), atol=1e-6)
    # Another kernel shape (5 channels), the same item types and hyperparameters.
    model.layers[0] = nnx.Conv(2, 5, (3, 3), rngs=rngs)
    model.layers[3] = nnx.Linear(5 * 6 * 6, 4, rngs=rngs)
    got = activations(x, model=model)
    assert got["conv_1"].shape == (2, 6, 6, 5)
    np.testing.assert_allclose(got["logits"], fresh()["logits"], rtol=1e-6, atol=1e-6)
