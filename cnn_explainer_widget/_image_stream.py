"""Images for a scan: an array, a folder or any iterable, checked and cut into fixed batches.

`cnn_explainer_widget.scan` streams what `image_source` returns through `batches`, so a data set
of any size is never held in memory: at most one batch of images is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path
from typing import Any

import jax
import numpy as np

from cnn_explainer_widget.images import IMAGE_SUFFIXES, load_image
from cnn_explainer_widget.network import Network


def as_float(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 in [0, 1] (uint8 / 255, floats copied)."""
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.copy()


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files under ``folder`` in the order `top_activations` numbers them."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is not a folder of images")
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def image_source(
    network: Network, images: Any
) -> tuple[Iterator[np.ndarray] | np.ndarray, int | None]:
    """An array (sliced in batches) or an iterator of single images, and the count if known."""
    h, w, c = network.input_shape
    if isinstance(images, jax.Array):
        images = np.asarray(images)
    if isinstance(images, np.ndarray):
        return _check_array(images, network.input_shape), len(images)
    if isinstance(images, str | os.PathLike):
        files = image_files(images)
        if not files:
            raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {str(images)!r}")
        return (load_image(f, size=(h, w), channels=c) for f in files), len(files)
    if isinstance(images, bytes | bytearray | dict) or not isinstance(images, Iterable):
        raise TypeError(
            "images must be an array (N, H, W, C), a folder path, or an iterable of images; "
            f"got {type(images).__name__}"
        )
    total = len(images) if isinstance(images, Sized) else None
    return (_one(network, item, i) for i, item in enumerate(images)), total


def _check_array(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if x.ndim == 3 and shape[2] == 1 and x.shape[1:] == shape[:2]:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1:] != shape:
        raise ValueError(f"images must be shaped (N, {', '.join(map(str, shape))}), got {x.shape}")
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise TypeError(f"images must be uint8 or floats in [0, 1], got dtype {x.dtype}")
    if len(x) == 0:
        raise ValueError("images holds no images")
    return x


def _one(network: Network, item: Any, i: int) -> np.ndarray:
    """One image of an iterable as the network's input (uint8 kept as it is)."""
    h, w, c = network.input_shape
    try:
        if isinstance(item, np.ndarray) and item.shape in ((h, w, c), (h, w)[: 3 - c]):
            x = item.reshape(h, w, c)
            if x.dtype == np.uint8:
                return x
            if x.dtype.kind != "f":
                raise TypeError(f"expected uint8 or floats in [0, 1], got dtype {x.dtype}")
            _check_floats(x)
            return x.astype(np.float32, copy=False)
        return load_image(item, size=(h, w), channels=c)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"image {i}: {exc}") from None


def _check_floats(x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        raise ValueError("contains NaN or infinite values")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(
            f"float pixels must be in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]"
        )


def batches(
    source: Iterator[np.ndarray] | np.ndarray, size: int, shape: tuple[int, ...]
) -> Iterator[tuple[np.ndarray, int, int]]:
    """Batches of exactly ``size`` images (the last padded with zeros), their start, count."""
    if isinstance(source, np.ndarray):
        for start in range(0, len(source), size):
            chunk = source[start : start + size]
            if chunk.dtype != np.uint8:
                try:
                    _check_floats(chunk)
                except ValueError as exc:
                    raise ValueError(f"images[{start}:{start + len(chunk)}] {exc}") from None
                chunk = chunk.astype(np.float32, copy=False)
            batch = np.zeros((size, *shape), chunk.dtype)
            batch[: len(chunk)] = chunk
            yield batch, start, len(chunk)
        return
    start = 0
    while True:
        items = []
        for item in source:
            items.append(item)
            if len(items) == size:
                break
        if not items:
            return
        dtype = np.uint8 if all(i.dtype == np.uint8 for i in items) else np.float32
        batch = np.zeros((size, *shape), dtype)
        for j, item in enumerate(items):
            batch[j] = as_float(item) if dtype != item.dtype else item
        yield batch, start, len(items)
        start += len(items)
        if len(items) < size:
            return
