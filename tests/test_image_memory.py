"""Image caps that are caps (issue 12, defect 8): every format over the cap is refused before it
is decoded, and decoding any accepted file stays within 300 MB above the process's baseline.

Peak memory is measured in a fresh child process (its high-water mark, ``VmHWM``), which loads
only the image module: the figure is the decoder's, not what the test process held before.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from cnn_explainer_widget import load_image
from cnn_explainer_widget.images import MAX_PIXELS

from conftest import ROOT

MB = 2**20
PEAK_LIMIT = 300 * MB
SIDE = 6300  # 39.7 Mpx: just under the 40 Mpx cap

# The child's own high-water mark, VmHWM: ru_maxrss would also count the parent's pages at the
# fork (Linux keeps the larger figure across exec), i.e. pytest's memory, not the decoder's.
CHILD = r"""
import importlib.util, json, sys

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

spec = importlib.util.spec_from_file_location("cnnx_images", sys.argv[1])
images = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = images  # (its dataclasses look their module up)
spec.loader.exec_module(images)
baseline = status("VmRSS")
try:
    out = images.load_image(sys.argv[2])
    result = {"shape": list(out.shape), "mean": float(out.mean())}
except ValueError as exc:
    result = {"error": str(exc)}
result.update(baseline=baseline, growth=status("VmHWM") - baseline)
print(json.dumps(result))
"""


def decode_in_child(path: Path) -> dict:
    """Decode ``path`` with `load_image` in a fresh process; its result and peak RSS growth."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "cnn_explainer_widget" / "images.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n{path.name}: peak +{result['growth'] / MB:.0f} MB above the baseline")
    return result


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_zeros(width: int, height: int, color_type: int, bit_depth: int) -> bytes:
    """A valid PNG of the given size and pixel format, all zeros, written without a big buffer."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" * (1 + width * channels * bit_depth // 8)
    z = zlib.compressobj(9)
    idat = [z.compress(row) for _ in range(height)]
    idat.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(idat))
        + _chunk(b"IEND", b"")
    )


def ico_holding(image: bytes, bpp: int = 32) -> bytes:
    """An ICO whose directory says 256×256 but whose one image is ``image`` (PNG or DIB)."""
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, bpp, len(image), 6 + 16)
    return header + entry + image


# ---- refused before decoding -----------------------------------------------------------------


def test_ico_holding_an_81_mpx_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.ico"
    path.write_bytes(ico_holding(png_of_zeros(9000, 9000, 0, 8)))  # 81 Mpx of grey
    result = decode_in_child(path)
    assert "9000×9000" in result.get("error", ""), result
    assert f"at most {MAX_PIXELS:,}" in result["error"]
    # Decoding it would have taken 81 MB; refused from its header, it takes next to nothing.
    assert result["growth"] < 30 * MB, f"+{result['growth'] / MB:.0f} MB"


def test_ico_holding_a_huge_bitmap_is_refused(tmp_path):
    dib = struct.pack("<IiiHHIIiiII", 40, 9000, 18000, 1, 32, 0, 0, 0, 0, 0, 0) + b"\0" * 64
    with pytest.raises(ValueError, match="9000×9000|too large|truncated or corrupt"):
        load_image(ico_holding(dib))


def test_a_float_image_over_its_cap_is_refused_from_the_header(tmp_path):
    path = tmp_path / "float.tiff"
    Image.new("F", (SIDE, SIDE), 0.5).save(path, compression="tiff_adobe_deflate")
    result = decode_in_child(path)
    # 39.7 Mpx of 32-bit floats would need more than the decoding budget: refused up front.
    assert "32-bit" in result.get("error", "") and "pixels" in result["error"], result
    assert result["growth"] < 30 * MB, f"+{result['growth'] / MB:.0f} MB"


def test_a_float_image_under_its_cap_decodes_within_the_budget(tmp_path):
    path = tmp_path / "float.tiff"
    Image.new("F", (5000, 5000), 0.25).save(path, compression="tiff_adobe_deflate")
    result = decode_in_child(path)
    assert result.get("shape") == [64, 64, 3], result
    assert result["mean"] == pytest.approx(0.25, abs=1e-6)
    assert result["growth"] <= PEAK_LIMIT, f"+{result['growth'] / MB:.0f} MB"


# ---- accepted files: peak decoding memory ≤ 300 MB above the baseline -------------------------


@pytest.mark.parametrize(
    ("what", "color_type", "bit_depth"),
    [("16-bit grey", 0, 16), ("8-bit RGB", 2, 8), ("8-bit RGBA", 6, 8), ("16-bit RGB", 2, 16)],
)
def test_decoding_a_png_at_the_cap_stays_within_300_mb(tmp_path, what, color_type, bit_depth):
    path = tmp_path / "big.png"
    path.write_bytes(png_of_zeros(SIDE, SIDE, color_type, bit_depth))
    result = decode_in_child(path)
    assert result.get("shape") == [64, 64, 3], (what, result)
    assert result["growth"] <= PEAK_LIMIT, f"{what}: +{result['growth'] / MB:.0f} MB"


def test_decoding_a_rotated_jpeg_at_the_cap_stays_within_300_mb(tmp_path):
    path = tmp_path / "rotated.jpeg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: ImageOps.exif_transpose would copy the whole image
    Image.new("RGB", (SIDE, SIDE - 700), (200, 60, 10)).save(path, quality=90, exif=exif)
    result = decode_in_child(path)
    assert result.get("shape") == [64, 64, 3], result
    assert result["growth"] <= PEAK_LIMIT, f"+{result['growth'] / MB:.0f} MB"


# ---- what the bounded decoder must still get right -------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_equals_pillows_transpose(orientation):
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    np.testing.assert_array_equal(
        load_image(buf.getvalue()), load_image(expected), err_msg=f"orientation {orientation}"
    )


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_mode_gives_what_a_whole_image_conversion_gives(mode):
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8))
    image = base.convert(mode)
    if mode in ("I;16", "I", "F"):
        expected = np.asarray(image, np.float64)
        scale = {"I;16": 65535.0, "I": 255.0, "F": 255.0}[mode]
        expected = np.repeat((expected / scale)[..., None], 3, axis=2)
    else:
        rgba = "A" in mode or "transparency" in image.info
        expected = np.asarray(image.convert("RGBA" if rgba else "RGB").convert("RGB"))
    np.testing.assert_allclose(load_image(image), load_image(expected), atol=1e-6)
