"""JupyterLab + Debian Chromium machinery shared by the browser tests and the benchmarks.

Plain Python (no pytest), so ``bench/*.py`` can import it too:

* `LabServer`: ``jupyter lab`` on 127.0.0.1 with an OS-chosen port and isolated config, runtime,
  settings, workspace and IPython dirs; the news pop-up is disabled; the real port is read back
  from ``jpserver-<pid>.json``. Stopped by process group.
* `launch_chromium`: Debian's ``/usr/bin/chromium`` through Playwright with a fresh profile.
* `WidgetPage`: one notebook opened in the page, its widget cell run from the UI (only cells run in
  the page get rendered outputs), and a second kernel client on the same kernel to read Python's
  state (``eval_json``) and drive it (``run``).

Everything waits on DOM hooks or on the kernel, never on fixed sleeps.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "cnn_explainer_widget" / "images"
#: Screenshots and console logs of the browser tests (git-ignored).
ARTIFACTS = Path(os.environ.get("CNNX_ARTIFACTS", REPO / "tests" / "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDGET_CELL = "from cnn_explainer_widget import CNNExplainer\nw = CNNExplainer()\nw"
#: First render pays kernel start, JAX compile and the bundle load on a busy 2-core machine.
FIRST_RENDER_S = 90.0


class Fatal(RuntimeError):
    """Raised inside a `wait_for` predicate to stop polling at once."""


def wait_for(
    pred: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``pred`` until it returns a truthy value; raise TimeoutError with the last error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = pred()
            if value:
                return value
            last = value
        except Fatal:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


class LabServer:
    """A JupyterLab server in ``root``, isolated from the user's own Jupyter set-up.

    ``app="notebook"`` starts Jupyter Notebook 7 instead (same server, other page URLs).
    """

    def __init__(self, root: Path, app: str = "lab") -> None:
        self.root = root
        self.app = app
        self.runtime = root / ".jupyter-runtime"
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = root / "jupyter-lab.log"
        self.cache_dir = root / ".cache"

    def start(self, timeout: float = 90.0) -> LabServer:
        cfg = self.root / ".jupyter-config"
        (cfg / "labconfig").mkdir(parents=True, exist_ok=True)
        (cfg / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "LabApp": {
                        "news_url": None,
                        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                    }
                }
            )
        )
        # news_url=None alone still shows the "get notified about news?" toast
        (cfg / "labconfig" / "page_config.json").write_text(
            json.dumps(
                {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
            )
        )
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(cfg),
            JUPYTER_RUNTIME_DIR=str(self.runtime),
            JUPYTERLAB_SETTINGS_DIR=str(self.root / ".lab-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(self.root / ".lab-workspaces"),
            IPYTHONDIR=str(self.root / ".ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            JAX_PLATFORMS="cpu",
            # anything that caches under XDG_CACHE_HOME stays inside this test server
            XDG_CACHE_HOME=str(self.cache_dir),
        )
        cmd = [
            sys.executable, "-m", "jupyter", self.app, "--no-browser",
            "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
        ]  # fmt: skip
        if os.geteuid() == 0:  # CI runs as root
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        info_file = self.runtime / f"jpserver-{self.proc.pid}.json"

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise Fatal(f"jupyter lab exited:\n{self.log_tail()}")
            if not info_file.exists():
                return False
            self.url = f"http://127.0.0.1:{json.loads(info_file.read_text())['port']}"
            return self.api("status") is not None

        t0 = time.perf_counter()
        wait_for(listening, timeout, 0.2, "jupyter lab to listen")
        self.startup_s = time.perf_counter() - t0
        return self

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "_log"):
            self._log.close()

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self.url}/api/{path}?token={self.token}", method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def notebook_url(self, nb_path: str) -> str:
        if self.app == "notebook":
            return f"{self.url}/notebooks/{nb_path}?token={self.token}"
        # ?reset: don't restore a previous workspace (other tabs)
        return f"{self.url}/lab/tree/{nb_path}?reset&token={self.token}"

    def idle_kernel_for(self, nb_path: str, timeout: float = FIRST_RENDER_S) -> str:
        """Wait until the UI has a kernel for ``nb_path`` and it is idle; return its id."""

        def find() -> str | None:
            for s in self.api("sessions"):
                if s["path"] == nb_path and s["kernel"]["execution_state"] == "idle":
                    return s["kernel"]["id"]
            if self.proc is not None and self.proc.poll() is not None:
                raise Fatal(f"jupyter lab exited:\n{self.log_tail()}")
            return None

        return wait_for(find, timeout, 0.2, f"an idle kernel for {nb_path}")

    def kernel_client(self, kernel_id: str) -> Kernel:
        from jupyter_client import BlockingKernelClient

        kc = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{kernel_id}.json"))
        kc.load_connection_file()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        return Kernel(kc)


class Kernel:
    """A second client on the kernel the page uses."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc

    def run(self, code: str, timeout: float = 60.0) -> None:
        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok", "\n".join(reply["content"].get("traceback", []))

    def eval_json(self, expr: str, timeout: float = 30.0) -> Any:
        """Evaluate ``expr`` in the kernel; its value must be JSON-serialisable."""
        reply = self.kc.execute_interactive(
            "",
            user_expressions={"v": f"__import__('json').dumps({expr})"},
            timeout=timeout,
            output_hook=lambda m: None,
        )
        value = reply["content"]["user_expressions"]["v"]
        assert value["status"] == "ok", value
        return json.loads(ast.literal_eval(value["data"]["text/plain"]))

    def close(self) -> None:
        self.kc.stop_channels()


def launch_chromium(playwright: Any, profile_dir: Path) -> Any:
    """A persistent Chromium context on Debian's browser (Playwright's own is never installed)."""
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    ctx = playwright.chromium.launch_persistent_context(
        str(profile_dir),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
    ctx.set_default_timeout(30_000)
    return ctx


class WidgetPage:
    """A notebook whose first cell shows the widget, opened and run in a page."""

    def __init__(self, server: LabServer, page: Any, nb_path: str) -> None:
        self.server, self.page, self.nb_path = server, page, nb_path
        self.console: list[str] = []
        self.frames: list[tuple[float, str, bytes | str]] = []  # (perf time, dir, payload)
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page.on("websocket", self._on_websocket)
        self.kernel: Kernel | None = None
        self.timings: dict[str, float] = {}

    def _on_websocket(self, ws: Any) -> None:
        ws.on("framereceived", lambda p: self.frames.append((time.perf_counter(), "in", p)))
        ws.on("framesent", lambda p: self.frames.append((time.perf_counter(), "out", p)))

    @property
    def panel(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:visible")

    @property
    def root(self) -> Any:
        return self.panel.locator(".cnnx-root").first

    def open(self) -> str:
        """Open the notebook, wait for its idle kernel; return the kernel id."""
        t0 = time.perf_counter()
        self.page.goto(self.server.notebook_url(self.nb_path))
        kernel_id = self.server.idle_kernel_for(self.nb_path)
        self.panel.locator(".jp-Cell").first.wait_for(state="visible", timeout=FIRST_RENDER_S * 1e3)
        self.timings["kernel_idle_s"] = time.perf_counter() - t0
        self.kernel_id = kernel_id
        return kernel_id

    def run_cell(self, index: int = 0) -> None:
        """Run cell ``index`` from the UI (click into its editor, Shift+Enter)."""
        cell = self.panel.locator(".jp-Cell").nth(index)
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Shift+Enter")

    def show_widget(self) -> Any:
        """Open, run the widget cell, wait for the first overview; return the root locator."""
        kernel_id = self.open()
        t0 = time.perf_counter()
        self.run_cell(0)
        root = self.panel.locator(".cnnx-root[data-ready='1']").first
        root.wait_for(state="visible", timeout=FIRST_RENDER_S * 1e3)
        self.timings["run_cell_to_ready_s"] = time.perf_counter() - t0
        self.kernel = self.server.kernel_client(kernel_id)
        return root

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.close()


def element_screenshot(page: Any, locator: Any, path: Path | str, margin: int = 250) -> None:
    """Screenshot ``locator`` whole: the viewport grows for a tall element, then is restored.

    JupyterLab's fixed menu and toolbars cover the top of an element taller than the notebook's
    scroll area, so a plain element screenshot of a tall widget is clipped.
    """
    size = page.viewport_size
    box = locator.bounding_box()
    height = int(box["height"]) + margin if box else size["height"]
    if height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": height})
    try:
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(path))
    finally:
        if page.viewport_size != size:
            page.set_viewport_size(size)


# ---- measurement helpers shared by the benchmarks ------------------------------------------------

#: Resolves ``window.__cnnxSeen`` with ``performance.timeOrigin + performance.now()`` (epoch ms,
#: same clock as Python's ``time.time()`` on this machine) the moment ``selector`` matches inside
#: the visible notebook panel, and ``window.__cnnxFrame`` after the next frame was produced
#: (``requestAnimationFrame`` then a task: the frame holding that DOM has been painted).
WATCH_JS = """([selector, attr, value]) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)') || document.body;
  const now = () => performance.timeOrigin + performance.now();
  const hit = () => {
    const el = panel.querySelector(selector);
    return el && (attr === null || el.getAttribute(attr) === value);
  };
  let seenResolve, frameResolve;
  window.__cnnxSeen = new Promise(r => (seenResolve = r));
  window.__cnnxFrame = new Promise(r => (frameResolve = r));
  const done = () => {
    const t = now();
    seenResolve(t);
    requestAnimationFrame(() => setTimeout(() => frameResolve(now()), 0));
  };
  if (hit()) { done(); return; }
  const mo = new MutationObserver(() => { if (hit()) { mo.disconnect(); done(); } });
  mo.observe(panel, {subtree: true, childList: true, attributes: true,
                     attributeFilter: attr === null ? undefined : [attr]});
}"""


def page_clock_offset_ms(page: Any, samples: int = 15) -> float:
    """Page epoch clock minus Python's ``time.time()``, from the tightest of ``samples`` round trips.

    Both read the same system clock here, so this is ~0; it is measured to be sure (the page's
    ``timeOrigin`` is fixed at navigation and its ``now()`` is monotonic).
    """
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t0 = time.time() * 1e3
        tp = page.evaluate("performance.timeOrigin + performance.now()")
        t1 = time.time() * 1e3
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, tp - (t0 + t1) / 2)
    assert best is not None
    return best[1]


class BenchLab:
    """Context manager: a lab server, Chromium and a `WidgetPage` on ``nb_name``, torn down after."""

    def __init__(self, workdir: Path, notebooks: dict[str, list[str]]) -> None:
        self.workdir, self.notebooks = workdir, notebooks

    def __enter__(self) -> BenchLab:
        from playwright.sync_api import sync_playwright

        for name, cells in self.notebooks.items():
            write_notebook(self.workdir / name, cells)
        self.server = LabServer(self.workdir).start()
        self._pw = sync_playwright().start()
        self.ctx = launch_chromium(self._pw, self.workdir / ".chromium-profile")
        return self

    def widget_page(self, nb_name: str) -> WidgetPage:
        """A fresh page (own websocket, own listeners) for notebook ``nb_name``."""
        return WidgetPage(self.server, self.ctx.new_page(), nb_name)

    def __exit__(self, *exc: object) -> None:
        try:
            self.ctx.close()
            self._pw.stop()
        finally:
            self.server.stop()


def watched(page: Any, name: str = "__cnnxSeen", timeout_s: float = 30.0) -> float:
    """Await the promise ``window[name]`` set by `WATCH_JS`, failing after ``timeout_s``."""
    return page.evaluate(
        """([name, ms]) => Promise.race([window[name], new Promise((_, reject) =>
             setTimeout(() => reject(new Error(name + ' not reached in ' + ms + ' ms')), ms))])""",
        [name, timeout_s * 1e3],
    )
