"""What a newcomer meets: the hint until the first click, the hyperparameter explorer from the
toolbar, an upload shown as a selected thumbnail with its name and a notice when the image was
centre-cropped or scaled up. Real JupyterLab + Chromium; waits on DOM hooks or the kernel.
"""

from __future__ import annotations

import re

import pytest
from PIL import Image

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, element_screenshot, wait_for

pytestmark = pytest.mark.browser

WAIT_MS = 20_000


class ScratchCell:
    """The notebook's second cell: run code in it from the page; cleared afterwards."""

    def __init__(self, widget) -> None:
        self.page = widget.page
        self.cell = widget.panel.locator(".jp-Cell").nth(1)

    def run(self, code: str) -> None:
        self.cell.locator(".cm-content").click()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.insert_text(code)
        expect(self.cell.locator(".cm-content")).to_contain_text(code.split("\n")[0])
        self.page.keyboard.press("ControlOrMeta+Enter")  # run in place


def test_hint_shows_until_the_first_click(view):
    """A second view of ``w`` (a fresh view, as a newcomer gets) shows the hint; a click on a
    neuron removes it for good."""
    scratch = ScratchCell(view)
    try:
        scratch.run("w")
        root = scratch.cell.locator(".cnnx-root[data-ready='1']")
        expect(root).to_have_count(1, timeout=WAIT_MS)
        hint = root.locator(".cnnx-hint")
        expect(hint).to_be_visible()
        expect(hint).to_contain_text("Click any neuron")
        expect(root).to_have_attribute("data-hint", "1")
        element_screenshot(view.page, root, ARTIFACTS / "newcomer-hint.png")
        root.locator('[data-layer="conv_1_1"][data-index="0"]').first.click()
        expect(hint).to_be_hidden(timeout=WAIT_MS)
        expect(root).to_have_attribute("data-hint", "0")
        wait_for(lambda: view.kernel.eval_json("w.selected") is not None, 20, what="selection")
        view.kernel.run("w.selected = None")
        expect(hint).to_be_hidden()  # closing the explanation does not bring it back
    finally:
        scratch.run("# scratch")
        expect(scratch.cell.locator(".cnnx-root")).to_have_count(0, timeout=WAIT_MS)


def test_toolbar_opens_the_hyperparameter_explorer(view):
    k, root = view.kernel, view.root
    button = root.locator(".cnnx-topbar .cnnx-hyper-btn")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "false")
    button.click()
    panel = root.locator(".cnnx-hyper-panel")
    expect(panel).to_be_visible(timeout=WAIT_MS)
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(panel.locator(".cnnx-formula")).to_contain_text("output size")
    # its numbers are the current image's: the patch starts at the centre minus n // 2
    first = panel.locator(".cnnx-hcell").first.inner_text()
    expected = k.eval_json("float(w.image[30, 30, 0])")
    assert abs(float(first) - expected) <= 0.006, (first, expected)
    # an invalid stride is explained in words
    stride = panel.locator(".cnnx-hyper-param").nth(3).locator("input[type=number]")
    stride.fill("3")
    stride.press("Tab")  # commit, as a user leaving the box
    expect(panel.locator(".cnnx-hyper-msg")).to_be_visible(timeout=WAIT_MS)
    element_screenshot(view.page, root, ARTIFACTS / "toolbar-hyperparameters.png")
    stride.fill("1")
    stride.press("Tab")  # commit, as a user leaving the box
    expect(panel.locator(".cnnx-hyper-msg")).to_be_hidden(timeout=WAIT_MS)
    panel.locator(".cnnx-hyper-close").click()
    expect(panel).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")


def test_upload_becomes_a_selected_thumbnail_with_its_name_and_crop_notice(view, tmp_path):
    k, root = view.kernel, view.root
    wide = tmp_path / "wide-photo.png"
    Image.new("RGB", (320, 200), (30, 120, 220)).save(wide)
    try:
        root.locator("input.cnnx-upload-input").set_input_files(str(wide))
        wait_for(lambda: k.eval_json("w.image_name") == wide.name, 30, what="the upload in Python")
        thumb = root.locator(f'.cnnx-thumb-upload[data-name="{wide.name}"]')
        expect(thumb).to_be_visible(timeout=WAIT_MS)
        expect(thumb).to_have_class(re.compile(r"\bcnnx-current\b"))
        expect(thumb).to_have_attribute("aria-pressed", "true")
        expect(thumb.locator(".cnnx-thumb-name")).to_have_text(wide.name)
        notice = root.locator(".cnnx-image-notice")
        expect(notice).to_be_visible(timeout=WAIT_MS)
        expect(notice).to_contain_text("320×200")
        expect(notice).to_contain_text("centre-cropped")
        assert k.eval_json("w.image_info.cropped") is True
        # no other thumbnail is selected
        assert root.locator(".cnnx-thumb.cnnx-current").count() == 1
        element_screenshot(view.page, root, ARTIFACTS / "upload-thumbnail-notice.png")
        # a default image: the upload stays in the strip, unselected; the notice goes
        root.locator('button.cnnx-thumb[data-name="koala_1.jpeg"]').click()
        wait_for(lambda: k.eval_json("w.image_name") == "koala", 30, what="koala")
        expect(notice).to_be_hidden(timeout=WAIT_MS)
        expect(thumb).to_have_attribute("aria-pressed", "false")
        # clicking the upload's thumbnail shows it again
        thumb.click()
        wait_for(lambda: k.eval_json("w.image_name") == wide.name, 30, what="the upload again")
        expect(thumb).to_have_attribute("aria-pressed", "true")
    finally:
        k.run(  # the first default image again, as the next tests expect
            "from cnn_explainer_widget.images import default_image_path\n"
            "w.set_image(default_image_path('boat_1.jpeg'), name='lifeboat')"
        )
