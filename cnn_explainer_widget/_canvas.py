"""Chromium's ``drawImage`` in numpy: how the browser the original ran in scales an image.

`canvas_size` is the original's canvas for an image (shorter side 65), and `draw_image` draws
the image onto it as headless Chromium does (Skia's software raster path), measured pixel for
pixel by tests/test_preprocessing.py. `cnn_explainer_widget.images.resize_center_crop` cuts the
network's input out of that canvas.
"""

from __future__ import annotations

import math

import numpy as np


def canvas_size(w: int, h: int, size: int = 64) -> tuple[int, int]:
    """The original's canvas ``(W, H)`` for a ``w × h`` image: shorter side ``size + 1``.

    Computed as the original's JavaScript does (a double product, truncated by the canvas),
    at least 1 pixel.
    """
    f = (size + 1) / min(w, h)
    return max(1, math.trunc(w * f)), max(1, math.trunc(h * f))


def draw_image(
    rgb: np.ndarray,
    out_w: int,
    out_h: int,
    window: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """``rgb`` drawn onto an ``out_w × out_h`` canvas, as Chromium's ``drawImage`` does.

    For an 8-bit image this follows Chromium's software raster path (what a headless Chromium
    draws; tests/test_preprocessing.py compares the two pixel for pixel):

    1. for a downscale by ``f`` (the smaller of the two factors) with ``k = ⌊log2(1/f)⌋ ≥ 1``,
       the image is first pre-scaled to ``⌈w / 2^k⌉ × ⌈h / 2^k⌉``: from the mip level
       ``⌊log2(1/s)⌋`` (``s`` the larger factor of that pre-scale) of a pyramid of 2×2 box
       averages (1-2-1 along an odd axis, rounded down), by bilinear sampling with 8-bit
       weights, rounded;
    2. that (or the image itself) is sampled bilinearly at the canvas's pixel centres with
       4-bit weights, rounded down (Skia's legacy bilinear filter).

    A float image (a high-bit-depth source) gets the same pyramid and bilinear sampling in
    floating point and stays float in [0, 1]. ``window`` ``(top, left, height, width)`` draws
    only that part of the canvas.
    """
    window = window or (0, 0, out_h, out_w)
    h, w = rgb.shape[:2]
    f = min(out_w / w, out_h / h)
    k = math.floor(math.log2(1 / f)) if f < 1 else 0
    if rgb.dtype != np.uint8:
        level = rgb
        for _ in range(k):
            if min(level.shape[:2]) < 2:
                break
            level = _halve(level)
        ys, xs = _centres(level.shape[:2], out_h, out_w, window)
        return _bilinear(level, ys, xs)
    source = rgb
    if k >= 1:
        pre_w, pre_h = math.ceil(w / 2**k), math.ceil(h / 2**k)
        s = max(pre_w / w, pre_h / h)
        level = rgb
        for _ in range(max(0, math.floor(math.log2(1 / s)))):
            if min(level.shape[:2]) < 2:
                break
            level = _halve_u8(level)
        whole = (0, 0, pre_h, pre_w)
        source = _bilinear_fixed(level, pre_w, pre_h, whole, bits=8, round_half_up=True)
    return _bilinear_fixed(source, out_w, out_h, window, bits=4, round_half_up=False)


def _centres(
    shape: tuple[int, ...], out_h: int, out_w: int, window: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates of the centres of the output pixels in ``window`` (top, left, h, w)."""
    h, w = shape[0], shape[1]
    top, left, height, width = window
    ys = (np.arange(top, top + height) + 0.5) * (h / out_h) - 0.5
    xs = (np.arange(left, left + width) + 0.5) * (w / out_w) - 0.5
    return ys, xs


def _bilinear_fixed(
    a: np.ndarray,
    out_w: int,
    out_h: int,
    window: tuple[int, int, int, int],
    bits: int,
    round_half_up: bool,
) -> np.ndarray:
    """8-bit bilinear resampling with ``bits``-bit weights, as Skia's integer filters do."""
    ys, xs = _centres(a.shape, out_h, out_w, window)
    one = 1 << bits

    def taps(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fixed = np.floor(coords * 65536).astype(np.int64)  # 16.16 fixed point
        i0 = fixed >> 16
        frac = (fixed >> (16 - bits)) & (one - 1)
        frac = np.where((i0 < 0) | (i0 >= n - 1), 0, frac)
        return np.clip(i0, 0, n - 1), np.clip(i0 + 1, 0, n - 1), frac

    y0, y1, fy = taps(ys, a.shape[0])
    x0, x1, fx = taps(xs, a.shape[1])
    fy, fx = fy[:, None, None], fx[None, :, None]
    rows0, rows1 = a[y0].astype(np.int64), a[y1].astype(np.int64)
    total: np.ndarray = (
        rows0[:, x0] * (one - fx) * (one - fy)
        + rows0[:, x1] * fx * (one - fy)
        + rows1[:, x0] * (one - fx) * fy
        + rows1[:, x1] * fx * fy
    )
    if round_half_up:
        total = total + (1 << (2 * bits - 1))
    return (total >> (2 * bits)).astype(np.uint8)


def _halve_u8(a: np.ndarray) -> np.ndarray:
    """One 8-bit mip level: 2×2 box sums (1-2-1 along an odd axis), rounded down.

    Built in bands of rows, so no full-size wider copy of a large photo exists.
    """
    h, w = a.shape[:2]
    rows_out, odd_rows = h // 2, h % 2
    out = np.empty((max(1, rows_out), max(1, w // 2), a.shape[2]), np.uint8)
    band = _band_rows(a)
    for r0 in range(0, rows_out, band):
        r1 = min(rows_out, r0 + band)
        block = a[2 * r0 : 2 * r1 + odd_rows].astype(np.uint32)
        rows = _sum_axis(block, 0)
        out[r0:r1] = (_sum_axis(rows, 1) // ((4 if odd_rows else 2) * (4 if w % 2 else 2))).astype(
            np.uint8
        )
    return out


def _sum_axis(a: np.ndarray, axis: int) -> np.ndarray:
    """Pairs summed along ``axis`` (1-2-1 triples when its length is odd), not divided."""
    n = a.shape[axis]
    m = n // 2

    def every_other(start: int, stop: int) -> np.ndarray:
        index: list[slice] = [slice(None)] * a.ndim
        index[axis] = slice(start, stop, 2)
        return a[tuple(index)]

    if n % 2 == 0:
        pairs: np.ndarray = every_other(0, 2 * m) + every_other(1, 2 * m)
        return pairs
    triples: np.ndarray = (
        every_other(0, 2 * m) + 2 * every_other(1, 2 * m + 1) + every_other(2, 2 * m + 1)
    )
    return triples


def _halve(a: np.ndarray) -> np.ndarray:
    """One mip level: 2×2 box average (a 1-2-1 filter along an odd axis, as Skia does).

    A level is computed in bands of rows (an 8-bit one converted to float32 band by band), so
    the first (largest) level of a big photo never exists as a float copy and no full-size
    temporaries are made: peak memory stays near the decoded image's size.
    """
    rows, odd = a.shape[0] // 2, a.shape[0] % 2
    eight_bit = a.dtype == np.uint8
    out = np.empty((rows, a.shape[1] // 2, a.shape[2]), np.float32 if eight_bit else a.dtype)
    band = _band_rows(a)
    for r0 in range(0, rows, band):
        r1 = min(rows, r0 + band)
        # Output rows r0..r1 read input rows 2·r0 .. 2·r1 (one more along an odd axis).
        block = a[2 * r0 : 2 * r1 + odd]
        if eight_bit:
            block = block.astype(np.float32) / np.float32(255)
        out[r0:r1] = _halve_axis(_halve_axis(block, 0), 1)
    return out


def _band_rows(a: np.ndarray) -> int:
    """Output rows of a mip level computed at once: about 4 MB of wide (4-byte) input values."""
    width, channels = int(a.shape[1]), int(a.shape[2])
    return max(1, 4 * 1024 * 1024 // (2 * width * channels * 4))


def _halve_axis(a: np.ndarray, axis: int) -> np.ndarray:
    """`_sum_axis` divided: the mean of each pair (of each 1-2-1 triple along an odd axis)."""
    scale = 0.5 if a.shape[axis] % 2 == 0 else 0.25
    halved: np.ndarray = _sum_axis(a, axis) * scale
    return halved


def _bilinear(a: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    top = a[y0][:, x0] * (1 - wx) + a[y0][:, x1] * wx
    bottom = a[y1][:, x0] * (1 - wx) + a[y1][:, x1] * wx
    out: np.ndarray = top * (1 - wy) + bottom * wy
    return out / 255.0 if a.dtype == np.uint8 else out


__all__ = ["canvas_size", "draw_image"]
