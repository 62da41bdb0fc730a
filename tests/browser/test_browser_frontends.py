"""Front ends besides JupyterLab, in a real Chromium: Jupyter Notebook 7 and marimo. In each, the
widget renders (once), a click reaches Python, and an image set from Python redraws the view.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import (
    ARTIFACTS,
    FIRST_RENDER_S,
    IMAGES,
    WIDGET_CELL,
    Fatal,
    LabServer,
    WidgetPage,
    wait_for,
    write_notebook,
)

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
KOALA = str(IMAGES / "koala_1.jpeg")


@pytest.fixture(autouse=True)
def browser_artifacts():
    """These tests use their own servers and pages, and save their own screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield


def test_notebook7_renders_clicks_reach_python_and_python_redraws(chromium, tmp_path):
    write_notebook(tmp_path / "nb7.ipynb", [WIDGET_CELL])
    server = LabServer(tmp_path, app="notebook").start()
    page = chromium.new_page()
    wp = WidgetPage(server, page, "nb7.ipynb")
    try:
        wp.show_widget()
        k, root = wp.kernel, wp.root
        cell = wp.panel.locator(".jp-Cell").first
        expect(cell.locator(".cnnx-root")).to_have_count(1)  # the export fallback stays hidden
        expect(cell.locator(".cnnx-saved-host")).to_be_hidden()
        root.locator('[data-layer="conv_1_2"][data-index="6"]').first.click()
        wait_for(
            lambda: k.eval_json("w.selected") == {"layer": "conv_1_2", "index": 6},
            20,
            what="the click in Python",
        )
        expect(root).to_have_attribute("data-connection", "ok", timeout=WAIT_MS)
        k.run(f"w.image = {KOALA!r}")
        expect(root).to_have_attribute("data-prediction", "koala", timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "frontend-notebook7.png"))
    finally:
        wp.close()
        page.close()
        server.stop()
        (ARTIFACTS / "jupyter-notebook7.log").write_text(server.log_tail(100_000))


MARIMO_APP = f"""
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    from cnn_explainer_widget import CNNExplainer

    cx = CNNExplainer()
    view = mo.ui.anywidget(cx)
    return cx, mo, view


@app.cell
def _(view):
    view
    return


@app.cell
def _(cx, mo):
    koala = mo.ui.button(label="koala from Python", on_click=lambda _: cx.set_image({KOALA!r}))
    koala
    return


@app.cell
def _(cx, mo, view):
    view.value
    mo.md(f"python-selected: {{(cx.selected or {{}}).get('layer')}}/{{(cx.selected or {{}}).get('index')}}")
    return
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_marimo_renders_clicks_reach_python_and_python_redraws(chromium, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(MARIMO_APP))
    port = _free_port()
    log = open(tmp_path / "marimo.log", "wb")  # noqa: SIM115 - closed below
    env = dict(os.environ, JAX_PLATFORMS="cpu", MARIMO_SKIP_UPDATE_CHECK="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "marimo", "run", str(app), "--headless", "--host", "127.0.0.1",
         "-p", str(port), "--no-token"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True,
    )  # fmt: skip
    page = chromium.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise Fatal((tmp_path / "marimo.log").read_text()[-3000:])
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(up, 60, 0.2, "marimo to listen")
        page.goto(f"http://127.0.0.1:{port}/")
        root = page.locator(".cnnx-root[data-ready='1']")
        expect(root).to_have_count(1, timeout=FIRST_RENDER_S * 1e3)
        root.locator('[data-layer="conv_2_1"][data-index="3"]').first.click()
        expect(page.get_by_text("python-selected: conv_2_1/3")).to_be_visible(timeout=WAIT_MS)
        page.get_by_role("button", name="koala from Python").click()
        expect(root).to_have_attribute("data-prediction", "koala", timeout=WAIT_MS)
        # no false alarm: marimo carries the page's pings to Python and the answers back
        expect(root).to_have_attribute("data-connection", "ok", timeout=WAIT_MS)
        expect(root.locator(".cnnx-connection")).to_be_hidden()
        page.screenshot(path=str(ARTIFACTS / "frontend-marimo.png"), full_page=True)
    finally:
        page.close()
        (ARTIFACTS / "frontend-marimo-console.log").write_text("\n".join(console))
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        (ARTIFACTS / "marimo.log").write_bytes((tmp_path / "marimo.log").read_bytes())
