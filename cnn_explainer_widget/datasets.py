"""A small image data set the package generates itself: circles, squares and triangles.

`make_shapes` draws it deterministically from a seed (no download, no files), in the array form
`cnn_explainer_widget.train` takes; `write_image_folder` writes any such arrays as PNG files,
one sub-folder per class, the folder form `train` also takes, and `read_image_folder` reads
such a folder back.

Each image holds one light, filled shape of random position, size, rotation and brightness on
a dark background, plus pixel noise. A small CNN tells them apart well above chance after a few
seconds of training on a CPU, and the learned kernels (edges, corners) are easy to read in the
widget.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_explainer_widget.images import IMAGE_SUFFIXES, load_image

#: Class names of `make_shapes`, in label order.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")

_SUPERSAMPLE = 3


def _shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Coverage in [0, 1] of one shape on a ``size × size`` grid (supersampled edges)."""
    n = size * _SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / _SUPERSAMPLE
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    radius = rng.uniform(0.24, 0.36) * size
    # Centres within ±0.12·size of the middle: the shape always fits, never touches the edge.
    cy, cx = size / 2 + rng.uniform(-0.12, 0.12, 2) * size
    dy, dx = yy - cy, xx - cx
    if kind == 0:
        inside = dy**2 + dx**2 <= radius**2
    else:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        corners = 4 if kind == 1 else 3
        # A regular polygon with circumradius `radius`: inside all its edges' half-planes. The
        # apothem is r·cos(π/k); a square's area then matches a circle of similar radius.
        inside = np.ones_like(dy, dtype=bool)
        apothem = radius * np.cos(np.pi / corners)
        for k in range(corners):
            theta = angle + 2.0 * np.pi * k / corners
            inside &= dx * np.cos(theta) + dy * np.sin(theta) <= apothem
    coverage: np.ndarray = inside.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))
    return coverage


def make_shapes(
    n_per_class: int,
    size: int = 32,
    channels: int = 1,
    seed: int = 0,
    noise: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Generate the shapes data set: circles, squares and triangles, shuffled.

    Parameters
    ----------
    n_per_class:
        Images per class (the result holds ``3 * n_per_class``).
    size:
        Side of the square images, at least 8.
    channels:
        1 for grayscale, 3 for colour (shape and background colours are then random).
    seed:
        The same seed gives the same images and labels, on every platform.
    noise:
        Standard deviation of the Gaussian pixel noise (the result is clipped to [0, 1]).

    Returns
    -------
    images, labels, classes
        ``images`` is ``(N, size, size, channels)`` float32 in [0, 1], ``labels`` ``(N,)``
        int32 in ``{0, 1, 2}``, and ``classes`` is `SHAPE_CLASSES`.

    Examples
    --------
    >>> x, y, classes = make_shapes(10, size=32, channels=1, seed=0)
    >>> x.shape, y.shape, classes
    ((30, 32, 32, 1), (30,), ('circle', 'square', 'triangle'))
    """
    if int(n_per_class) != n_per_class or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer of at least 8, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if not 0 <= noise <= 1:
        raise ValueError(f"noise must be in [0, 1], got {noise!r}")
    n_per_class, size = int(n_per_class), int(size)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(SHAPE_CLASSES), dtype=np.int32), n_per_class)
    labels = labels[rng.permutation(labels.size)]
    images = np.empty((labels.size, size, size, channels), np.float32)
    for i, label in enumerate(labels):
        mask = _shape_mask(int(label), size, rng)[..., None]
        # A light shape on a dark background; they differ by at least 0.3 in brightness.
        background = rng.uniform(0.0, 0.35, channels)
        foreground = rng.uniform(0.65, 1.0, channels)
        image = background + mask * (foreground - background)
        image = image + rng.normal(0.0, noise, image.shape)
        images[i] = np.clip(image, 0.0, 1.0)
    return images, labels, SHAPE_CLASSES


def write_image_folder(
    path: str | Path,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    classes: Sequence[str],
) -> Path:
    """Write images as PNG files, one sub-folder per class: ``path/<class>/<index>.png``.

    Parameters
    ----------
    path:
        The folder to write into (created if needed; existing files of the same names are
        overwritten).
    images:
        ``(N, H, W, C)`` with C = 1 or 3, floats in [0, 1] or uint8.
    labels:
        ``(N,)`` integer class indices into ``classes``.
    classes:
        Class names; each becomes a sub-folder (also for a class with no images).

    Returns
    -------
    Path
        ``path``, ready for ``train(model, path)``.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be shaped (N, H, W, 1 or 3), got {images.shape}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"labels shaped {labels.shape} do not match {len(images)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels must be in [0, {len(classes) - 1}] for {len(classes)} classes")
    for name in classes:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"class name {name!r} cannot be a folder name")
    if images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    root = Path(path)
    folders = [root / name for name in classes]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    digits = len(str(max(len(images) - 1, 0)))
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        Image.fromarray(pixels).save(folders[int(label)] / f"{i:0{digits}d}.png")
    return root


def read_image_folder(
    root: Path, classes: Sequence[str] | None, size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a folder written like `write_image_folder`: ``root/<class>/<image file>``.

    Returns the images ``(N, size, size, channels)`` loaded with `load_image`, their labels
    ``(N,)`` and the class names (``classes``, or the sorted sub-folder names). Files whose
    suffix is not in `IMAGE_SUFFIXES`, and hidden files, are skipped.
    """
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


__all__ = ["SHAPE_CLASSES", "make_shapes", "read_image_folder", "write_image_folder"]
