"""Training in the notebook: the generated data set, train(), early stopping, save and load."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from cnn_explainer_widget import (
    CNNExplainer,
    Flatten,
    TrainedModel,
    WeightsFileError,
    activations,
    as_network,
    load_model,
    load_tiny_vgg,
    make_shapes,
    train,
    write_image_folder,
)
from cnn_explainer_widget._safetensors import dumps, loads
from cnn_explainer_widget.datasets import read_image_folder
from cnn_explainer_widget.images import FORMATS
from cnn_explainer_widget.tiny_vgg import LAYER_NAMES, tiny_vgg_network, weights_path

#: Shared, so every `small_net` has the same graph definition and reuses one compiled step.
POOL = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))


def small_net(seed: int = 0, channels: int = 1) -> nnx.Sequential:
    """A fast 32×32 network: stride-2 SAME convs, a max pool and two dense layers."""
    r = nnx.Rngs(seed)
    return nnx.Sequential(
        nnx.Conv(channels, 8, (5, 5), strides=2, padding="SAME", rngs=r),  # 16
        nnx.relu,
        nnx.Conv(8, 16, (3, 3), strides=2, padding="SAME", rngs=r),  # 8
        nnx.relu,
        POOL,  # 4
        Flatten(),
        nnx.Linear(4 * 4 * 16, 32, rngs=r),
        nnx.relu,
        nnx.Linear(32, 3, rngs=r),
        nnx.softmax,
    )


@pytest.fixture(scope="module")
def shapes() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    return make_shapes(150, size=32, channels=1, seed=0)


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    x, y, _ = make_shapes(100, size=32, channels=1, seed=1)
    return x, y


@pytest.fixture(scope="module")
def trained(shapes) -> TrainedModel:
    x, y, classes = shapes
    return train(
        small_net(),
        x,
        y,
        classes=classes,
        epochs=20,
        learning_rate=1e-2,
        patience=None,
        progress=False,
    )


# ---- the data set ----------------------------------------------------------------------------


def test_make_shapes_is_deterministic_balanced_and_in_range():
    x, y, classes = make_shapes(20, size=24, channels=1, seed=3)
    assert classes == ("circle", "square", "triangle")
    assert x.shape == (60, 24, 24, 1) and x.dtype == np.float32
    assert y.shape == (60,) and np.bincount(y).tolist() == [20, 20, 20]
    assert x.min() >= 0 and x.max() <= 1
    x2, y2, _ = make_shapes(20, size=24, channels=1, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _, _ = make_shapes(20, size=24, channels=1, seed=4)
    assert not np.array_equal(x, x3)
    rgb, _, _ = make_shapes(2, size=16, channels=3, seed=0)
    assert rgb.shape == (6, 16, 16, 3)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        make_shapes(2, channels=2)
    with pytest.raises(ValueError, match="n_per_class must be a positive integer"):
        make_shapes(0)


# ---- training --------------------------------------------------------------------------------


def test_training_beats_chance_on_held_out_data(trained, held_out):
    x_test, y_test = held_out
    accuracy = trained.accuracy(x_test, y_test)
    print(f"held-out accuracy: {accuracy:.3f} (chance 0.333)")
    assert accuracy >= 0.8
    history = trained.history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 20 for v in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert trained.classes == ("circle", "square", "triangle")
    assert trained.input_shape == (32, 32, 1)


def test_trained_model_goes_straight_into_the_widget(trained, held_out):
    x_test, _ = held_out
    w = CNNExplainer(x_test[0], model=trained)
    assert w.classes == ["circle", "square", "triangle"]
    assert w.image.shape == (32, 32, 1)
    np.testing.assert_allclose(
        list(w.probabilities.values()), trained.predict(x_test[0]), atol=1e-5
    )
    assert as_network(trained).classes == trained.classes
    acts = activations(x_test[:5], model=trained)
    np.testing.assert_allclose(acts["probabilities"], trained.predict(x_test[:5]), atol=1e-5)


def test_early_stopping_keeps_the_best_weights(shapes):
    x, y, classes = shapes
    result = train(
        small_net(1),
        x,
        y,
        classes=classes,
        epochs=30,
        learning_rate=3e-2,
        patience=2,
        validation_split=0.25,
        seed=5,
        progress=False,
    )
    val_loss = result.history["val_loss"]
    assert result.best_epoch == int(np.argmin(val_loss)) + 1
    assert len(val_loss) <= result.best_epoch + 2
    # The same seeded split as train(): the model's loss on it is the best epoch's.
    order = np.random.default_rng(5).permutation(len(x))
    val = order[: round(len(x) * 0.25)]
    probs = result.predict(x[val])
    loss = -np.log(probs[np.arange(len(val)), y[val]]).mean()
    assert abs(loss - min(val_loss)) < 1e-4


def test_train_a_trained_model_further(shapes):
    x, y, classes = shapes
    first = train(small_net(2), x[:90], y[:90], classes=classes, epochs=1, progress=False)
    second = train(first, x[:90], y[:90], epochs=2, progress=False)
    assert second.model is first.model
    assert second.classes == classes and second.input_shape == (32, 32, 1)
    assert len(second.history["loss"]) == 2


def test_progress_bar_and_metrics_per_epoch(shapes, capsys):
    x, y, classes = shapes
    train(small_net(), x[:60], y[:60], classes=classes, epochs=2, progress=True)
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "epoch   1: loss" in printed and "epoch   2: loss" in printed
    assert "val_accuracy" in printed
    assert "training" in captured.err and "2/2" in captured.err  # the bar


def test_train_on_an_image_folder_with_a_new_tiny_vgg(shapes, tmp_path):
    x, y, classes = shapes
    folder = write_image_folder(tmp_path / "shapes", x[:30], y[:30], classes)
    assert sorted(p.name for p in folder.iterdir()) == list(classes)
    assert len(list(folder.rglob("*.png"))) == 30
    result = train(None, folder, image_size=32, channels=1, epochs=1, progress=False)
    assert result.classes == classes
    assert result.input_shape == (32, 32, 1)
    assert result.name == "Tiny VGG" and result.layer_names == LAYER_NAMES
    network = as_network(result)
    assert [la.name for la in network.layers] == list(LAYER_NAMES)
    assert network.input_shape == (32, 32, 1)
    assert network.layers[-2].output_shape == (3,)


def test_folder_images_are_loaded_at_the_models_input(shapes, tmp_path):
    x, y, classes = shapes
    folder = write_image_folder(tmp_path / "f", x[:12], y[:12], classes)
    (folder / "circle" / "notes.txt").write_text("not an image")
    model = small_net()
    # 29 to 36 px all fit the model: the size is given, not guessed.
    result = train(model, folder, epochs=1, validation_split=0, progress=False, image_size=32)
    assert result.input_shape == (32, 32, 1)
    assert result.history["val_loss"] == []
    assert result.model is model


def test_train_an_existing_tiny_vgg():
    model = load_tiny_vgg()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 64, 64, 3)).astype(np.float32)
    y = np.arange(8) % 10
    result = train(model, x, y, epochs=1, validation_split=0.25, progress=False)
    assert result.name == "Tiny VGG"
    assert [la.name for la in as_network(result).layers] == list(LAYER_NAMES)


# ---- bad data --------------------------------------------------------------------------------


def test_a_folder_reads_every_format_load_image_reads(tmp_path):
    Image.init()
    rng = np.random.default_rng(0)
    written = []
    for fmt in FORMATS:
        # One file per format load_image decodes, named with each suffix Pillow gives it.
        for suffix in sorted(e for e, f in Image.registered_extensions().items() if f == fmt):
            if suffix == ".pfm":  # floating-point PPM: Pillow writes it only from mode F
                continue
            folder = tmp_path / ("a" if len(written) % 2 else "b")
            folder.mkdir(exist_ok=True)
            pixels = rng.integers(0, 256, (16, 16, 3), np.uint8)
            image = Image.fromarray(pixels).convert("1" if suffix == ".pbm" else "RGB")
            image.save(folder / f"{len(written)}{suffix}", format=fmt)
            written.append(suffix)
    x, y, names = read_image_folder(tmp_path, None, 16, 3)
    assert names == ["a", "b"] and len(x) == len(written) == len(y)
    assert {".ppm", ".ico", ".jpg", ".png", ".webp", ".tiff"} <= set(written)


def test_bad_folders_are_refused_clearly(tmp_path, shapes):
    x = shapes[0]
    with pytest.raises(ValueError, match="is not a folder"):
        train(None, tmp_path / "missing", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class sub-folders"):
        train(None, tmp_path / "empty", progress=False)
    one = write_image_folder(tmp_path / "one", x[:4], np.zeros(4, int), ["circle"])
    with pytest.raises(ValueError, match="only one class .'circle'.*at least two"):
        train(None, one, image_size=32, channels=1, progress=False)
    two = write_image_folder(tmp_path / "two", x[:4], np.zeros(4, int), ["circle", "square"])
    with pytest.raises(ValueError, match=r"class folder .*square' has no images"):
        train(None, two, image_size=32, channels=1, progress=False)
    with pytest.raises(ValueError, match="labels come from the sub-folders"):
        train(None, two, [0, 1], progress=False)
    with pytest.raises(ValueError, match=r"no sub-folder for class\(es\) \['dog'\]"):
        train(None, two, classes=["circle", "dog"], progress=False)


def test_bad_arrays_are_refused_clearly(shapes):
    x, y, classes = shapes
    net = small_net()
    cases = [
        (dict(data=x, labels=None), ValueError, "give labels="),
        (dict(data=x, labels=y[:-1]), ValueError, r"449 labels given for 450 images"),
        (dict(data=x, labels=y[:, None]), ValueError, r"one value per image \(N,\)"),
        (dict(data=x, labels=np.zeros(len(x), int)), ValueError, "only one class"),
        (dict(data=x, labels=y + 5, classes=classes), ValueError, "label 7 is out of range"),
        (dict(data=x, labels=y - 1), ValueError, "class indices ≥ 0"),
        (dict(data=x, labels=y + 1), ValueError, "label 3 is out of range for the model's 3"),
        (dict(data=x, labels=y * 0.5), ValueError, "integer class indices"),
        (dict(data=x * 3, labels=y), ValueError, r"floats in \[0, 1\]"),
        (dict(data=x[..., 0][..., None, None], labels=y), ValueError, r"\(N, H, W, C\)"),
        (dict(data=np.repeat(x, 2, axis=3), labels=y), ValueError, "1 or 3 channels"),
        (dict(data=x[:, :28, :28], labels=y), ValueError, r"takes \(32, 32, 1\) images|Linear"),
        (dict(data=x, labels=y, classes=["a", "b"]), ValueError, "label 2 is out of range"),
        (dict(data="not a folder", labels=None), ValueError, "is not a folder"),
        (dict(data={"x": 1}, labels=y), TypeError, "numpy array of images"),
        (dict(data=x.astype(np.int32), labels=y), TypeError, "must be uint8"),
        (dict(data=x, labels=y, validation_split=1.0), ValueError, r"validation_split"),
        (dict(data=x[:3], labels=y[:3], validation_split=0.1), ValueError, "no validation"),
        (dict(data=x, labels=y, epochs=0), ValueError, "epochs must be a positive"),
    ]
    for kwargs, error, message in cases:
        data, labels = kwargs.pop("data"), kwargs.pop("labels")
        with pytest.raises(error, match=message):
            train(net, data, labels, progress=False, **kwargs)
    four_out = small_net()
    four_out.layers[8] = nnx.Linear(32, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="the model has 4 outputs but there are 3 classes"):
        train(four_out, x, y, classes=classes, progress=False)
    with pytest.raises(TypeError, match="model must be None, an nnx.Sequential"):
        train("tiny vgg", x, y, progress=False)


def test_string_labels_and_uint8_images():
    x, y, classes = make_shapes(10, size=32, seed=2)
    names = np.array(classes)[y]
    result = train(small_net(), (x * 255).astype(np.uint8), names, epochs=1, progress=False)
    assert result.classes == ("circle", "square", "triangle")  # sorted unique names


def test_divergence_is_reported():
    x, y, _ = make_shapes(10, size=32, seed=2)
    x = x.copy()
    x[:] = 1.0
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        train(small_net(), x, y, epochs=5, learning_rate=1e30, progress=False)


# ---- save and load ---------------------------------------------------------------------------


def test_save_load_round_trip_gives_the_same_activations(trained, held_out, tmp_path):
    path = trained.save(tmp_path / "shapes.safetensors")
    loaded = load_model(path)
    assert loaded.classes == trained.classes
    assert loaded.input_shape == trained.input_shape
    assert loaded.history.keys() == trained.history.keys()
    for key, values in trained.history.items():
        assert loaded.history[key] == pytest.approx(values), key
    assert loaded.best_epoch == trained.best_epoch
    assert isinstance(loaded.model, nnx.Sequential)
    x = held_out[0][:4]
    before, after = activations(x, model=trained), activations(x, model=loaded)
    assert list(before) == list(after)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, atol=1e-6, err_msg=key)
    original, rebuilt = as_network(trained), as_network(loaded)
    assert original.layers == rebuilt.layers
    w = CNNExplainer(x[0], model=loaded)
    assert w.prediction == trained.classes[int(trained.predict(x[0]).argmax())]


def test_save_load_tiny_vgg_and_all_layer_kinds(tmp_path):
    shipped = TrainedModel(load_tiny_vgg(), tiny_vgg_network().classes, (64, 64, 3))
    loaded = load_model(shipped.save(tmp_path / "tiny.safetensors"))
    # Same layers, names, classes and weights: the same forward pass, with no need to run it.
    original, rebuilt = tiny_vgg_network(), as_network(loaded)
    assert rebuilt.layers == original.layers
    assert [la.name for la in rebuilt.layers] == list(LAYER_NAMES)
    assert rebuilt.classes == original.classes
    assert rebuilt.params.keys() == original.params.keys()
    for name, params in original.params.items():
        for key, value in params.items():
            np.testing.assert_array_equal(rebuilt.params[name][key], value)
    # Every hyperparameter survives: explicit and SAME padding, no bias, avg pool options.
    r = nnx.Rngs(0)
    model = nnx.Sequential(
        nnx.Conv(1, 3, (3, 2), strides=(2, 1), padding="SAME", use_bias=False, rngs=r),
        functools.partial(nnx.leaky_relu, negative_slope=0.3),
        functools.partial(
            nnx.avg_pool,
            window_shape=(3, 3),
            strides=(2, 2),
            padding=((1, 1), (1, 0)),
            count_include_pad=False,
        ),
        nnx.gelu,
        functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(1, 1), padding="SAME"),
        Flatten(),
        nnx.Linear(5 * 5 * 3, 4, use_bias=False, rngs=r),
        nnx.tanh,
        nnx.Linear(4, 2, rngs=r),
    )
    odd = TrainedModel(model, ("no", "yes"), (17, 10, 1))
    back = load_model(odd.save(tmp_path / "odd.safetensors"))
    assert as_network(back).layers == as_network(odd).layers
    x = np.random.default_rng(1).uniform(0, 1, (3, 17, 10, 1)).astype(np.float32)
    np.testing.assert_allclose(back.predict(x), odd.predict(x), atol=1e-6)


def _rewrite(path: Path, edit) -> Path:
    tensors, metadata = loads(path.read_bytes())
    edit(tensors, metadata)
    out = path.with_name("edited.safetensors")
    out.write_bytes(dumps(tensors, metadata))
    return out


def _edit_layers(fn):
    def edit(tensors, metadata):
        layers = json.loads(metadata["layers"])
        fn(layers)
        metadata["layers"] = json.dumps(layers)

    return edit


def test_bad_model_files_name_the_problem(trained, tmp_path):
    path = trained.save(tmp_path / "m.safetensors")
    with pytest.raises(WeightsFileError, match="model file not found"):
        load_model(tmp_path / "nope.safetensors")
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(WeightsFileError, match="truncated"):
        load_model(truncated)
    with pytest.raises(WeightsFileError, match="not a cnn-explainer-widget model file"):
        load_model(weights_path())
    cases = [
        (lambda t, m: t.pop("conv_1.bias"), r"tensor 'conv_1.bias' is missing"),
        (
            lambda t, m: t.__setitem__("output.kernel", np.zeros((2, 3), np.float32)),
            r"tensor 'output.kernel' has shape \(2, 3\), expected \(32, 3\)",
        ),
        (
            lambda t, m: t.__setitem__("extra", np.zeros(1, np.float32)),
            r"unexpected tensor\(s\) \['extra'\]",
        ),
        (lambda t, m: m.pop("classes"), "metadata field 'classes' is missing"),
        (lambda t, m: m.__setitem__("layers", "[{"), "metadata field 'layers' is not valid JSON"),
        (lambda t, m: m.__setitem__("input_shape", "[32, 32]"), "'input_shape' must be 3"),
        (lambda t, m: m.__setitem__("format_version", "9"), "'format_version' is '9'"),
        (
            _edit_layers(lambda ls: ls[1].__setitem__("kind", "dropout")),
            "layer 'relu_1': unknown layer kind 'dropout'",
        ),
        (
            _edit_layers(lambda ls: ls[1].__setitem__("function", "swish")),
            "layer 'relu_1': activation 'swish' is not one of",
        ),
        (
            _edit_layers(lambda ls: ls[0].__setitem__("stride", [2])),
            r"layer 'conv_1' stride must be 2 integers",
        ),
        (
            _edit_layers(lambda ls: ls[0].__setitem__("features", "8")),
            "layer 'conv_1' features must be a positive integer",
        ),
        (
            _edit_layers(lambda ls: ls[1].__setitem__("name", "conv_1")),
            "layer 'conv_1': the name is used twice",
        ),
        (
            _edit_layers(lambda ls: ls.pop(5)),  # drop the flatten
            "layer 'dense_1': a dense layer needs a flat input",
        ),
    ]
    for edit, message in cases:
        with pytest.raises(WeightsFileError, match=message):
            load_model(_rewrite(path, edit))


# ---- lost work: interrupts and divergence (issue 12, defect 10) ------------------------------


def _params(model) -> list[np.ndarray]:
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))]


def test_an_interrupt_keeps_the_best_weights_and_says_which_epoch(shapes, monkeypatch):
    from cnn_explainer_widget import _training_loop

    x, y, classes = shapes
    options = dict(
        classes=classes, learning_rate=3e-2, validation_split=0.25, seed=5, patience=None,
        batch_size=16, progress=False,
    )  # fmt: skip
    # What three full epochs give: the best of epochs 1-3 and its weights.
    reference = train(small_net(6), x, y, epochs=3, **options)
    steps_per_epoch = -(-(len(x) - round(len(x) * 0.25)) // 16)
    real_step, calls = _training_loop._train_step, [0]

    def step_then_interrupt(*args):
        calls[0] += 1
        if calls[0] > 3 * steps_per_epoch + 2:  # in the middle of epoch 4
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(_training_loop, "_train_step", step_then_interrupt)
    model = small_net(6)
    before = _params(model)
    with pytest.warns(UserWarning, match=r"interrupted in epoch 4.*best weights, from epoch (\d)"):
        result = train(model, x, y, epochs=10, **options)
    assert result.best_epoch == reference.best_epoch
    assert result.history == reference.history  # the three finished epochs
    for got, want, initial in zip(_params(model), _params(reference.model), before, strict=True):
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, initial)


def test_an_interrupt_before_the_first_epoch_ends_still_raises(shapes, monkeypatch):
    from cnn_explainer_widget import _training_loop

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_training_loop, "_train_step", interrupt)
    x, y, classes = shapes
    with pytest.raises(KeyboardInterrupt):
        train(small_net(), x, y, classes=classes, epochs=3, progress=False)


def test_an_exploding_loss_is_reported_as_divergence(shapes):
    """Adam at 1e6 keeps the loss finite but astronomically high (around 1e27): that is no
    trained model."""
    x, y, classes = shapes
    model = small_net(4)
    with pytest.raises(
        FloatingPointError, match=r"diverged in epoch 1 \(loss .*e\+\d\d.*learning_rate"
    ):
        train(model, x, y, classes=classes, epochs=4, learning_rate=1e6, progress=False)
