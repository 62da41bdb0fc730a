"""Explanations that travel: the widget as one self-contained HTML file, and the notebook export.

`to_html` writes the widget's state (network weights, the current image's activations, colour
scale, selection) and the front end's bundle into one HTML page that needs nothing else: no
kernel, no CDN, no network request (its Content-Security-Policy forbids any). The page hands
the state to the bundle's `mountSaved`, which drives the ordinary view through a model living in
the page; every explanation is computed there from the data it holds.

`notebook_fallback_html` is the second output the widget adds when it is displayed in a notebook:
in a live front end it stays empty and hidden; in an HTML export of the notebook (nbconvert, which
embeds the saved widget state but loads the widget renderer from a CDN), it renders the widget
from that state and the bundle saved inside it, offline.
"""

from __future__ import annotations

import base64
import html
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipywidgets.widgets.widget import _remove_buffers

if TYPE_CHECKING:
    from cnn_explainer_widget._widget import CNNExplainer

_STATIC = Path(__file__).parent / "static"

#: Traits a saved copy does not need: the bundle and its CSS travel separately, the rest is
#: ipywidgets bookkeeping.
_SKIP = {"_esm", "_css", "layout", "_dom_classes", "tabbable", "tooltip"}

#: Nothing may be fetched: scripts and styles are inline, images are data or blob URLs.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' blob:; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)


def saved_state(widget: CNNExplainer) -> dict[str, Any]:
    """The widget's state as ipywidgets saves it: JSON plus base64 buffers with their paths.

    Default-image thumbnails are left out (choosing one needs the kernel) and ``error``/``busy``
    are cleared.
    """
    state = {k: v for k, v in widget.get_state().items() if k not in _SKIP}
    state.update(_thumbnails=[], error="", busy=False)
    plain, paths, buffers = _remove_buffers(state)
    return {
        "state": plain,
        "buffers": [
            {"path": p, "encoding": "base64", "data": base64.b64encode(b).decode("ascii")}
            for p, b in zip(paths, buffers, strict=True)
        ],
    }


def _script_json(value: Any) -> str:
    # Inside <script>, "</" could end the element early: \u003c keeps the JSON equal.
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def describe(widget: CNNExplainer) -> str:
    """One line naming the network, the image and the prediction (with its probability)."""
    probs = widget.probabilities
    top = widget.prediction
    return (
        f"{widget.network.name}: {widget.image_name} → {top} ({probs[top]:.0%})"
        if widget.network.name
        else f"{widget.image_name} → {top} ({probs[top]:.0%})"
    )


_LOADER = """
const esm = JSON.parse(document.getElementById("cnnx-esm").textContent);
const saved = JSON.parse(document.getElementById("cnnx-state").textContent);
const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
const mod = await import(url);
mod.mountSaved(document.getElementById("cnnx-widget"), saved, mod.default.render);
"""


def to_html(widget: CNNExplainer, title: str | None = None) -> str:
    """One self-contained HTML page showing ``widget`` as it is now, explained without a kernel.

    Parameters
    ----------
    widget:
        The widget to save: its network, current image, colour scale and selection.
    title:
        The page title; default: the network, the image and the prediction.

    Returns
    -------
    str
        The page. It loads nothing from anywhere (no CDN, no network request) and works from a
        ``file://`` URL.
    """
    line = describe(widget)
    title = title if title is not None else f"CNN Explainer: {line}"
    css = (_STATIC / "widget.css").read_text(encoding="utf-8")
    esm = (_STATIC / "widget.js").read_text(encoding="utf-8")
    css = css.replace("</", "<\\/")  # a "</style" inside would end the element
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cnn-explainer-widget">
<title>{html.escape(title)}</title>
<style>
body {{ margin: 16px; background: #fff; }}
.cnnx-export-caption {{ font: 13px system-ui, sans-serif; color: #555; margin: 0 0 8px; }}
</style>
<style>{css}</style>
</head>
<body>
<p class="cnnx-export-caption">{html.escape(line)}</p>
<div id="cnnx-widget"></div>
<noscript>{html.escape(line)}. This saved CNN Explainer needs JavaScript.</noscript>
<script type="application/json" id="cnnx-state">{_script_json(saved_state(widget))}</script>
<script type="application/json" id="cnnx-esm">{_script_json(esm)}</script>
<script type="module">{_LOADER}</script>
</body>
</html>
"""


def save_html(widget: CNNExplainer, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write `to_html` to ``path`` (UTF-8); return the path."""
    path = Path(path)
    path.write_text(to_html(widget, title), encoding="utf-8")
    return path


# ---- the notebook export --------------------------------------------------------------------

#: Runs where the output is shown. Live front ends have no saved widget state in the page: the
#: output hides itself. An nbconvert HTML export embeds the state (a
#: ``application/vnd.jupyter.widget-state+json`` script): the widget is rendered from it, with
#: the bundle saved in it, and the export's own widget view of this model is removed so that a
#: renderer fetched online does not draw it a second time.
_FALLBACK_JS = """
(() => {
  const id = %(id)s, me = document.currentScript, host = me.parentElement;
  const area = host.closest(".jp-OutputArea-child, .output_area");
  const hide = () => { host.hidden = true; if (area) area.style.display = "none"; };
  const states = [...document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-state+json"]')];
  if (!states.length && document.readyState !== "loading") { hide(); return; }
  const go = async () => {
    let entry = null;
    for (const s of document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-state+json"]')) {
      try { entry = JSON.parse(s.textContent).state[id] || entry; } catch (e) {}
    }
    if (!entry || typeof entry.state?._esm !== "string") { hide(); return; }
    for (const v of document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]')) {
      try {
        if (JSON.parse(v.textContent).model_id === id) {
          const out = v.closest(".jp-OutputArea-child, .output_area");
          if (out && out !== area) out.remove(); else v.remove();
        }
      } catch (e) {}
    }
    const url = URL.createObjectURL(new Blob([entry.state._esm], { type: "text/javascript" }));
    const mod = await import(url);
    const el = host.querySelector(".cnnx-saved");
    el.hidden = false;
    host.querySelector(".cnnx-saved-text").remove();
    mod.mountSaved(el, entry, mod.default.render);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go);
  else go();
})();
"""


def notebook_fallback_html(widget: CNNExplainer) -> str:
    """The widget's second notebook output: empty in a live front end, the widget in an export.

    Until its script runs it reads as one line (network, image, prediction), so an export viewed
    without JavaScript still says what the widget showed.
    """
    model_id = json.dumps(widget.model_id)
    return (
        '<div class="cnnx-saved-host">'
        f'<div class="cnnx-saved-text">CNN Explainer · {html.escape(describe(widget))}</div>'
        '<div class="cnnx-saved" hidden></div>'
        f"<script>{_FALLBACK_JS % {'id': model_id}}</script>"
        "</div>"
    )


# ---- pictures ----------------------------------------------------------------------------------

#: Largest picture accepted back from the page.
MAX_PICTURE_BYTES = 10 * 1024 * 1024
PICTURE_VIEWS = ("overview", "detail")
_SIGNATURES = {"png": (b"\x89PNG\r\n\x1a\n",), "svg": (b"<svg",)}


class PendingPicture(Future):  # type: ignore[type-arg]
    """A picture the displayed view is asked for; done once the file is written.

    The page answers between cells (a kernel handles messages from the page only when idle), so
    the file appears right after the cell that asked for it finishes; ``result()`` in a later
    cell returns its path, or raises the reason it could not be made.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def __repr__(self) -> str:
        if not self.done():
            return f"<picture {self.path.name}: written by the displayed view when this cell ends>"
        exc = self.exception()
        return f"<picture {self.path}: {'failed: ' + str(exc) if exc else 'written'}>"


class Pictures:
    """Python's side of pictures taken in the page: requests out, files in."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self._send = send
        self._pending: dict[int, tuple[PendingPicture, str, threading.Timer]] = {}
        self._next = 1
        #: Views the page says are displayed (each says hello when drawn, goodbye when removed).
        self.views = 0

    def request(
        self, path: str | os.PathLike[str], view: str, scale: float, light: bool, timeout: float
    ) -> PendingPicture:
        """Ask the displayed view(s) for a picture; the first answer is written to ``path``."""
        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in _SIGNATURES:
            raise ValueError(f"save_image writes .png or .svg files, got {path.name!r}")
        if view not in PICTURE_VIEWS:
            raise ValueError(f"view must be one of {PICTURE_VIEWS}, got {view!r}")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0.25 <= scale <= 8:
            raise ValueError(f"scale must be a number in [0.25, 8], got {scale!r}")
        if not path.parent.is_dir():
            raise ValueError(f"the folder {str(path.parent)!r} does not exist")
        if self.views <= 0:
            raise RuntimeError(
                "save_image needs the widget displayed in a notebook page: the page draws the "
                "picture. Show the widget (put `w` at the end of a cell), then call save_image "
                "in a later cell."
            )
        pid, self._next = self._next, self._next + 1
        pending = PendingPicture(path)
        timer = threading.Timer(timeout, self._expire, (pid, timeout))
        timer.daemon = True
        self._pending[pid] = (pending, fmt, timer)
        timer.start()
        self._send(
            {
                "type": "picture-request",
                "id": pid,
                "target": view,
                "format": fmt,
                "scale": float(scale),
                "light": bool(light),
            }
        )
        return pending

    def _expire(self, pid: int, timeout: float) -> None:
        entry = self._pending.pop(pid, None)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(
                TimeoutError(
                    f"no displayed view answered within {timeout:g} s (is the widget still "
                    "shown in an open notebook page, and its kernel connected?)"
                )
            )

    def handle(self, content: dict[str, Any], buffers: Any) -> None:
        """A message from the page: a view's hello/goodbye, or a picture it took."""
        if content.get("type") == "view":
            shown = content.get("shown")
            if shown is True:
                self.views += 1
            elif shown is False:
                self.views = max(0, self.views - 1)
            return
        pid = content.get("id")
        entry = self._pending.pop(pid, None) if type(pid) is int else None
        if entry is None:
            return  # another view answered first, or too late
        pending, fmt, timer = entry
        timer.cancel()
        if content.get("ok") is not True:
            error = content.get("error")
            reason = error[:300] if isinstance(error, str) else "the page could not draw it"
            pending.set_exception(RuntimeError(f"no picture: {reason}"))
            return
        try:
            data = bytes(memoryview(buffers[0])) if len(buffers) == 1 else b""
        except (TypeError, IndexError):
            data = b""
        if not data or len(data) > MAX_PICTURE_BYTES or not data.startswith(_SIGNATURES[fmt]):
            pending.set_exception(RuntimeError(f"the page sent no valid {fmt.upper()} file"))
            return
        try:
            pending.path.write_bytes(data)
        except OSError as exc:
            pending.set_exception(exc)
            return
        pending.set_result(pending.path)
