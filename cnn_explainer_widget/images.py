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

import io
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnn_explainer_widget._canvas import canvas_size, draw_image

#: Largest image, in pixels, that will be decoded (a guard against decompression bombs).
MAX_PIXELS = 40_000_000
#: Most memory decoding one image may take: the decoder's pixels plus our copy of them, computed
#: from the file's header before anything is decoded. An 8-bit RGB photo of `MAX_PIXELS` fits
#: (4 + 3 bytes a pixel); images of 32-bit pixels (mode I or F, 4 + 4 bytes) stop at 35 Mpx.
MAX_DECODE_BYTES = 280_000_000
#: Largest image inside an ICO file, in pixels (icons are at most 256×256).
MAX_ICON_PIXELS = 1024 * 1024
#: Largest encoded image accepted, in bytes.
MAX_BYTES = 50 * 1024 * 1024
#: The file formats `load_image` decodes (Pillow format ids). Pillow can open many more, but some
#: run external programs (EPS calls Ghostscript) and rarely used decoders widen what a hostile
#: upload can reach, so only common raster formats are tried.
FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "PPM")
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


ACCEPTED = (
    "a path (str or pathlib.Path) to an image file, a PIL image, the bytes of an image file, "
    "or a numpy array shaped (H, W), (H, W, 3) or (H, W, 4) of uint8 or of floats in [0, 1]"
)


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
        rgb, _ = _decode(source)
    out = resize_center_crop(rgb, size)
    if out.shape[2] == 1:  # grey stays one channel through the resize: R = G = B
        out = np.repeat(out, 3, axis=2)
    if channels == 1:
        out = out @ np.array([0.299, 0.587, 0.114])
        out = out[..., None]
    info = ImageInfo(width=int(rgb.shape[1]), height=int(rgb.shape[0]), size=size)
    return np.clip(out, 0.0, 1.0).astype(np.float32), info


def _decode(source: Any) -> tuple[np.ndarray, bool]:
    """Pixels of ``source`` (uint8 or floats; RGB or one grey channel) and whether 8-bit."""
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source), source.dtype == np.uint8
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return _pil_to_rgb(_open_bytes(bytes(source)))
    if isinstance(source, str | os.PathLike):
        return _pil_to_rgb(_open_path(Path(source)))
    raise TypeError(f"cannot load an image from {type(source).__name__}: expected {ACCEPTED}")


def _open_path(path: Path) -> Image.Image:
    try:
        if path.is_dir():
            raise ValueError(
                f"{str(path)!r} is a directory, not an image file; expected {ACCEPTED}"
            )
        if not path.is_file():
            raise ValueError(f"no such image file: {str(path)!r}")
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_BYTES:
                raise ValueError(
                    f"{str(path)!r} is {size:,} bytes; images up to {MAX_BYTES:,} bytes are "
                    "accepted"
                )
            if not size:
                raise ValueError(f"{str(path)!r} is empty; expected an image file")
            # Read by the decoder as it goes: the file's bytes are never all in memory at once.
            return _open_stream(file, repr(str(path)))
    except OSError as exc:  # a name too long, no permission, an unreadable device, ...
        raise ValueError(
            f"cannot read image file {_clip(str(path))!r}: {exc.strerror or exc}"
        ) from None


def _open_bytes(data: bytes, name: str = "the given bytes") -> Image.Image:
    if not data:
        raise ValueError(f"{name} are empty; expected the contents of an image file")
    if len(data) > MAX_BYTES:
        raise ValueError(f"{name}: {len(data):,} bytes; images up to {MAX_BYTES:,} are accepted")
    return _open_stream(io.BytesIO(data), name)


def _open_stream(stream: Any, name: str) -> Image.Image:
    """Open and decode an image from ``stream``, refusing from its header what is too large."""
    # Pillow's decoders raise many exception types on hostile input (OSError, SyntaxError,
    # struct.error, zlib.error, ValueError, MemoryError, ...): every one becomes a ValueError
    # that says the file is broken, and only our own checks speak about sizes.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _check_icon(stream)
            image = Image.open(stream, formats=FORMATS)
    except _TooLarge as exc:
        raise ValueError(f"{name}: {exc}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            f"{name}: the image is too large to decode safely; at most {MAX_PIXELS:,} pixels"
        ) from None
    except UnidentifiedImageError:
        raise ValueError(
            f"{name} are not a readable image file (JPEG, PNG, GIF, WebP, BMP, TIFF, ...)"
            if name == "the given bytes"
            else f"{name} is not a readable image file (JPEG, PNG, GIF, WebP, BMP, TIFF, ...)"
        ) from None
    except Exception as exc:
        raise ValueError(
            f"{name}: the image file is truncated or corrupt ({_reason(exc)})"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _check_decodable(image)
            image.load()
    except _TooLarge as exc:
        raise ValueError(f"{name}: {exc}") from None
    except ValueError as exc:
        raise ValueError(
            f"{name}: the image file is truncated or corrupt ({_reason(exc)})"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            f"{name}: the image is too large to decode safely; at most {MAX_PIXELS:,} pixels"
        ) from None
    except Exception as exc:
        raise ValueError(
            f"{name}: the image file is truncated or corrupt ({_reason(exc)})"
        ) from None
    return image


def _reason(exc: BaseException) -> str:
    """A short description of a decoder's exception, for our messages."""
    return _clip(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _TooLarge(ValueError):
    """An image refused for its size (from its header, before decoding)."""


def _check_pixels(size: tuple[int, int]) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise ValueError(f"the image has no pixels ({w}×{h})")
    if w * h > MAX_PIXELS:
        raise _TooLarge(
            f"the image is {w}×{h} = {w * h:,} pixels; at most {MAX_PIXELS:,} are decoded "
            "(a guard against decompression bombs)"
        )


#: Pillow modes whose pixels we read as one float channel (16-bit and 32-bit grey).
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
#: Bytes a pixel takes in Pillow's decoded image, by mode (others: 4).
_DECODED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def _bytes_per_pixel(mode: str) -> tuple[int, str]:
    """Bytes a pixel costs to decode (Pillow's image + our copy), and a word for the depth."""
    if mode in _WIDE_MODES:
        ours, depth = 4, ("16-bit" if mode.startswith("I;16") else "32-bit")
    else:
        ours, depth = (1 if mode in ("1", "L") else 3), "8-bit"
    return _DECODED_BYTES.get(mode, 4) + ours, depth


def _check_decodable(image: Image.Image) -> None:
    """Refuse, from its header alone, an image over `MAX_PIXELS` or `MAX_DECODE_BYTES`."""
    _check_pixels(image.size)
    w, h = image.size
    per_pixel, depth = _bytes_per_pixel(image.mode)
    if w * h * per_pixel > MAX_DECODE_BYTES:
        raise _TooLarge(
            f"the image is {w}×{h} = {w * h:,} pixels of {depth} {image.mode} data; at most "
            f"{MAX_DECODE_BYTES // per_pixel:,} such pixels are decoded (a memory bound)"
        )


def _check_icon(stream: Any) -> None:
    """Refuse an ICO file holding an image over `MAX_ICON_PIXELS`, before Pillow opens it.

    Pillow decodes an ICO's largest image as it opens the file, and the ICO directory says at
    most 256×256 whatever the image really is: each image's own header gives its real size.
    """
    position = stream.tell()
    is_icon = stream.read(4) == b"\0\0\1\0"
    stream.seek(position)
    if not is_icon:
        return
    for w, h in _ico_image_sizes(stream):
        if w * h > MAX_ICON_PIXELS:
            raise _TooLarge(
                f"the ICO file holds a {w}×{h} image; at most {MAX_ICON_PIXELS:,} pixels are "
                f"decoded from an icon (and at most {MAX_PIXELS:,} from any image)"
            )


def _ico_image_sizes(fp: Any) -> list[tuple[int, int]]:
    """The real sizes of the images in an ICO file, read from each image's own header."""
    position = fp.tell()
    try:
        fp.seek(0)
        head = fp.read(6)
        count = struct.unpack("<H", head[4:6])[0]
        entries = fp.read(16 * count)
        sizes = []
        for i in range(min(count, len(entries) // 16)):
            offset = struct.unpack("<I", entries[16 * i + 12 : 16 * i + 16])[0]
            fp.seek(offset)
            data = fp.read(24)
            if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
                sizes.append(struct.unpack(">II", data[16:24]))
            elif len(data) >= 12:  # a BMP info header: height counts the image and its mask
                w, h = struct.unpack("<ii", data[4:12])
                sizes.append((abs(w), abs(h) // 2))
        return sizes
    finally:
        fp.seek(position)


#: EXIF orientation → the same transpose as Pillow's ``ImageOps.exif_transpose``, as numpy
#: views (Pillow's copies the whole image).
_ORIENT: dict[int, Any] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}
#: Rows of an image read per piece: bounds the temporary copies of a conversion.
_BAND_BYTES = 4 * 1024 * 1024


def _pil_to_rgb(image: Image.Image) -> tuple[np.ndarray, bool]:
    """Pixels from any PIL mode, ``(H, W, 3)`` or ``(H, W, 1)`` for grey, and whether 8-bit.

    8-bit modes give a ``uint8`` array (converted to floats only in small pieces later, so a
    large photo never exists as a float copy); 16-bit and float modes give float32 in [0, 1].
    Pillow's decoded image is read in bands of rows, so besides it only our copy exists.
    """
    mode = image.mode
    try:
        # The first frame of an animation. (tell(), not n_frames: counting the frames of a
        # hostile GIF or TIFF means parsing all of them.)
        if image.tell() != 0:
            image.seek(0)
        _check_decodable(image)
        image.load()
        _check_decodable(image)
        mode = image.mode
        orientation = image.getexif().get(0x0112, 1)
        if mode in _WIDE_MODES:
            values, quantised = _read_wide(image), False
        else:
            values, quantised = _read_8bit(image), True
    except _TooLarge:
        raise
    except ValueError as exc:
        if "NaN" in str(exc):
            raise
        raise _conversion_error(mode, exc) from None
    except Exception as exc:  # a truncated frame, broken EXIF, a mode with no RGB conversion
        raise _conversion_error(mode, exc) from None
    turn = _ORIENT.get(orientation) if isinstance(orientation, int) else None
    return (turn(values) if turn else values), quantised


def _conversion_error(mode: str, exc: BaseException) -> ValueError:
    return ValueError(
        f"the image (mode {mode}) could not be decoded or converted to RGB ({_reason(exc)}); "
        "the file may be truncated or corrupt"
    )


def _bands(image: Image.Image) -> Any:
    """``(first row, last row, band image)`` pieces of ``image``, a few MB each."""
    w, h = image.size
    rows = max(1, _BAND_BYTES // (4 * w))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        yield r0, r1, image.crop((0, r0, w, r1))


def _read_8bit(image: Image.Image) -> np.ndarray:
    """``uint8`` pixels: ``(H, W, 1)`` for grey and bilevel images, else RGB ``(H, W, 3)``."""
    w, h = image.size
    grey = image.mode in ("L", "1")
    # P with transparency and LA go through RGBA so palette and alpha are honoured.
    rgba = "A" in image.mode or "transparency" in image.info
    out = np.empty((h, w, 1 if grey else 3), np.uint8)
    for r0, r1, band in _bands(image):
        if grey:
            band = band.convert("L")
        elif band.mode != "RGB":
            band = band.convert("RGBA" if rgba else "RGB").convert("RGB")
        out[r0:r1] = np.asarray(band, np.uint8).reshape(r1 - r0, w, -1)
    return out


def _read_wide(image: Image.Image) -> np.ndarray:
    """16-bit and 32-bit grey as float32 ``(H, W, 1)`` in [0, 1]."""
    w, h = image.size
    out = np.empty((h, w, 1), np.float32)
    for r0, r1, band in _bands(image):
        values = np.asarray(band, np.float32).reshape(r1 - r0, w, 1)
        if not np.isfinite(values).all():
            raise ValueError("the image contains NaN or infinite values")
        out[r0:r1] = values
    top = float(out.max(initial=0))
    if image.mode.startswith("I;16"):
        scale = 65535.0
    elif image.mode == "I":
        scale = 65535.0 if top > 255 else 255.0
    else:
        scale = 1.0 if top <= 1.0 else 255.0
    out /= np.float32(scale)
    return np.clip(out, 0.0, 1.0, out=out)


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """An array image as ``(H, W, 3)`` or grey ``(H, W, 1)``: uint8 or floats in [0, 1]."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"image arrays must be shaped (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got {array.shape}"
        )
    _check_pixels((array.shape[1], array.shape[0]))
    if array.dtype == np.uint8:
        values = array  # stays 8-bit until resize_center_crop converts what it needs
    elif array.dtype.kind == "f":
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("the image array contains NaN or infinite values")
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"float image values must lie in [0, 1], got values in [{lo:g}, {hi:g}] "
                "(divide 0–255 data by 255, or pass it as uint8)"
            )
    else:
        raise TypeError(f"image arrays must be uint8 or float in [0, 1], got dtype {array.dtype}")
    if values.ndim == 2:
        return values[..., None]
    return values[..., :3]


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
