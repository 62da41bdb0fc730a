"""The saved HTML page (``CNNExplainer.save_html``) in a real Chromium, from ``file://``, with every
request that is not a ``file://`` URL blocked: it renders, predicts, restores the colour scale and
the selection, and explains a conv and an output neuron without any kernel.

No JupyterLab here: the page is opened directly (this module replaces the suite's per-test
artifacts fixture, which needs the notebook page).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from cnn_explainer_widget import CNNExplainer

from .cnnx_lab import ARTIFACTS, IMAGES

pytestmark = pytest.mark.browser

WAIT_MS = 20_000


@pytest.fixture(autouse=True)
def browser_artifacts():
    """No notebook page here; each test saves its own screenshot."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    w = CNNExplainer(IMAGES / "koala_1.jpeg")
    w.color_scale = "module"
    w.selected = {"layer": "conv_2_1", "index": 3, "y": 5, "x": 7}
    path = w.save_html(tmp_path_factory.mktemp("export") / "koala.html")
    return w, path


@pytest.fixture
def offline_page(chromium, saved):
    """A page that may load ``file://`` URLs only; every other request is aborted and recorded."""
    page = chromium.new_page()
    blocked: list[str] = []
    console: list[str] = []

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.goto(saved[1].as_uri())
    yield page, blocked, console
    page.close()
    assert not blocked, f"the saved page made network requests: {blocked}"
    errors = [c for c in console if c.startswith(("pageerror", "error"))]
    assert not errors, errors


def neuron(root, layer: str, index: int):
    return root.locator(f'[data-layer="{layer}"][data-index="{index}"]').first


def test_saved_html_renders_predicts_and_explains_offline(offline_page, saved):
    page, blocked, _ = offline_page
    w, _ = saved
    root = page.locator(".cnnx-root[data-ready='1']")
    expect(root).to_be_visible(timeout=WAIT_MS)
    # the state at save time: prediction, colour scale, the selected neuron's view
    expect(root).to_have_attribute("data-prediction", w.prediction)
    assert w.prediction == "koala"
    expect(root).to_have_attribute("data-color-scale", "module")
    expect(root.locator('.cnnx-detail[data-layer="conv_2_1"]')).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".cnnx-export-caption")).to_contain_text("koala")
    page.screenshot(path=str(ARTIFACTS / "export-html-loaded.png"), full_page=True)

    # a conv neuron: its math view computes the same number as the kernel did
    neuron(root, "conv_1_2", 4).click()
    detail = root.locator('.cnnx-detail[data-layer="conv_1_2"]')
    expect(detail).to_be_visible(timeout=WAIT_MS)
    out = detail.locator(".cnnx-math-output").first
    expect(out).to_have_attribute("data-value", re.compile(r"\S"))
    # the window slides by itself: read position and value together
    y, x, value = out.evaluate("e => [+e.dataset.y, +e.dataset.x, +e.dataset.value]")
    assert abs(value - float(w.activations["conv_1_2"][y, x, 4])) <= 1e-4
    # the sliding window works without a kernel: one step moves the position
    detail.get_by_role("button", name="step forward one position").click()
    expect(out).not_to_have_attribute("data-x", str(x), timeout=WAIT_MS)
    detail.screenshot(path=str(ARTIFACTS / "export-html-conv.png"))

    # an output neuron: flatten, weights, logit, softmax
    neuron(root, "output", 5).click()
    detail = root.locator('.cnnx-detail[data-layer="output"]')
    expect(detail).to_be_visible(timeout=WAIT_MS)
    expect(detail).to_contain_text("koala")
    detail.screenshot(path=str(ARTIFACTS / "export-html-output.png"))

    # the colour scale still switches (locally)
    root.locator('.cnnx-scale-btn[data-scale="global"]').click()
    expect(root).to_have_attribute("data-color-scale", "global")
    assert not blocked


def test_saved_html_disables_kernel_controls_with_a_reason(offline_page, tmp_path):
    page, _, _ = offline_page
    root = page.locator(".cnnx-root[data-ready='1']")
    expect(root).to_be_visible(timeout=WAIT_MS)
    note = root.locator(".cnnx-offline-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("without a kernel")
    expect(root.locator("button.cnnx-upload")).to_have_attribute(
        "title", re.compile("need the notebook")
    )
    upload = root.locator("button.cnnx-upload")
    expect(upload).to_be_disabled()
    # a file given anyway (the hidden input, as a drop would) is answered, not silently lost
    png = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    root.locator("input.cnnx-upload-input").set_input_files(str(png))
    expect(root.locator(".cnnx-error")).to_contain_text("need the notebook", timeout=WAIT_MS)
    expect(root).to_have_attribute("data-prediction", "koala")
    page.screenshot(path=str(ARTIFACTS / "export-html-offline-note.png"))


# ---- the notebook's own HTML export ------------------------------------------------------------

EXPORT_CELLS = [
    "from cnn_explainer_widget import CNNExplainer\nw = CNNExplainer()\nw",
    # a later cell changes the state: the export shows the state the notebook ended with
    "from cnn_explainer_widget.images import default_image_path\n"
    "w.image = default_image_path('koala_1.jpeg')\n"
    "w.selected = {'layer': 'conv_1_1', 'index': 2}\nw.prediction",
]


def open_file_only(chromium, html):
    """``html`` opened in a page that may load ``file://`` URLs only: every other request is
    aborted and recorded in ``blocked``; uncaught page errors go to ``errors``."""
    page = chromium.new_page()
    blocked: list[str] = []
    errors: list[str] = []
    page.route(
        "**/*",
        lambda r: (
            r.continue_()
            if r.request.url.startswith("file://")
            else (blocked.append(r.request.url), r.abort())
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri())
    return page, blocked, errors


def test_nbconvert_export_shows_the_widget_offline(chromium, tmp_path):
    import os
    import subprocess
    import sys

    from .cnnx_lab import write_notebook

    nb = write_notebook(tmp_path / "tour.ipynb", EXPORT_CELLS)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", str(nb)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    html = tmp_path / "tour.html"
    page, blocked, errors = open_file_only(chromium, html)
    try:
        root = page.locator(".cnnx-root[data-ready='1']")
        expect(root).to_have_count(1, timeout=WAIT_MS)  # once, not twice
        expect(root).to_have_attribute("data-prediction", "koala")
        expect(root).to_have_attribute("data-detail", "conv_1_1")
        neuron(root, "output", 5).click()
        expect(root.locator('.cnnx-detail[data-layer="output"]')).to_be_visible(timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "export-nbconvert-offline.png"), full_page=True)
    finally:
        page.close()
    # the export's template asks CDNs for its renderer; offline those fail, the widget does not
    assert all(not u.startswith("file://") for u in blocked)
    assert not errors, errors


def test_live_lab_shows_the_widget_once(widget):
    """The export's fallback output hides itself in a live front end (no saved state there)."""
    cell = widget.panel.locator(".jp-Cell").first
    expect(cell.locator(".cnnx-root")).to_have_count(1)
    host = cell.locator(".cnnx-saved-host")
    expect(host).to_have_count(1)
    expect(host).to_be_hidden()
    shown = host.evaluate("e => getComputedStyle(e.closest('.jp-OutputArea-child')).display")
    assert shown == "none"


def test_lab_saved_widget_state_exports_the_widget_offline(chromium, lab_server, tmp_path):
    """JupyterLab with "Save Widget State Automatically" on: the notebook saved from Lab, exported
    by nbconvert without re-running it, shows the widget offline as it was when saved."""
    import json
    import os
    import subprocess
    import sys

    from .cnnx_lab import WidgetPage, write_notebook

    settings = lab_server.root / ".lab-settings" / "@jupyter-widgets" / "jupyterlab-manager"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    nb = "lab-saved-state.ipynb"
    write_notebook(lab_server.root / nb, [EXPORT_CELLS[0]])
    page = chromium.new_page()
    wp = WidgetPage(lab_server, page, nb)
    try:
        root = wp.show_widget()
        wp.kernel.run("w.image = __import__('cnn_explainer_widget').images.default_image_path("
                      "'koala_1.jpeg')")  # fmt: skip
        expect(root).to_have_attribute("data-prediction", "koala", timeout=WAIT_MS)
        neuron(root, "conv_1_1", 2).click()  # a selection made in the page
        expect(root).to_have_attribute("data-detail", "conv_1_1", timeout=WAIT_MS)
        wp.panel.locator(".jp-Cell .jp-InputPrompt").first.click()  # not the widget: that closes
        expect(root).to_have_attribute("data-detail", "conv_1_1")
        page.keyboard.press("Control+s")

        def saved_with_state() -> bool:
            meta = json.loads((lab_server.root / nb).read_text()).get("metadata", {})
            return "application/vnd.jupyter.widget-state+json" in meta.get("widgets", {})

        from .cnnx_lab import wait_for

        wait_for(saved_with_state, 30, 0.3, "the notebook saved with its widget state")
    finally:
        wp.close()
        page.close()
        (settings / "plugin.jupyterlab-settings").unlink()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir",
         str(tmp_path), str(lab_server.root / nb)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    html = tmp_path / "lab-saved-state.html"
    page, blocked, errors = open_file_only(chromium, html)
    try:
        root = page.locator(".cnnx-root[data-ready='1']")
        expect(root).to_have_count(1, timeout=WAIT_MS)  # once, not twice
        expect(root).to_have_attribute("data-prediction", "koala")  # the state when saved
        expect(root).to_have_attribute("data-detail", "conv_1_1")
        neuron(root, "output", 5).click()
        expect(root.locator('.cnnx-detail[data-layer="output"]')).to_be_visible(timeout=WAIT_MS)
        expect(root).to_have_attribute("data-settled", "1", timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "export-lab-saved-state-offline.png"), full_page=True)
    finally:
        page.close()
    assert all(not u.startswith("file://") for u in blocked)
    assert not errors, errors
