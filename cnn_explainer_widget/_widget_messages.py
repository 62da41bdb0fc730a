"""What the page sends: trait updates, and custom messages (uploads, image choices, pings).

`PageMessages` sits between `WidgetState` and `CNNExplainer`: everything the front end sends
arrives here and is validated; nothing a message holds raises. The front end is untrusted.
"""

from __future__ import annotations

from typing import Any

import traitlets

from cnn_explainer_widget import _export
from cnn_explainer_widget._fetch import fetch_replies
from cnn_explainer_widget._uploads import ChunkedUploads, UploadRefused, whole_upload
from cnn_explainer_widget._whyif import OVERLAYS
from cnn_explainer_widget._widget_state import (
    BROWSER_TRAITS,
    COLOR_SCALES,
    WidgetState,
    checked_selection,
)
from cnn_explainer_widget.images import DEFAULT_IMAGES, ImageInfo, default_image_path


class PageMessages(WidgetState):
    """Handles what the front end sends (the base of `CNNExplainer`)."""

    # Set by CNNExplainer.__init__.
    _uploads: ChunkedUploads
    _pictures: _export.Pictures

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply state sent by the front end, refusing anything invalid.

        Only `BROWSER_TRAITS` (``selected``, ``color_scale``, ``ablated``, ``overlay``,
        ``overlay_target``) may be set from the browser. An invalid value is
        dropped (the previous value stays) and the current value is sent back, so the view
        re-synchronises with the kernel.
        """
        accepted: dict[str, Any] = {}
        refused: list[str] = []
        for key, value in sync_data.items() if isinstance(sync_data, dict) else ():
            if key == "selected":
                try:
                    accepted[key] = checked_selection(self._net, value)
                except ValueError:
                    refused.append(key)
            elif key == "color_scale" and isinstance(value, str) and value in COLOR_SCALES:
                accepted[key] = value
            elif key == "ablated":
                try:
                    accepted[key] = self._validate_ablated({"value": value})
                except ValueError:
                    refused.append(key)
            elif key == "overlay" and isinstance(value, str) and value in OVERLAYS:
                accepted[key] = value
            elif key == "overlay_target":
                try:
                    accepted[key] = self._validate_overlay_target({"value": value})
                except traitlets.TraitError:
                    refused.append(key)
            else:
                refused.append(key)
        if accepted:
            super().set_state(accepted)
        resend = [k for k in refused if k in BROWSER_TRAITS]
        if resend:
            self.send_state(resend)

    def _handle_custom_msg(self, *args: Any) -> None:
        """Handle a custom message from the front end: an upload or a default-image choice.

        ipywidgets calls this as ``(content, buffers)`` for every ``"custom"`` comm message;
        the `on_msg` callback form ``(widget, content, buffers)`` is accepted too. A malformed
        message is ignored and a bad upload sets `error`: nothing a message holds raises here.
        """
        if len(args) == 3:
            args = args[1:]
        if len(args) != 2:
            return
        content, buffers = args
        if isinstance(content, dict):
            kind = content.get("type")
            if kind == "ping":
                # The page checks that what it sends arrives (js/src/ui/connection.ts).
                ping = content.get("id")
                if type(ping) is int:
                    self.send({"type": "pong", "id": ping})
            elif kind in ("upload", "upload-chunk"):
                try:
                    if kind == "upload":
                        upload: tuple[str, bytes] | None = whole_upload(content, buffers)
                    else:
                        upload = self._uploads.add(content, buffers)
                except UploadRefused as exc:
                    self.error = str(exc)
                else:
                    if upload is not None:
                        self._use_upload(*upload)
            elif kind in ("picture", "view"):
                self._pictures.handle(content, buffers)
            elif kind == "fetch":
                self._answer_fetch(content)
            elif kind == "choose":
                index = content.get("index")
                if type(index) is int and 0 <= index < len(DEFAULT_IMAGES):
                    file_name, label = DEFAULT_IMAGES[index]
                    self._show(*self._load(default_image_path(file_name)), label, "default")
            elif kind == "show_top":
                rank = content.get("rank")
                if type(rank) is int and 0 <= rank < len(self._top_images):
                    pixels = self._top_images[rank]
                    info = ImageInfo(pixels.shape[1], pixels.shape[0], pixels.shape[0])
                    self._show(pixels, info, self._top_names[rank], "top")
        # Callbacks a user registered with on_msg still run.
        super()._handle_custom_msg(content, buffers)

    def _answer_fetch(self, content: dict[str, Any]) -> None:
        """Send the exact maps a view asked for (`cnn_explainer_widget._fetch`)."""
        with self._update_lock:  # the activations and the seq the page was sent, together
            acts, seq = self._acts, self._activations["seq"]
        for reply, buffers in fetch_replies(self._net, acts, seq, content):
            self.send(reply, buffers)

    def _use_upload(self, name: str, data: bytes) -> None:
        # Decoding a large photo can take a second: say so in the view while it runs.
        self.busy = True
        try:
            pixels, info = self._load(data)
        except (ValueError, TypeError) as exc:
            self.error = f"Could not use {name}: {exc}"
            return
        finally:
            self.busy = False
        self._show(pixels, info, name, "upload")
