"""Turn any image a user has (path, PIL image, numpy array, file bytes) into the network's input.

`load_image` reproduces the original CNN Explainer's preprocessing: RGB in [0, 1] with no
normalisation; a 64×64 image is used as it is; any other size is scaled so its shorter side is
65 px and the centre 64×64 is cut out. The scaling is Chromium's, the browser the original ran
in (`_canvas.draw_image`: a pre-scale from a pyramid of 2×2 box averages, then bilinear sampling in
8-bit integer arithmetic), checked pixel for pixel against Chromium by
tests/test_preprocessing.py; plain bilinear sampling of a large photo would alias and change
predictions. Unlike the original, images smaller than 64 px work.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnn_explainer_widget._canvas import canvas_size, draw_image
from cnn_explainer_widget._decode import (
    ACCEPTED,
    FORMATS,
    MAX_BYTES,
    MAX_DECODE_BYTES,
    MAX_ICON_PIXELS,
    MAX_PIXELS,
    decode,
)

#: File suffixes of those formats: the files `train` reads from a class folder.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp", ".bmp", ".dib",
    ".tif", ".tiff", ".ico", ".ppm", ".pgm", ".pbm", ".pnm",
)  # fmt: skip

#: The ten default images shipped in the package, in class order: (file name, class).
DEFAULT_IMAGES: tuple[tuple[str, str], ...] = (
    ("boat_1.jpeg", "lifeboat"),
    ("bug_1.jpeg", "ladybug"),
    ("pizza_1.jpeg", "pizza"),
    ("pepper_1.jpeg", "bell pepper"),
    ("bus_1.jpeg", "school bus"),
    ("koala_1.jpeg", "koala"),
    ("espresso_1.jpeg", "espresso"),
    ("panda_1.jpeg", "red panda"),
    ("orange_1.jpeg", "orange"),
    ("car_1.jpeg", "sport car"),
)


def default_image_path(name: str) -> Path:
    """Path of a shipped default image, by file name (e.g. ``"espresso_1.jpeg"``)."""
    if name not in {f for f, _ in DEFAULT_IMAGES}:
        raise ValueError(f"no default image {name!r}; they are {[f for f, _ in DEFAULT_IMAGES]}")
    return Path(__file__).resolve().parent / "images" / name


@dataclass(frozen=True)
class ImageInfo:
    """What `load_image` did to an image: its size before, and the input it became.

    Attributes
    ----------
    width, height:
        The decoded image's size in pixels (after EXIF orientation).
    size:
        Side of the square input it became, or ``(height, width)`` of a non-square one.
    """

    width: int
    height: int
    size: int | tuple[int, int]

    @property
    def target(self) -> tuple[int, int]:
        """``(height, width)`` of the input the image became."""
        return _target(self.size)

    @property
    def cropped(self) -> bool:
        """True when the image lost its edges to the centre crop (another aspect ratio)."""
        th, tw = self.target
        return self.width * th != self.height * tw

    @property
    def scaled_up(self) -> bool:
        """True when the image was enlarged (a side was below the input's side + 1)."""
        th, tw = self.target
        return (self.height, self.width) != (th, tw) and (
            self.height < th + 1 or self.width < tw + 1
        )

    def notice(self, name: str = "The image") -> str:
        """One sentence for the user when the image was cropped or scaled up, else ``""``."""
        if not (self.cropped or self.scaled_up):
            return ""
        w, h = self.width, self.height
        th, tw = self.target
        parts = []
        if self.cropped:
            wider = w * th > h * tw
            kept = (h * tw / th) / w if wider else (w * th / tw) / h
            lost = round(100 * (1 - kept))
            edges = "left and right" if wider else "top and bottom"
            shape = "a square" if th == tw else f"{tw}:{th}"
            parts.append(f"centre-cropped to {shape} (about {lost}% cut off at the {edges})")
        scale = "scaled up" if self.scaled_up else "scaled down"
        blur = ", so it looks blurrier" if self.scaled_up else ""
        parts.append(f"{scale} to {tw}×{th}{blur}")
        return f"{name} is {w}×{h}: " + " and ".join(parts) + "."


def _target(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` from a square side or a pair, checked."""
    pair = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(pair) != 2 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return (int(pair[0]), int(pair[1]))


def load_image(source: Any, size: int | tuple[int, int] = 64, channels: int = 3) -> np.ndarray:
    """Load ``source`` as the network's input: ``(size, size, channels)`` float32 in [0, 1].

    Parameters
    ----------
    source:
        A path (``str`` or ``Path``), a ``PIL.Image.Image``, a numpy array (``H×W``, ``H×W×3``
        or ``H×W×4``; ``uint8``, or floats in [0, 1]) or the raw bytes of an image file.
        Grayscale becomes R = G = B, alpha is dropped, EXIF orientation is honoured and an
        animated image gives its first frame.
    size:
        Side of the square output (64 for Tiny VGG), or ``(height, width)`` for a non-square
        one (see `resize_center_crop`).
    channels:
        3 for RGB output, 1 for grayscale (ITU-R 601 luma).

    Raises
    ------
    TypeError
        For a source of an unsupported type or dtype.
    ValueError
        For a missing file, a directory, bytes that are not an image, a wrong array shape,
        NaN/inf or out-of-range values, or an image above `MAX_PIXELS`.
    """
    return load_image_with_info(source, size, channels)[0]


def load_image_with_info(
    source: Any, size: int | tuple[int, int] = 64, channels: int = 3
) -> tuple[np.ndarray, ImageInfo]:
    """`load_image`, and what it did to the image (`ImageInfo`: cropped, scaled up).

    Takes and raises exactly what `load_image` does.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    _target(size)
    with warnings.catch_warnings():
        # Pillow warns about damaged metadata it skips ("Tag data larger than file"); the
        # image either decodes or fails with our error, so the warning only adds noise.
        warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
        rgb, _ = decode(source)
    out = resize_center_crop(rgb, size)
    if out.shape[2] == 1:  # grey stays one channel through the resize: R = G = B
        out = np.repeat(out, 3, axis=2)
    if channels == 1:
        out = out @ np.array([0.299, 0.587, 0.114])
        out = out[..., None]
    info = ImageInfo(width=int(rgb.shape[1]), height=int(rgb.shape[0]), size=size)
    return np.clip(out, 0.0, 1.0).astype(np.float32), info


def resize_center_crop(rgb: np.ndarray, size: int | tuple[int, int] = 64) -> np.ndarray:
    """The original's resize and crop: ``rgb`` → ``size × size`` float in [0, 1].

    An image already ``size × size`` is used unchanged. Otherwise, as the original does in
    Chromium (for 64; other sizes scale the same way):

    1. ``f = (size + 1) / min(w, h)``; the canvas is ``W = trunc(w·f)`` by ``H = trunc(h·f)``
       (a canvas size is an integer, so the aspect ratio is slightly off);
    2. ``drawImage`` at its default quality: a mip pyramid of 2×2 box averages down to level
       ``⌊log2(1/f)⌋``, then bilinear sampling at the canvas's pixel centres, stored as 8-bit
       (`draw_image`);
    3. the central ``size × size`` block of that canvas. A landscape canvas (``H = size + 1``)
       is read from column ``(W − size − 1) / 2`` and row ``δ``, with ``δ = 0`` for an odd
       ``W`` and ``½`` for an even one: at a half-pixel position the value is the mean of the
       two (or four) canvas pixels around it. A portrait canvas is the same transposed, and a
       square one keeps its top-left ``size × size``.

    ``size`` may be ``(height, width)`` for a non-square input (the original has none): the
    canvas is then the image scaled by ``f = max((height + 1) / h, (width + 1) / w)`` (so it
    covers ``(height + 1) × (width + 1)``), drawn the same way, and its exactly centred
    ``height × width`` block is read (half positions averaged as above).

    ``rgb`` is ``uint8`` (0–255) or float in [0, 1]; the result is float in [0, 1]. An 8-bit
    image goes through an 8-bit canvas, as in the original; a float image keeps its precision.
    """
    h, w = rgb.shape[:2]
    th, tw = _target(size)
    if (h, w) == (th, tw):
        return rgb / 255.0 if rgb.dtype == np.uint8 else rgb
    if th != tw:
        return _cover_crop(rgb, th, tw)
    size = th
    canvas_w, canvas_h = canvas_size(w, h, size)
    if canvas_w > canvas_h:
        top, left = _half_if_even(canvas_w), (canvas_w - canvas_h) / 2
    elif canvas_h > canvas_w:
        top, left = (canvas_h - canvas_w) / 2, _half_if_even(canvas_h)
    else:
        top = left = 0.0
    # Only the canvas pixels the crop reads are drawn: a 1×40,000-pixel strip has a canvas of
    # 2.6 million columns but needs 65 of them.
    row0, col0 = math.floor(top), math.floor(left)
    window = (row0, col0, min(size + 1, canvas_h - row0), min(size + 1, canvas_w - col0))
    canvas = draw_image(rgb, canvas_w, canvas_h, window)
    if canvas.dtype == np.uint8:
        canvas = canvas / 255.0
    return _sample(canvas, top - row0, left - col0, size)


def _cover_crop(rgb: np.ndarray, th: int, tw: int) -> np.ndarray:
    """A non-square ``th × tw`` input: the canvas covering it, its exact centre read."""
    h, w = rgb.shape[:2]
    f = max((th + 1) / h, (tw + 1) / w)
    canvas_w, canvas_h = max(tw, math.trunc(w * f)), max(th, math.trunc(h * f))
    top, left = (canvas_h - th) / 2, (canvas_w - tw) / 2
    row0, col0 = math.floor(top), math.floor(left)
    window = (row0, col0, min(th + 1, canvas_h - row0), min(tw + 1, canvas_w - col0))
    canvas = draw_image(rgb, canvas_w, canvas_h, window)
    if canvas.dtype == np.uint8:
        canvas = canvas / 255.0
    return _sample(canvas, top - row0, left - col0, (th, tw))


def _half_if_even(n: int) -> float:
    return 0.5 if n % 2 == 0 else 0.0


def _sample(canvas: np.ndarray, top: float, left: float, size: int | tuple[int, int]) -> np.ndarray:
    """``canvas[top + i, left + j]`` in a ``size`` block; half positions average neighbours."""
    th, tw = _target(size)
    rows = _half_steps(canvas.shape[0], top, th)
    cols = _half_steps(canvas.shape[1], left, tw)
    out: np.ndarray = 0.25 * (
        canvas[rows[0]][:, cols[0]]
        + canvas[rows[0]][:, cols[1]]
        + canvas[rows[1]][:, cols[0]]
        + canvas[rows[1]][:, cols[1]]
    )
    return out


def _half_steps(n: int, start: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the two neighbours of positions ``start + k`` (the same one twice if whole)."""
    lo = math.floor(start)
    first = np.clip(np.arange(lo, lo + size), 0, n - 1)
    second = np.clip(first + (1 if start != lo else 0), 0, n - 1)
    return first, second


__all__ = [
    "ACCEPTED",
    "DEFAULT_IMAGES",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "MAX_BYTES",
    "MAX_DECODE_BYTES",
    "MAX_ICON_PIXELS",
    "MAX_PIXELS",
    "ImageInfo",
    "default_image_path",
    "load_image",
    "load_image_with_info",
    "resize_center_crop",
]
