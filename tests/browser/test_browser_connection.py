"""What the page sends arrives, or the user is told: large uploads in a real JupyterLab (its
websocket drops messages over 10 MiB), and the banner after a kernel restart made outside the page.
"""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, IMAGES, WIDGET_CELL, Fatal, WidgetPage, wait_for, write_notebook

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
MIB = 1024 * 1024
RESTORE = (
    "from cnn_explainer_widget.images import DEFAULT_IMAGES, default_image_path\n"
    "w.set_image(default_image_path(DEFAULT_IMAGES[0][0]), DEFAULT_IMAGES[0][1])"
)

TRACE_THREADS = """
import threading, cnn_explainer_widget._uploads as _cnnx_uploads
_cnnx_threads, _cnnx_add = [], _cnnx_uploads.ChunkedUploads.add
def _cnnx_traced(self, content, buffers):
    _cnnx_threads.append(threading.current_thread().name)
    return _cnnx_add(self, content, buffers)
_cnnx_uploads.ChunkedUploads.add = _cnnx_traced
"""


def padded_jpeg(path, mib: float):
    """A valid JPEG of ``mib`` MiB: koala_1.jpeg with zeros after its end (decoders ignore them)."""
    data = (IMAGES / "koala_1.jpeg").read_bytes()
    path.write_bytes(data + b"\0" * (int(mib * MIB) - len(data)))
    return path


@pytest.mark.parametrize("mib", [9, 12, 19])
def test_large_upload_arrives(view, tmp_path, mib):
    k, root = view.kernel, view.root
    path = padded_jpeg(tmp_path / f"koala-{mib}mib.jpeg", mib)
    # Which kernel threads handle the pieces (printed: with JupyterLab 4.4+ and ipykernel 7
    # they are often two, see cnn_explainer_widget/_uploads.py).
    k.run(TRACE_THREADS)
    try:
        root.locator("input.cnnx-upload-input").set_input_files(str(path))

        def arrived():
            name, error = k.eval_json("[w.image_name, w.error]")
            if error:
                raise Fatal(f"the {mib} MiB upload was refused: {error}")
            return name == path.name

        wait_for(arrived, 90, 0.3, f"{mib} MiB upload")
        assert k.eval_json("w.prediction") == "koala"
        expect(root).to_have_attribute("data-prediction", "koala", timeout=WAIT_MS)
        # the kernel connection survived: the page still reaches Python
        expect(root.locator(".cnnx-connection")).to_be_hidden()
        assert not view.page.locator("text=Connection lost").is_visible()
        print(f"{mib} MiB: pieces handled on", k.eval_json("_cnnx_threads"))
    finally:
        k.run(RESTORE + "\n_cnnx_uploads.ChunkedUploads.add = _cnnx_add")


def test_upload_over_the_limit_is_refused_in_the_page(view, tmp_path):
    k, root = view.kernel, view.root
    before = k.eval_json("w.image_name")
    path = padded_jpeg(tmp_path / "koala-21mib.jpeg", 21)
    root.locator("input.cnnx-upload-input").set_input_files(str(path))
    error = root.locator(".cnnx-error")
    expect(error).to_be_visible(timeout=WAIT_MS)
    expect(error).to_contain_text("koala-21mib.jpeg")
    expect(error).to_contain_text("uploads up to 20,971,520 bytes")
    assert k.eval_json("w.image_name") == before


def test_banner_after_kernel_restart_through_rest_api(chromium, lab_server):
    """A restart made outside the page: the page's messages no longer reach Python, and says so."""
    nb = "restart.ipynb"
    write_notebook(lab_server.root / nb, [WIDGET_CELL])
    page = chromium.new_page()
    wp = WidgetPage(lab_server, page, nb)
    try:
        wp.show_widget()
        root = wp.root
        banner = root.locator(".cnnx-connection")
        # connected: a click is acknowledged, no banner
        root.locator('[data-layer="conv_1_1"][data-index="1"]').first.click()
        expect(root).to_have_attribute("data-connection", "ok", timeout=WAIT_MS)
        expect(banner).to_be_hidden()

        lab_server.api(f"kernels/{wp.kernel_id}/restart", method="POST")
        lab_server.idle_kernel_for(nb)
        root.locator('[data-layer="conv_2_1"][data-index="3"]').first.click()
        # the view still explains from the page's data...
        expect(root.locator('.cnnx-detail[data-layer="conv_2_1"]')).to_be_visible(timeout=WAIT_MS)
        # ...and within a few seconds says that Python did not get the click
        expect(root).to_have_attribute("data-connection", "lost", timeout=15_000)
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("re-run the cell")
        page.screenshot(path=str(ARTIFACTS / "connection-lost-banner.png"))
        root.locator('[data-layer="output"][data-index="5"]').first.click()
        expect(root.locator('.cnnx-detail[data-layer="output"]')).to_be_visible(timeout=WAIT_MS)
    finally:
        wp.close()
        page.close()
