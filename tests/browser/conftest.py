"""Fixtures for the real-browser tests: one JupyterLab, one Chromium, one page with the widget.

The whole browser suite shares one server, one browser and one notebook page (the widget cell is
run once from the UI, which is what renders it); tests talk to the same kernel through a second
kernel client. Each test leaves a screenshot and its slice of the browser console under
``tests/artifacts/`` (git-ignored). Missing Playwright or Chromium is a failure, not a skip: CI
installs both.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from .cnnx_lab import (
    ARTIFACTS,
    CHROMIUM,
    WIDGET_CELL,
    LabServer,
    WidgetPage,
    launch_chromium,
    wait_for,
    write_notebook,
)

NB = "widget.ipynb"


def artifact_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name).strip("_")


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    write_notebook(root / NB, [WIDGET_CELL, "# scratch"])
    server = LabServer(root).start()
    yield server
    server.stop()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "jupyter-lab.log").write_text(server.log_tail(200_000))


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # CI installs the test extra: a missing Playwright is a failure
        pytest.fail(f"playwright is not importable ({exc}); pip install -e '.[test]'", False)
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing; apt-get install -y chromium", pytrace=False)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = launch_chromium(p, profile)
        yield ctx
        ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def widget(chromium, lab_server):
    """The widget shown in a JupyterLab page; ``widget.kernel`` talks to its kernel."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page()
    wp = WidgetPage(lab_server, page, NB)
    try:
        wp.show_widget()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "session-setup-failed.png"))
        (ARTIFACTS / "session-setup-failed-console.log").write_text("\n".join(wp.console))
        raise
    page.screenshot(path=str(ARTIFACTS / "first-render.png"))
    print(f"widget ready: {wp.timings}")
    yield wp
    wp.close()
    page.close()


@pytest.fixture(autouse=True)
def browser_artifacts(request, widget):
    """A screenshot and the console lines of every browser test, pass or fail."""
    start = len(widget.console)
    yield
    name = artifact_name(request.node.name)
    lines = widget.console[start:]
    try:
        widget.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    finally:
        (ARTIFACTS / f"{name}-console.log").write_text("\n".join(lines))
    # an uncaught exception in the page is a failure of the test that caused it
    crashes = [line for line in lines if line.startswith("pageerror:")]
    if crashes:
        pytest.fail("uncaught errors in the page:\n" + "\n".join(crashes), pytrace=False)


@pytest.fixture
def view(widget):
    """The widget with no neuron selected and no detail open, as each test expects to start."""
    k = widget.kernel
    root = widget.root
    if k.eval_json("w.selected") is not None:
        k.run("w.selected = None")
    wait_for(lambda: root.get_attribute("data-detail") in ("", None), 20, what="detail closed")
    return widget
