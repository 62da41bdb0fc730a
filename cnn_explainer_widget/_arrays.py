"""Arrays of images and labels as `train` and `TrainedModel.predict` take them, checked.

Images are uint8, or floats in [0, 1] as `cnn_explainer_widget.load_image` gives; labels are
integer class indices or class names. Every bad value gets a message saying what is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np


def as_images(images: Any, shape: tuple[int, ...] | None, what: str = "images") -> np.ndarray:
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


def as_labels(
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
    if classes is None:
        return y.astype(np.int32), None
    names = [str(c) for c in classes]
    if y.max() >= len(names):
        raise ValueError(f"label {int(y.max())} is out of range for {len(names)} classes {names}")
    return y.astype(np.int32), names


__all__ = ["as_images", "as_labels"]
