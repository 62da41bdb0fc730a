"""Train a small CNN in the notebook, then explain it: `train`.

`train` fits a Tiny VGG (or a model you give: an ``nnx.Sequential`` of supported layers, or a
`TinyVGG`) with optax's Adam and cross-entropy on a folder of images (one sub-folder per class)
or on arrays of images and labels. It splits off validation data, shows a progress bar
(``tqdm.auto``, so it renders in notebooks) with the loss and accuracy of every epoch, stops
early when the validation loss stops improving and keeps the best weights. The result goes
straight into ``CNNExplainer(model=result)`` and saves to one file (`TrainedModel.save`,
`cnn_explainer_widget.load_model`).

This module checks what `train` is given and prepares the data; the loop itself is in
`cnn_explainer_widget._training_loop`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from cnn_explainer_widget._arrays import as_images, as_labels
from cnn_explainer_widget._training_loop import fit
from cnn_explainer_widget.datasets import read_image_folder
from cnn_explainer_widget.flax_module import infer_input_shape, needs_tracing
from cnn_explainer_widget.model import TrainedModel, as_network
from cnn_explainer_widget.tiny_vgg import INPUT_SHAPE, LAYER_NAMES, TinyVGG, make_tiny_vgg


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
        If the loss diverges: NaN, infinite, or over 10,000 times a uniform guess's (lower the
        learning rate). The model keeps the best weights of the epochs before.

    Warns
    -----
    UserWarning
        On ``KeyboardInterrupt`` (the notebook's stop button) after at least one epoch:
        training stops, the model keeps the best epoch's weights (the warning names it) and
        the result is returned. Before the first epoch ends the interrupt is raised.
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
    if model is not None and not isinstance(model, nnx.Sequential | TinyVGG):
        raise TypeError(
            f"train() trains an nnx.Sequential or a TinyVGG, got a {type(model).__name__}: train "
            "it with your own loop, then pass it to CNNExplainer(model=..., input_shape=...)"
        )
    bad = needs_tracing(model) if isinstance(model, nnx.Sequential) else None
    if isinstance(model, nnx.Sequential) and bad is not None:
        raise ValueError(
            f"unsupported layer {bad} ({type(model.layers[bad]).__name__}): train() trains "
            "conv, activation, pool, flatten and dense layers (no batch norm, groups or "
            "dilation); train such a model "
            "with your own loop, then pass it to CNNExplainer(model=..., input_shape=...)"
        )
    if isinstance(model, nnx.Sequential) and any(isinstance(m, nnx.Dropout) for m in model.layers):
        raise ValueError(
            "train() does not train through nnx.Dropout (the widget explains it as the "
            "identity at inference): train such a model with your own loop, then pass it to "
            "CNNExplainer(model=..., input_shape=...)"
        )
    model_shape = _model_input_shape(model, data, image_size, channels)
    x, y, class_names = _load_data(data, labels, classes, model_shape, image_size, channels)
    input_shape: tuple[int, int, int] = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    if model is None:
        if class_names is None:
            class_names = [f"class {k}" for k in range(int(y.max()) + 1)]
        model = make_tiny_vgg(input_shape, len(class_names), rngs=nnx.Rngs(seed))
        layer_names, name = LAYER_NAMES, "Tiny VGG"
    # Refuse what the widget cannot explain before spending time on training.
    network = as_network(model, None, input_shape)
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
    history, best_epoch = fit(
        model, x[train_idx], y[train_idx], x[val_idx], y[val_idx],
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        patience=patience, rng=rng, progress=progress, n_classes=len(class_names),
    )  # fmt: skip
    return TrainedModel(
        model=model,
        classes=tuple(class_names),
        input_shape=input_shape,
        history=history,
        best_epoch=best_epoch,
        layer_names=layer_names,
        name=name,
    )


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
        return INPUT_SHAPE
    if not isinstance(model, nnx.Sequential) or not _is_folder(data):
        return None
    if image_size is None:
        if not Path(data).is_dir():
            return None  # reading the folder says what is wrong with it
        return infer_input_shape(model, ask_for="image_size=N (the side of the square images)")
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
    names: list[str] | None
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
        x, y, names = read_image_folder(Path(data), classes, size, chans)
    else:
        if labels is None:
            raise ValueError("give labels=... for an array of images (or a folder path)")
        x = as_images(data, None, what="data")
        if x.ndim != 4:
            raise ValueError(f"data must be a batch of images (N, H, W, C), got shape {x.shape}")
        y, names = as_labels(labels, len(x), classes)
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


__all__ = ["train"]
