"""Train a small CNN in the notebook, then explain it: `train` and its result, `TrainedModel`.

`train` fits a Tiny VGG (or a model you give: an ``nnx.Sequential`` of supported layers, or a
`TinyVGG`) with optax's Adam and cross-entropy on a folder of images (one sub-folder per class)
or on arrays of images and labels. It splits off validation data, shows a progress bar
(``tqdm.auto``, so it renders in notebooks) with the loss and accuracy of every epoch, stops
early when the validation loss stops improving and keeps the best weights. The result goes
straight into ``CNNExplainer(model=result)`` and saves to one file (`TrainedModel.save`,
`cnn_explainer_widget.load_model`).

The whole training step (forward, gradients, Adam update) is one ``jax.jit``-compiled function
of plain arrays: the module is split once with ``nnx.split`` and merged back inside the step.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from cnn_explainer_widget.images import load_image
from cnn_explainer_widget.model import LAYER_NAMES, TinyVGG, as_network
from cnn_explainer_widget.network import Flatten, Network, conv_output_size

#: File suffixes read as images from a class folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(eq=False)
class TrainedModel:
    """A trained network with what the widget needs to explain it.

    Pass it straight to ``CNNExplainer(model=...)``, `as_network` or `activations`.

    Attributes
    ----------
    model:
        The Flax NNX module (an ``nnx.Sequential`` or a `TinyVGG`) with its trained weights.
    classes:
        One name per output, in output order.
    input_shape:
        ``(H, W, C)`` of one input image.
    history:
        Per-epoch metrics: ``loss`` and ``accuracy`` on the training data, and ``val_loss`` and
        ``val_accuracy`` on the validation data (empty lists without validation data).
    best_epoch:
        The epoch (counting from 1) whose weights the model holds: the one with the lowest
        validation loss (training loss without validation data); None if not trained here.
    layer_names:
        Names for the model's layers in the widget (one per item of the ``Sequential``, softmax
        included), or None for automatic names (``conv_1``, ``relu_1``, ...).
    name:
        A display name.
    """

    model: nnx.Module
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    layer_names: tuple[str, ...] | None = None
    name: str = "network"

    def __post_init__(self) -> None:
        self.classes = tuple(str(c) for c in self.classes)
        self.input_shape = tuple(int(v) for v in self.input_shape)  # type: ignore[assignment]
        if self.layer_names is not None:
            self.layer_names = tuple(self.layer_names)

    def network(self) -> Network:
        """The model as a `Network` (what the widget explains), with its weights copied now."""
        return as_network(self)

    def predict(self, images: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, classes)`` for images ``(N, H, W, C)`` (or one image).

        Images are uint8, or floats in [0, 1], shaped like `input_shape` (a grayscale model
        also takes ``(N, H, W)``).
        """
        x = _as_images(images, self.input_shape)
        single = x.ndim == 3
        x = x[None] if single else x
        graphdef, state = nnx.split(self.model)
        size = max(1, min(batch_size, len(x)))
        out = []
        for start in range(0, len(x), size):
            # Every batch padded to one shape: one compiled function, whatever N is.
            chunk = x[start : start + size]
            padded = np.concatenate([chunk, np.zeros((size - len(chunk), *x.shape[1:]), x.dtype)])
            out.append(np.asarray(_probabilities(graphdef, state, padded))[: len(chunk)])
        probs = np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)
        return probs[0] if single else probs

    def accuracy(self, images: Any, labels: Any) -> float:
        """Fraction of ``images`` whose most probable class is ``labels`` (integer indices)."""
        labels = np.asarray(labels)
        probs = self.predict(images)
        if probs.ndim == 1:
            probs = probs[None]
        if labels.shape != probs.shape[:1]:
            raise ValueError(f"{len(labels)} labels given for {len(probs)} images")
        return float((probs.argmax(axis=-1) == labels).mean())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save weights, architecture and class names to one ``.safetensors`` file.

        `cnn_explainer_widget.load_model` rebuilds the model from the file alone.
        """
        from cnn_explainer_widget.saving import save_model

        return save_model(self, path)


def make_tiny_vgg(
    input_shape: Sequence[int] = (64, 64, 3), num_classes: int = 10, *, rngs: nnx.Rngs
) -> nnx.Sequential:
    """Tiny VGG's architecture for any input size, as an ``nnx.Sequential``.

    Two blocks of (conv 3×3 VALID → ReLU) ×2 → max pool 2×2, 10 channels each, then flatten,
    a dense layer with ``num_classes`` outputs and softmax: the layers of `TinyVGG` (whose
    names `train` gives them in the widget), sized for ``input_shape``.
    """
    h, w, c = (int(v) for v in input_shape)
    for _ in range(2):
        h, w = conv_output_size(h, 3, 1, 0, 0), conv_output_size(w, 3, 1, 0, 0)
        h, w = conv_output_size(h, 3, 1, 0, 0), conv_output_size(w, 3, 1, 0, 0)
        h, w = h // 2, w // 2
    if h < 1 or w < 1:
        raise ValueError(f"input shape {tuple(input_shape)} is too small for Tiny VGG (≥ 16×16)")
    conv = functools.partial(nnx.Conv, kernel_size=(3, 3), padding="VALID", rngs=rngs)
    pool = functools.partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
    return nnx.Sequential(
        conv(c, 10), nnx.relu, conv(10, 10), nnx.relu, pool,
        conv(10, 10), nnx.relu, conv(10, 10), nnx.relu, pool,
        Flatten(), nnx.Linear(h * w * 10, num_classes, rngs=rngs), nnx.softmax,
    )  # fmt: skip


def train(
    model: Any,
    data: Any,
    labels: Any = None,
    *,
    classes: Sequence[str] | None = None,
    epochs: int = 20,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    validation_split: float = 0.2,
    patience: int | None = 5,
    seed: int = 0,
    image_size: int | None = None,
    channels: int | None = None,
    progress: bool = True,
) -> TrainedModel:
    """Train a CNN on images, ready to explain in `CNNExplainer`.

    Parameters
    ----------
    model:
        None for a new Tiny VGG sized for the images (`make_tiny_vgg`); an ``nnx.Sequential``
        of supported layers or a `TinyVGG` (trained in place); or a `TrainedModel` to train
        further.
    data:
        A folder with one sub-folder of images per class (the sub-folder names are the
        classes, sorted), or an array of images ``(N, H, W, C)`` (or ``(N, H, W)`` for
        grayscale): uint8, or floats in [0, 1] as `load_image` gives.
    labels:
        For an array: ``(N,)`` integer class indices (or class names, then mapped through
        ``classes``, default their sorted unique values). None for a folder.
    classes:
        Class names in output order. Default: the folder names, or ``"class 0"``, ...
    epochs:
        Most passes over the training data.
    batch_size:
        Images per Adam step.
    learning_rate:
        Adam's learning rate.
    validation_split:
        Fraction of the data held out (at random, seeded) for validation, in [0, 1).
    patience:
        Stop after this many epochs without a lower validation loss (training loss without
        validation data); the best epoch's weights are kept. None trains all ``epochs``.
    seed:
        Seeds the new model's initialisation, the split and the shuffling.
    image_size, channels:
        Size and channels that folder images are loaded at (default: the model's input, or
        64×64 RGB for a new Tiny VGG). For arrays, only a check.
    progress:
        Show a progress bar and one line of metrics per epoch.

    Returns
    -------
    TrainedModel
        The model with the best weights, its classes, input shape and history.

    Raises
    ------
    ValueError
        For bad data (an empty folder, a class without images, a single class, labels that do
        not match the images, wrong shapes or values) or a model the widget cannot explain
        (the message names the layer).
    FloatingPointError
        If the loss becomes NaN or infinite (lower the learning rate).
    """
    _check_options(epochs, batch_size, learning_rate, validation_split, patience)
    layer_names: tuple[str, ...] | None = None
    name = "network"
    if isinstance(model, TrainedModel):
        layer_names, name = model.layer_names, model.name
        if classes is None:
            classes = model.classes
        if image_size is None:
            image_size = model.input_shape[0]
        if channels is None:
            channels = model.input_shape[2]
        model = model.model
    if model is not None and not isinstance(model, nnx.Module):
        raise TypeError(
            f"model must be None, an nnx.Sequential, a TinyVGG or a TrainedModel, got "
            f"{type(model).__name__}"
        )
    model_shape = _model_input_shape(model, data, image_size, channels)
    x, y, class_names = _load_data(data, labels, classes, model_shape, image_size, channels)
    input_shape = x.shape[1:]
    if model is None:
        if class_names is None:
            class_names = [f"class {k}" for k in range(int(y.max()) + 1)]
        model = make_tiny_vgg(input_shape, len(class_names), rngs=nnx.Rngs(seed))
        layer_names, name = LAYER_NAMES, "Tiny VGG"
    # Refuse what the widget cannot explain before spending time on training.
    network = as_network(model, None, input_shape)  # type: ignore[arg-type]
    if network.input_shape != input_shape:
        raise ValueError(f"the model takes {network.input_shape} images, the data is {input_shape}")
    n_out = network.layers[-1].output_shape[0]
    if class_names is None:  # integer labels, no names: the model's (Tiny VGG's classes)
        if y.max() >= n_out:
            raise ValueError(
                f"label {int(y.max())} is out of range for the model's {n_out} outputs"
            )
        class_names = list(network.classes)
    if n_out != len(class_names):
        raise ValueError(
            f"the model has {n_out} outputs but there are {len(class_names)} classes "
            f"({', '.join(class_names[:5])}{', ...' if len(class_names) > 5 else ''})"
        )
    if isinstance(model, TinyVGG):
        name = "Tiny VGG"

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = round(len(x) * validation_split) if validation_split > 0 else 0
    if validation_split > 0 and n_val < 1:
        raise ValueError(
            f"validation_split={validation_split} leaves no validation image out of {len(x)}; "
            "give more images or validation_split=0"
        )
    if n_val >= len(x):
        raise ValueError(f"validation_split={validation_split} leaves no training image")
    val_idx, train_idx = order[:n_val], order[n_val:]
    history, best_epoch = _fit(
        model, x[train_idx], y[train_idx], x[val_idx], y[val_idx],
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        patience=patience, rng=rng, progress=progress,
    )  # fmt: skip
    return TrainedModel(
        model=model,
        classes=tuple(class_names),
        input_shape=input_shape,  # type: ignore[arg-type]
        history=history,
        best_epoch=best_epoch,
        layer_names=layer_names,
        name=name,
    )


# ---- the training loop ---------------------------------------------------------------------


def _is_softmax(item: Any) -> bool:
    return item is nnx.softmax or item is jax.nn.softmax


def _logits(model: nnx.Module, x: jax.Array) -> jax.Array:
    """The model's logits: a Sequential without its final softmax, or the module's output."""
    if isinstance(model, nnx.Sequential):
        layers = list(model.layers)
        if layers and _is_softmax(layers[-1]):
            layers = layers[:-1]
        for layer in layers:
            x = layer(x)
        return x
    return model(x)  # type: ignore[operator]


#: Adam with its learning rate in the optimiser state, so one compiled step serves every rate.
_ADAM = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def _loss_and_correct(
    graphdef: nnx.GraphDef[Any], p: Any, rest: Any, x: jax.Array, y: jax.Array, w: jax.Array
) -> tuple[jax.Array, jax.Array]:
    logits = _logits(nnx.merge(graphdef, p, rest), x)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    correct = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
    # Padded examples of a last, short batch have weight 0: one compiled shape for all.
    return (losses * w).sum() / jnp.maximum(w.sum(), 1.0), (correct * w).sum()


# The graph definition is static: jax.jit caches one compiled step per architecture and batch
# shape, so training the same architecture again (or another of its instances) compiles nothing.
@functools.partial(jax.jit, static_argnums=0)
def _train_step(
    graphdef: nnx.GraphDef[Any],
    p: Any,
    rest: Any,
    opt_state: Any,
    x: jax.Array,
    y: jax.Array,
    w: jax.Array,
) -> tuple[Any, Any, jax.Array, jax.Array]:
    grad_fn = jax.value_and_grad(_loss_and_correct, argnums=1, has_aux=True)
    (loss, correct), grads = grad_fn(graphdef, p, rest, x, y, w)
    updates, opt_state = _ADAM.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state, loss * w.sum(), correct


@functools.partial(jax.jit, static_argnums=0)
def _eval_step(
    graphdef: nnx.GraphDef[Any], p: Any, rest: Any, x: jax.Array, y: jax.Array, w: jax.Array
) -> tuple[jax.Array, jax.Array]:
    loss, correct = _loss_and_correct(graphdef, p, rest, x, y, w)
    return loss * w.sum(), correct


@functools.partial(jax.jit, static_argnums=0)
def _probabilities(graphdef: nnx.GraphDef[Any], state: Any, x: jax.Array) -> jax.Array:
    return jax.nn.softmax(_logits(nnx.merge(graphdef, state), x), axis=-1)


def _batches(indices: np.ndarray, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed-size batches of ``indices``; the last one padded, with a 0/1 weight per slot."""
    out = []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        weights = np.zeros(batch_size, np.float32)
        weights[: len(chunk)] = 1.0
        padded = np.concatenate([chunk, np.full(batch_size - len(chunk), chunk[0])])
        out.append((padded, weights))
    return out


def _fit(
    model: nnx.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int | None,
    rng: np.random.Generator,
    progress: bool,
) -> tuple[dict[str, list[float]], int]:
    from tqdm.auto import tqdm

    batch_size = min(batch_size, len(x_train))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = _ADAM.init(params)
    opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
    history: dict[str, list[float]] = {
        "loss": [],
        "accuracy": [],
        "val_loss": [],
        "val_accuracy": [],
    }
    val_batches = _batches(np.arange(len(x_val)), batch_size) if len(x_val) else []
    best, best_params, best_epoch, waited = math.inf, params, 0, 0
    bar = tqdm(range(1, epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in bar:
        sums = []
        for idx, w in _batches(rng.permutation(len(x_train)), batch_size):
            params, opt_state, loss, right = _train_step(
                graphdef, params, rest, opt_state, x_train[idx], y_train[idx], w
            )
            sums.append((loss, right))
        # One device-to-host transfer per epoch, not one per step.
        loss_sum, correct = np.asarray(jax.device_get(sums), np.float64).sum(axis=0)
        metrics = {"loss": loss_sum / len(x_train), "accuracy": correct / len(x_train)}
        if val_batches:
            sums = [
                _eval_step(graphdef, params, rest, x_val[idx], y_val[idx], w)
                for idx, w in val_batches
            ]
            val_loss, val_correct = np.asarray(jax.device_get(sums), np.float64).sum(axis=0)
            metrics["val_loss"] = val_loss / len(x_val)
            metrics["val_accuracy"] = val_correct / len(x_val)
        metrics = {k: float(v) for k, v in metrics.items()}
        if not math.isfinite(metrics["loss"]):
            bar.close()
            raise FloatingPointError(
                f"training diverged in epoch {epoch} (loss {metrics['loss']}); "
                "try a lower learning_rate"
            )
        for key, value in metrics.items():
            history[key].append(value)
        if progress:
            bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()})
            bar.write(f"epoch {epoch:>3}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        monitored = metrics.get("val_loss", metrics["loss"])
        if monitored < best:
            best, best_params, best_epoch, waited = monitored, params, epoch, 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                if progress:
                    bar.write(f"early stop: no improvement for {patience} epochs")
                break
    bar.close()
    nnx.update(model, best_params)
    return history, best_epoch


# ---- data ----------------------------------------------------------------------------------


def _check_options(
    epochs: int,
    batch_size: int,
    learning_rate: float,
    validation_split: float,
    patience: int | None,
) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")


def _model_input_shape(
    model: Any, data: Any, image_size: int | None, channels: int | None
) -> tuple[int, int, int] | None:
    """The model's input shape where the data does not fix it, or None."""
    if isinstance(model, TinyVGG):
        from cnn_explainer_widget.model import INPUT_SHAPE

        return INPUT_SHAPE
    if not isinstance(model, nnx.Sequential) or not _is_folder(data):
        return None
    if image_size is None:
        from cnn_explainer_widget.model import _infer_input_shape

        return _infer_input_shape(model)
    if channels is None:
        convs = [m for m in model.layers if isinstance(m, nnx.Conv)]
        channels = int(convs[0].kernel.shape[2]) if convs else 3
    return (int(image_size), int(image_size), int(channels))


def _is_folder(data: Any) -> bool:
    return isinstance(data, str | os.PathLike)


def _load_data(
    data: Any,
    labels: Any,
    classes: Sequence[str] | None,
    model_shape: tuple[int, int, int] | None,
    image_size: int | None,
    channels: int | None,
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    if _is_folder(data):
        if labels is not None:
            raise ValueError("labels come from the sub-folders of a folder; give labels=None")
        size = image_size or (model_shape[0] if model_shape else 64)
        chans = channels or (model_shape[2] if model_shape else 3)
        if model_shape is not None and (size, size, chans) != tuple(model_shape):
            raise ValueError(
                f"the model takes {model_shape} images, not {size}×{size}×{chans} "
                "(image_size/channels)"
            )
        x, y, names = _read_folder(Path(data), classes, size, chans)
    else:
        if labels is None:
            raise ValueError("give labels=... for an array of images (or a folder path)")
        x = _as_images(data, None, what="data")
        if x.ndim != 4:
            raise ValueError(f"data must be a batch of images (N, H, W, C), got shape {x.shape}")
        y, names = _as_labels(labels, len(x), classes)
        expected = (image_size, image_size, channels)
        if image_size is not None and x.shape[1:3] != expected[:2]:
            raise ValueError(f"image_size={image_size} but the images are {x.shape[1:3]}")
        if channels is not None and x.shape[3] != channels:
            raise ValueError(f"channels={channels} but the images have {x.shape[3]}")
        if model_shape is not None and x.shape[1:] != tuple(model_shape):
            raise ValueError(f"the model takes {model_shape} images, the data is {x.shape[1:]}")
    present = np.unique(y)
    if len(present) < 2:
        only = names[int(present[0])] if names else f"label {int(present[0])}"
        raise ValueError(
            f"the data holds only one class ({only!r}); "
            "training a classifier needs images of at least two classes"
        )
    return x, y, names


def _as_images(images: Any, shape: tuple[int, ...] | None, what: str = "images") -> np.ndarray:
    """Float32 images in [0, 1], ``(N, H, W, C)`` or one ``(H, W, C)`` if ``shape`` says so."""
    if not isinstance(images, np.ndarray | jax.Array | list | tuple):
        raise TypeError(f"{what} must be a numpy array of images, got {type(images).__name__}")
    x = np.asarray(images)
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise TypeError(f"{what} must be numeric (uint8 or floats in [0, 1]), got {x.dtype}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif x.dtype.kind in "iu":
        raise TypeError(f"{what}: integer images must be uint8 (0-255), got {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if shape is not None and shape[2] == 1 and x.shape[-2:] == tuple(shape[:2]):
        x = x[..., None]  # grayscale without a channel axis
    if shape is None and x.ndim == 3:
        x = x[..., None]
    if shape is not None and (x.shape[-3:] != tuple(shape) or x.ndim not in (3, 4)):
        raise ValueError(
            f"{what} must be shaped {tuple(shape)} or (N, *{tuple(shape)}), got {x.shape}"
        )
    if x.ndim == 4 and x.shape[-1] not in (1, 3):
        raise ValueError(f"{what} must have 1 or 3 channels (last axis), got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(
            f"{what} must be uint8 or floats in [0, 1] (as load_image gives the widget), "
            f"got values in [{x.min():.3g}, {x.max():.3g}]"
        )
    if x.ndim == 4 and len(x) == 0:
        raise ValueError(f"{what} holds no images")
    return x


def _as_labels(
    labels: Any, n: int, classes: Sequence[str] | None
) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels, and the class names (None for integer labels without ``classes``)."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one value per image (N,), got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{len(y)} labels given for {n} images")
    if y.dtype.kind in "USO":
        names = list(classes) if classes is not None else sorted({str(v) for v in y})
        index = {c: i for i, c in enumerate(names)}
        unknown = sorted({str(v) for v in y} - set(index))
        if unknown:
            raise ValueError(f"label(s) {unknown[:5]} are not among the classes {names}")
        return np.array([index[str(v)] for v in y], np.int32), names
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu" or y.dtype == np.bool_:
        raise ValueError(f"labels must be integer class indices (or class names), got {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"labels must be class indices ≥ 0, got {int(y.min())}")
    if classes is not None:
        names = [str(c) for c in classes]
        if y.max() >= len(names):
            raise ValueError(
                f"label {int(y.max())} is out of range for {len(names)} classes {names}"
            )
    else:
        names = None
    return y.astype(np.int32), names


def _read_folder(
    root: Path, classes: Sequence[str] | None, size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is not a folder (expected one sub-folder per class)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ValueError(
            f"{str(root)!r} has no class sub-folders; put each class's images in its own "
            "sub-folder, e.g. cats/1.png, dogs/1.png"
        )
    names = list(found) if classes is None else [str(c) for c in classes]
    missing = [c for c in names if c not in found]
    if missing:
        raise ValueError(f"no sub-folder for class(es) {missing} in {str(root)!r}")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for k, name in enumerate(names):
        files = sorted(
            p for p in (root / name).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )  # fmt: skip
        if not files:
            raise ValueError(
                f"class folder {str(root / name)!r} has no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        for path in files:
            images.append(load_image(path, size=size, channels=channels))
            labels.append(k)
    return np.stack(images), np.array(labels, np.int32), names


__all__ = ["IMAGE_SUFFIXES", "TrainedModel", "make_tiny_vgg", "train"]
