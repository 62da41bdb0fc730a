"""Pictures of the views for slides: the toolbar's download and ``w.save_image`` (PNG 2×, SVG),
opened and checked: size, not blank, SVG parses and holds the heatmaps and the labels.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, wait_for

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
SVG = "{http://www.w3.org/2000/svg}"


def not_blank(path) -> np.ndarray:
    px = np.asarray(Image.open(path).convert("RGB")).astype(int)
    colours = len(np.unique(px.reshape(-1, 3)[::7], axis=0))
    assert px.std() > 20 and colours > 200, (path, px.std(), colours)
    return px


def saved_by_python(k, call: str, timeout: float = 30.0):
    """Run ``p = w.save_image(...)`` in the kernel; wait (between cells) for the page's answer."""
    k.run(f"p = {call}")
    wait_for(lambda: k.eval_json("p.done()"), timeout, 0.2, call)
    return k.eval_json("[str(p.exception()) if p.exception() else None, str(p.path)]")


def test_toolbar_downloads_overview_png_at_2x(view, tmp_path):
    root, page = view.root, view.page
    root.locator(".cnnx-picture-btn").click()
    menu = root.locator(".cnnx-picture-menu")
    expect(menu).to_be_visible()
    # no explanation open: its items are disabled and say why
    detail_png = menu.locator('[data-target="detail"][data-format="png"]')
    expect(detail_png).to_be_disabled()
    expect(detail_png).to_have_attribute(
        "title", "no explanation view is open: click a neuron (or set w.selected) first"
    )
    with page.expect_download() as dl:
        menu.locator('[data-target="overview"][data-format="png"]').click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.name == "cnn-explainer-overview.png"
    wrap = root.locator(".cnnx-overview-wrap").bounding_box()
    with Image.open(path) as im:
        assert abs(im.width - 2 * wrap["width"]) <= 2 and abs(im.height - 2 * wrap["height"]) <= 2
    not_blank(path)
    (ARTIFACTS / "picture-toolbar-overview.png").write_bytes(path.read_bytes())


def test_save_image_svg_and_png_of_overview_and_detail(view, tmp_path):
    k, root = view.kernel, view.root
    # the overview as SVG: parses, is as large as on screen, holds heatmaps and column titles
    err, svg_path = saved_by_python(k, f"w.save_image({str(tmp_path / 'overview.svg')!r})")
    assert err is None, err
    tree = ET.parse(svg_path).getroot()
    assert tree.tag == f"{SVG}svg"
    wrap = root.locator(".cnnx-overview-wrap").bounding_box()
    assert abs(float(tree.get("width")) - wrap["width"]) <= 2
    images = tree.findall(f".//{SVG}image")
    assert len(images) >= 100  # ten maps per hidden layer, the input channels
    assert all(i.get("href", "").startswith("data:image/png;base64,") for i in images)
    texts = {t.text for t in tree.iter(f"{SVG}text")}
    assert {"conv_1_1", "max_pool_2", "lifeboat"} <= texts, sorted(t for t in texts if t)[:40]
    (ARTIFACTS / "picture-overview.svg").write_bytes(Path(svg_path).read_bytes())

    # the open explanation, PNG 2×, light background whatever the theme
    k.run("w.selected = {'layer': 'conv_1_2', 'index': 4}")
    expect(root.locator('.cnnx-detail[data-layer="conv_1_2"]')).to_be_visible(timeout=WAIT_MS)
    err, png_path = saved_by_python(
        k, f"w.save_image({str(tmp_path / 'detail.png')!r}, 'detail', light=True)"
    )
    assert err is None, err
    box = root.locator(".cnnx-overview-wrap").bounding_box()  # the explanation opens in place
    with Image.open(png_path) as im:
        assert im.format == "PNG"
        assert abs(im.width - 2 * box["width"]) <= 2 and abs(im.height - 2 * box["height"]) <= 2
    px = not_blank(png_path)
    colours, counts = np.unique(px.reshape(-1, 3), axis=0, return_counts=True)
    assert (colours[counts.argmax()] >= 250).all()  # light background: the commonest colour
    (ARTIFACTS / "picture-detail-light.png").write_bytes(Path(png_path).read_bytes())
    err, svg2 = saved_by_python(k, f"w.save_image({str(tmp_path / 'detail.svg')!r}, 'detail')")
    assert err is None, err
    texts = {t.text for t in ET.parse(svg2).getroot().iter(f"{SVG}text")}
    assert any(t and "conv_1_2" in t for t in texts), sorted(t for t in texts if t)[:40]


def test_save_image_of_detail_without_one_open_says_why(view, tmp_path):
    k = view.kernel
    err, _ = saved_by_python(k, f"w.save_image({str(tmp_path / 'none.png')!r}, 'detail')")
    assert err and "no explanation view is open" in err
    assert not (tmp_path / "none.png").exists()
