"""Take the README's pictures: the widget's overview, and a convolution neuron explained.

Usage: ``python scripts/readme_pictures.py`` (from the repository root; needs the test extra and
Debian's Chromium, as the browser tests do). Runs JupyterLab and Chromium through the browser
tests' harness (tests/browser/cnnx_lab.py) and writes ``docs/images/overview.png`` and
``docs/images/explanation.png`` (the overview and the top of a convolution's view), reduced
to a 256-colour palette so they stay small.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser.cnnx_lab import BenchLab, element_screenshot  # noqa: E402

OUT = ROOT / "docs" / "images"
CELL = "from cnn_explainer_widget import CNNExplainer\nw = CNNExplainer()\nw"


def _small(path: Path) -> None:
    """Quantise a screenshot to 256 colours (flat UI colours survive, the file shrinks)."""
    image = Image.open(path).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def main() -> None:
    """Write both pictures."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, BenchLab(Path(tmp), {"pics.ipynb": [CELL]}) as lab:
        view = lab.widget_page("pics.ipynb")
        view.page.set_viewport_size({"width": 1200, "height": 900})
        root = view.show_widget()
        assert view.kernel is not None
        view.page.wait_for_timeout(1500)  # let the overview settle (fonts, layout)
        element_screenshot(view.page, root, OUT / "overview.png", margin=0)
        view.kernel.run("w.selected = {'layer': 'conv_1_2', 'index': 3, 'y': 20, 'x': 30}")
        detail = root.locator('.cnnx-detail[data-layer="conv_1_2"]').first
        detail.wait_for(state="visible", timeout=60_000)
        view.page.wait_for_timeout(1500)
        element_screenshot(view.page, root, OUT / "explanation.png", margin=0)
        # Keep the overview, the view's header and its first five input channels.
        root_box, detail_box = root.bounding_box(), detail.bounding_box()
        keep = round(detail_box["y"] - root_box["y"] + 580)
        picture = Image.open(OUT / "explanation.png")
        picture.crop((0, 0, picture.width, min(keep, picture.height))).save(OUT / "explanation.png")
        view.close()
    for name in ("overview.png", "explanation.png"):
        _small(OUT / name)
        print(f"{OUT / name}: {(OUT / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
