"""`load_image`'s resize locked against the project's own Chromium, on the project's photos.

The original CNN Explainer scales an image in the browser: a canvas of ``trunc(w·f)`` by
``trunc(h·f)`` pixels (``f = 65 / min(w, h)``), ``drawImage`` at the default quality, the
pixels read back, then the central 64×64 (see `cnn_explainer_widget.images.resize_center_crop` and `_canvas.draw_image`).
Here a page in Debian's Chromium does exactly that for photos of several sizes and aspect
ratios (tests/data/photos: public-domain and CC0 photos, see the README there), and

- the canvas must match `draw_image` pixel for pixel, up to rare rounding differences;
- the network's input that the original would build from that canvas must match `load_image`,
  and Tiny VGG must give both the same top class.

The figures are written to tests/artifacts/preprocessing.json and printed.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from browser.cnnx_lab import launch_chromium
from PIL import Image

from cnn_explainer_widget import activations, load_image
from cnn_explainer_widget._canvas import canvas_size, draw_image
from cnn_explainer_widget.tiny_vgg import CLASS_NAMES

from conftest import ROOT

pytestmark = pytest.mark.browser

PHOTOS = ROOT / "tests" / "data" / "photos"
ARTIFACTS = ROOT / "tests" / "artifacts"

#: (photo, crop (top, left, height, width) or None): landscape and portrait canvases with an
#: odd and an even long side, squares, downscales by up to 1/22 (mip level 4) and upscales.
CASES: list[tuple[str, tuple[int, int, int, int] | None]] = [
    ("coffee.jpg", None),  # 600×400 → 97×65
    ("chelsea.jpg", None),  # 451×300 → 97×65
    ("rocket.jpg", None),  # 640×427 → 97×65
    ("astronaut.jpg", None),  # 512×512 → 65×65
    ("retina.jpg", None),  # 1411×1411 → 65×65, mip level 4
    ("coffee.jpg", (0, 0, 390, 600)),  # → 100×65: even width
    ("coffee.jpg", (0, 0, 398, 600)),  # → 98×65
    ("chelsea.jpg", (0, 0, 300, 400)),  # → 86×65
    ("rocket.jpg", (0, 0, 427, 400)),  # → 65×69: portrait, odd height
    ("rocket.jpg", (0, 100, 427, 300)),  # → 65×92: portrait, even height
    ("astronaut.jpg", (0, 0, 512, 301)),  # → 65×110
    ("astronaut.jpg", (20, 40, 301, 300)),  # → 65×65 from a near square
    ("retina.jpg", (0, 0, 700, 1411)),  # → 131×65
    ("retina.jpg", (0, 0, 1411, 700)),  # → 65×131
    ("retina.jpg", (300, 300, 741, 500)),  # a 500×741 portrait → 65×96
    ("coffee.jpg", (150, 200, 70, 90)),  # 90×70 → 83×65: a mild downscale (no mip level)
    ("chelsea.jpg", (100, 100, 40, 50)),  # 50×40 → 81×65: an upscale
    ("astronaut.jpg", (200, 200, 64, 64)),  # 64×64: used as it is
]

#: The original's drawing, step by step (its cnn-tf.js), reading back the scaled canvas.
DRAW_JS = """
async ({png, size}) => {
  const img = new Image();
  img.src = 'data:image/png;base64,' + png;
  await img.decode();
  const resizeCanvas = document.createElement('canvas');
  const resizeContext = resizeCanvas.getContext('2d');
  const resizeFactor = (size + 1) / Math.min(img.width, img.height);
  resizeCanvas.width = img.width * resizeFactor;
  resizeCanvas.height = img.height * resizeFactor;
  resizeContext.drawImage(img, 0, 0, resizeCanvas.width, resizeCanvas.height);
  const data = resizeContext.getImageData(0, 0, resizeCanvas.width, resizeCanvas.height).data;
  let text = '';
  for (let i = 0; i < data.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  return {w: resizeCanvas.width, h: resizeCanvas.height, rgba: btoa(text)};
}
"""


def _photo(name: str, crop: tuple[int, int, int, int] | None) -> np.ndarray:
    rgb = np.asarray(Image.open(PHOTOS / name).convert("RGB"))
    if crop is not None:
        top, left, height, width = crop
        rgb = rgb[top : top + height, left : left + width]
    return np.ascontiguousarray(rgb)


def _original_input(canvas: np.ndarray, size: int = 64) -> np.ndarray:
    """The original's 64×64 input from its canvas, written out from the rule, not the code.

    Landscape: input[i][j] = canvas[i + δ][j + (W − 65)/2], δ = ½ for an even W (a half
    position is the mean of the pixels around it); portrait the same transposed; square: the
    top-left 64×64.
    """
    c = canvas.astype(np.float64) / 255.0
    h, w = c.shape[:2]
    if h == w:
        return c[:size, :size]
    transposed = h > w
    if transposed:
        c = c.transpose(1, 0, 2)
        h, w = w, h
    start = (w - (size + 1)) / 2
    rows = c[:size] if w % 2 else (c[:size] + c[1 : size + 1]) / 2
    if start == int(start):
        out = rows[:, int(start) : int(start) + size]
    else:
        lo = int(start)
        out = (rows[:, lo : lo + size] + rows[:, lo + 1 : lo + 1 + size]) / 2
    return out.transpose(1, 0, 2) if transposed else out


@pytest.fixture(scope="module")
def chromium_canvases():
    """Each case's image and the canvas Chromium drew from it."""
    # In a thread of its own: the browser tests' session keeps Playwright's event loop running
    # in the main thread, where a second sync_playwright() would refuse to start.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_draw_in_chromium).result()


def _draw_in_chromium() -> list[tuple[str, np.ndarray, np.ndarray]]:
    from playwright.sync_api import sync_playwright

    results = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        ctx = launch_chromium(p, Path(tmp) / "profile")
        try:
            page = ctx.new_page()
            page.set_content("<html><body></body></html>")
            for name, crop in CASES:
                rgb = _photo(name, crop)
                png = io.BytesIO()
                Image.fromarray(rgb).save(png, format="PNG")  # lossless: both see these pixels
                drawn = page.evaluate(
                    DRAW_JS, {"png": base64.b64encode(png.getvalue()).decode(), "size": 64}
                )
                rgba = np.frombuffer(base64.b64decode(drawn["rgba"]), np.uint8)
                canvas = rgba.reshape(drawn["h"], drawn["w"], 4)[..., :3]
                label = f"{name} {rgb.shape[1]}×{rgb.shape[0]}"
                results.append((label, rgb, canvas))
        finally:
            ctx.close()
    return results


def test_draw_image_matches_chromiums_canvas(chromium_canvases):
    rows = []
    for label, rgb, canvas in chromium_canvases:
        h, w = rgb.shape[:2]
        assert canvas_size(w, h) == (canvas.shape[1], canvas.shape[0]), label
        if (h, w) == (64, 64):
            continue
        diff = np.abs(draw_image(rgb, canvas.shape[1], canvas.shape[0]).astype(int) - canvas)
        rows.append((label, float(diff.mean()), int(diff.max()), float((diff == 0).mean())))
        assert (diff == 0).mean() >= 0.95, (label, rows[-1])
        assert diff.mean() <= 0.1 and diff.max() <= 10, (label, rows[-1])
    _report(
        "canvas",
        rows,
        identical_pixels_worst=min(r[3] for r in rows),
        mean_grey_difference_worst=max(r[1] for r in rows),
        max_grey_difference=max(r[2] for r in rows),
    )


def test_load_image_gives_the_originals_input_and_class(chromium_canvases):
    rows, agree = [], 0
    for label, rgb, canvas in chromium_canvases:
        ours = load_image(rgb)
        theirs = ours if rgb.shape[:2] == (64, 64) else _original_input(canvas)
        grey = np.abs(ours - theirs) * 255
        ours_top = int(np.argmax(activations(ours)["probabilities"]))
        their_top = int(np.argmax(activations(theirs.astype(np.float32))["probabilities"]))
        agree += ours_top == their_top
        rows.append(
            (label, float(grey.mean()), float(grey.max()), CLASS_NAMES[ours_top],
             CLASS_NAMES[their_top])
        )  # fmt: skip
        assert grey.mean() <= 0.2 and grey.max() <= 10, rows[-1]
    means = sorted(r[1] for r in rows)
    _report(
        "input",
        rows,
        top_class_agreement=f"{agree}/{len(rows)}",
        median_mean_grey_difference=float(np.median(means)),
    )
    assert agree == len(rows), [r for r in rows if r[3] != r[4]]


def _report(kind: str, rows: list[tuple], **summary: object) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "preprocessing.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[kind] = {"rows": rows, **summary}
    path.write_text(json.dumps(data, indent=1))
    print(f"\n{kind}: {summary}")
    for row in rows:
        print("  ", row)
