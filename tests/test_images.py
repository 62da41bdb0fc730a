"""load_image: every accepted source, the original's preprocessing, and clear errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_explainer_widget import load_image
from cnn_explainer_widget.images import MAX_PIXELS, load_image_with_info, resize_center_crop


def _png_bytes(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_path_str_and_pathlib_agree(espresso_path):
    a = load_image(espresso_path)
    b = load_image(str(espresso_path))
    assert a.shape == (64, 64, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_64px_image_used_as_is(espresso_path):
    raw = np.asarray(Image.open(espresso_path).convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_array_equal(load_image(espresso_path), raw)


def test_sources_agree(espresso_path):
    pil = Image.open(espresso_path)
    arr8 = np.asarray(pil.convert("RGB"))
    expected = load_image(espresso_path)
    np.testing.assert_array_equal(load_image(pil), expected)
    np.testing.assert_array_equal(load_image(espresso_path.read_bytes()), expected)
    np.testing.assert_array_equal(load_image(bytearray(espresso_path.read_bytes())), expected)
    np.testing.assert_array_equal(load_image(arr8), expected)
    np.testing.assert_allclose(load_image(arr8.astype(np.float64) / 255), expected, atol=1e-6)
    rgba = np.concatenate([arr8, np.full((64, 64, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(load_image(rgba), expected)


def test_grayscale_becomes_rgb():
    gray = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    out = load_image(gray)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_allclose(out[..., 0], gray / 255, atol=1e-7)
    out_l = load_image(Image.fromarray(gray, "L"))
    np.testing.assert_array_equal(out, out_l)


def test_grayscale_channel_output():
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 1] = 255
    out = load_image(rgb, channels=1)
    assert out.shape == (64, 64, 1)
    np.testing.assert_allclose(out, 0.587, atol=1e-6)


def test_exif_orientation_honoured():
    # A 64×32 image, left half black, right white, stored with orientation 6 (rotate 90° CW).
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, 32:] = 255
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _png_bytes(img, "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(data)
    # After rotating 90° clockwise the image is 32 wide × 64 high: top black, bottom white.
    assert out[:8].mean() < 0.1 and out[-8:].mean() > 0.9


def test_centre_crop_of_wide_image_matches_rule():
    # Columns coded by x: after scaling by 65/100 the centre crop starts at floor(W/2) - 32.
    w, h = 300, 100
    arr = np.tile((np.arange(w) / (w - 1))[None, :, None], (h, 1, 3))
    out = load_image(arr)
    f = 65 / 100
    big_w = int(w * f)
    left = big_w // 2 - 32
    centres = (np.arange(left, left + 64) + 0.5) / f - 0.5
    np.testing.assert_allclose(out[10, :, 0], centres / (w - 1), atol=2e-3)


def test_downscale_is_antialiased():
    # A one-pixel checkerboard must average to grey, not alias into stripes.
    board = (np.indices((640, 640)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = load_image(board)
    assert abs(out.mean() - 0.5) < 0.01
    assert out.std() < 0.02


def test_small_image_is_upscaled():
    out = load_image(np.full((8, 8, 3), 0.25, np.float32))
    assert out.shape == (64, 64, 3)
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_one_by_one_pixel():
    out = load_image(np.array([[[255, 0, 0]]], np.uint8))
    assert out.shape == (64, 64, 3)
    np.testing.assert_allclose(out[..., 0], 1.0)


def test_palette_with_transparency_and_modes():
    for mode in ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"]:
        img = Image.new("RGB", (70, 90), (200, 100, 50)).convert(mode)
        out = load_image(img)
        assert out.shape == (64, 64, 3), mode
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, mode


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = load_image(buf.getvalue())
    assert out[..., 0].mean() > 0.9 and out[..., 2].mean() < 0.1


def test_resize_keeps_exact_size():
    a = np.random.default_rng(0).random((64, 64, 3))
    assert resize_center_crop(a) is a


# ---- bad input: each names what was wrong and what is accepted ---------------------------


@pytest.mark.parametrize(
    ("source", "exc", "match"),
    [
        (b"", ValueError, "empty"),
        (b"not an image at all", ValueError, "not a readable image file"),
        ("hello", ValueError, "no such image file: 'hello'"),
        (Path("/nonexistent/cat.jpg"), ValueError, "no such image file"),
        (12, TypeError, "cannot load an image from int: expected a path"),
        (None, TypeError, "cannot load an image from NoneType"),
        ([[0.0]], TypeError, "cannot load an image from list"),
        (np.zeros((64, 64, 2), np.uint8), ValueError, r"shaped \(H, W\).*got \(64, 64, 2\)"),
        (np.zeros((2, 64, 64, 3), np.uint8), ValueError, "got \\(2, 64, 64, 3\\)"),
        (
            np.zeros((64, 64, 3), np.int64),
            TypeError,
            "uint8 or float in \\[0, 1\\], got dtype int64",
        ),
        (np.zeros((64, 64, 3), np.complex64), TypeError, "got dtype complex64"),
        (np.full((64, 64, 3), np.nan, np.float32), ValueError, "NaN or infinite"),
        (np.full((64, 64, 3), np.inf, np.float32), ValueError, "NaN or infinite"),
        (np.full((64, 64, 3), 255.0, np.float32), ValueError, r"must lie in \[0, 1\].*255"),
        (np.full((64, 64, 3), -0.5, np.float32), ValueError, r"must lie in \[0, 1\]"),
        (np.zeros((0, 64, 3), np.uint8), ValueError, "no pixels"),
    ],
)
def test_bad_input_messages(source, exc, match):
    with pytest.raises(exc, match=match):
        load_image(source)


def test_directory_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is a directory, not an image file"):
        load_image(tmp_path)


def test_text_file_is_refused(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("just some text")
    with pytest.raises(ValueError, match="notes.txt' is not a readable image file"):
        load_image(p)


def test_truncated_image(espresso_path):
    data = espresso_path.read_bytes()
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_image(data[: len(data) // 3])


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ValueError, match=f"at most {MAX_PIXELS:,}"):
        load_image(_png_header_only(60000, 60000))


def test_huge_array_is_refused():
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (20000, 20000), (0, 0))
    with pytest.raises(ValueError, match="decompression bombs"):
        load_image(big)


def test_every_default_image_loads(image_dir):
    files = sorted(image_dir.glob("*.jpeg"))
    assert len(files) == 10
    for f in files:
        assert load_image(f).shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("size", "cropped", "scaled_up", "words"),
    [
        ((320, 200), True, False, ["320×200", "centre-cropped", "left and right", "scaled down"]),
        ((200, 320), True, False, ["top and bottom", "38% cut off"]),
        ((32, 32), False, True, ["32×32", "scaled up", "blurrier"]),
        ((48, 100), True, True, ["centre-cropped", "scaled up"]),
        ((64, 64), False, False, []),
        ((256, 256), False, False, []),
    ],
)
def test_load_image_with_info_says_what_was_done(size, cropped, scaled_up, words):
    img = Image.new("RGB", size, (40, 90, 200))
    pixels, info = load_image_with_info(img)
    np.testing.assert_array_equal(pixels, load_image(img))  # the same input as load_image
    assert (info.width, info.height, info.size) == (*size, 64)
    assert (info.cropped, info.scaled_up) == (cropped, scaled_up)
    notice = info.notice("photo.png")
    assert all(w in notice for w in words), notice
    assert bool(notice) == (cropped or scaled_up)
