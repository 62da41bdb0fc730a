"""Decoding untrusted image files and arrays, within bounds on size and memory.

Everything a user or the page hands over (a path, file bytes, a PIL image, a numpy array)
becomes pixels here: ``uint8`` or float32 in [0, 1], RGB or one grey channel, with EXIF
orientation applied. Sizes are checked from the file's header before anything is decoded, only
common raster formats are tried, and every decoder failure becomes a `ValueError` that says
what was wrong. `cnn_explainer_widget.images.load_image` resizes the result.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

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

ACCEPTED = (
    "a path (str or pathlib.Path) to an image file, a PIL image, the bytes of an image file, "
    "or a numpy array shaped (H, W), (H, W, 3) or (H, W, 4) of uint8 or of floats in [0, 1]"
)


def decode(source: Any) -> tuple[np.ndarray, bool]:
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
