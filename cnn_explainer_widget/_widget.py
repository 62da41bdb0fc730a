"""`CNNExplainer`: the anywidget that shows a network and one image's activations in a cell.

This layer only moves state: it turns images into activations through the pure core
(`images`, `network`, `explain`), sends them as one binary payload per update, and validates
everything the front end sends back (selection, colour scale, uploads, image choices).
"""

from __future__ import annotations

import difflib
import os
import threading
import types
import unicodedata
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from cnn_explainer_widget import _export
from cnn_explainer_widget._protocol import encode_activations, encode_network
from cnn_explainer_widget._text import short
from cnn_explainer_widget._whyif import OVERLAYS, effective_target, overlay_payload, top_payload
from cnn_explainer_widget.attribution import resolve_target
from cnn_explainer_widget.explain import Neuron, explain_neuron
from cnn_explainer_widget.images import (
    DEFAULT_IMAGES,
    ImageInfo,
    default_image_path,
    load_image_with_info,
)
from cnn_explainer_widget.model import as_network
from cnn_explainer_widget.network import Network, SelectionError
from cnn_explainer_widget.scan import scan
from cnn_explainer_widget.tiny_vgg import INPUT_SHAPE, tiny_vgg_network

_STATIC = Path(__file__).parent / "static"

#: Largest upload accepted from the front end, checked before decoding.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest piece of a chunked upload. JupyterLab's websocket drops any message over 10 MiB, so the
#: front end sends files in pieces of 4 MiB (js/src/ui/upload.ts); 8 MiB leaves room.
MAX_CHUNK_BYTES = 8 * 1024 * 1024
#: Colour-range policies for hidden layers (js/src/colors.ts implements them): "unit" one range
#: per conv or dense layer shared with the activation and pooling after it (the original's
#: default), "module" one per block (up to and including a pooling layer), "global" one for all
#: hidden layers, "neuron" one per neuron.
COLOR_SCALES = ("unit", "module", "global", "neuron")
#: Traits the front end may set (anything else it sends is refused).
BROWSER_TRAITS = ("selected", "color_scale", "ablated", "overlay", "overlay_target")
#: Unicode categories replaced in names: controls, format characters, surrogates, private
#: use, unassigned, and line/paragraph separators (other than the space, every Z* but Zs).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Longest image name kept (uploads, paths); longer names are cut with an ellipsis.
MAX_NAME_LENGTH = 80


class InvalidSelection(traitlets.TraitError, SelectionError):
    """A ``selected`` value that does not name a neuron of the network (a `ValueError`)."""


class InvalidAblation(traitlets.TraitError, ValueError):
    """An ``ablated`` value that does not name neurons of the network."""


class _ImageTrait(traitlets.Any):
    """The ``image`` trait: reads give the shown image; assigning any source loads and shows it.

    Observers are notified only once the whole update (image, name, prediction, page) is done.
    """

    def __set__(self, obj: traitlets.HasTraits, value: Any) -> None:
        obj.set_image(value)  # type: ignore[attr-defined]


class CNNExplainer(anywidget.AnyWidget):
    """CNN Explainer in a notebook cell: the whole network for one image, explained.

    Parameters
    ----------
    image:
        What to show first: anything `load_image` accepts. Default: the first default image.
    model:
        The network: None for the shipped Tiny VGG, or a `TinyVGG`, an ``nnx.Sequential`` of
        supported layers, or a `Network`.
    classes:
        Class names for a user's model (one per output).
    input_shape:
        ``(H, W, C)`` of a user's model, if it cannot be inferred.

    Examples
    --------
    >>> w = CNNExplainer()          # doctest: +SKIP
    >>> w.image = "my_cat.jpg"      # doctest: +SKIP
    >>> w.selected_neuron.kernel    # doctest: +SKIP
    """

    # The bundle as text traits, not paths: anywidget watches a path's contents through a
    # class-level signal whose callback holds every instance, so no widget would ever be freed.
    _esm = traitlets.Unicode((_STATIC / "widget.js").read_text(encoding="utf-8")).tag(sync=True)
    _css = traitlets.Unicode((_STATIC / "widget.css").read_text(encoding="utf-8")).tag(sync=True)

    _network = traitlets.Dict(help="py→js, once: network structure and weights.").tag(sync=True)
    _activations = traitlets.Dict(help="py→js, per image: every layer's maps.").tag(sync=True)
    _thumbnails: traitlets.List[dict[str, Any]] = traitlets.List(
        help="py→js, once: the default images."
    ).tag(sync=True)
    _image_notice = traitlets.Unicode(
        "", help="py→js, per image: what was done to it (centre-cropped, scaled up), or ''."
    ).tag(sync=True)

    # Any, not Dict: our validator gives the clear message (and a ValueError) for every bad value.
    selected = traitlets.Any(
        None,
        allow_none=True,
        help=(
            "Both ways. The selected neuron as {'layer': str, 'index': int}, optionally with "
            "'y' and 'x' (a position in its map), or None. A click in the view sets it; setting "
            "it from Python opens that neuron's explanation."
        ),
    ).tag(sync=True)
    color_scale = traitlets.Enum(
        COLOR_SCALES,
        "unit",
        help=(
            "Both ways. Hidden-layer colour range: 'unit' (per conv layer with its ReLU and "
            "pooling, the default), 'module' (per block of convolutions), 'global' (all hidden "
            "layers) or 'neuron' (per neuron)."
        ),
    ).tag(sync=True)
    error = traitlets.Unicode(
        "", help="py→js. A message shown in the widget, e.g. why an upload was refused."
    ).tag(sync=True)
    busy = traitlets.Bool(False, help="py→js. True while the kernel computes an image.").tag(
        sync=True
    )
    # Any, not Dict: the validator gives the clear message for every bad value.
    ablated = traitlets.Any(
        help=(
            "Both ways. Neurons switched off, {layer: [index, ...]} (as activations(ablate=...)):"
            " their outputs are 0 and every later layer is recomputed. A click on a neuron's "
            "on/off control (or the O key on a focused neuron) sets it; {} switches all on."
        ),
    ).tag(sync=True)
    overlay = traitlets.Unicode(
        "none",
        help="Both ways. What is overlaid on the input: 'none', 'saliency' or 'grad_cam'.",
    ).tag(sync=True)
    overlay_target = traitlets.Any(
        None,
        allow_none=True,
        help=(
            "Both ways. Whose saliency / Grad-CAM the overlay shows: None (the predicted "
            "class), a class name or index, 'selected' (the selected neuron, else the "
            "prediction), or a neuron {'layer': str, 'index': int}."
        ),
    ).tag(sync=True)
    _overlay = traitlets.Dict(help="py→js: the overlay map, normalised, and its range.").tag(
        sync=True
    )
    _top = traitlets.Dict(help="py→js: the strip of top images of show_top_activations.").tag(
        sync=True
    )

    # Python-only, read-only state a user can observe: each changes together with the image,
    # whether Python or the page (an upload, a default image) chose it.
    image = _ImageTrait(
        help=(
            "The current input image, (H, W, C) float32 in [0, 1], read-only array. Assign "
            "anything load_image accepts to show another image."
        )
    )
    image_name = traitlets.Unicode(
        read_only=True, help="A short description of the current image (file or default name)."
    )
    prediction = traitlets.Unicode(
        read_only=True, help="The most probable class for the current image."
    )
    probabilities = traitlets.Any(
        read_only=True, help="Class name → probability for the current image (read-only mapping)."
    )

    def __init__(
        self,
        image: Any = None,
        *,
        model: Any = None,
        classes: Sequence[str] | None = None,
        input_shape: tuple[int, int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        _check_keywords(type(self), kwargs)
        network = _network_for(model, classes, input_shape)
        self._net: Network = network
        # One update at a time: two threads (or a thread and the comm) setting the image
        # would otherwise interleave and leave the page on another image than Python's.
        self._update_lock = threading.RLock()
        self._seq = 1
        self._top_images: list[np.ndarray] = []
        self._top_names: list[str] = []
        # A chunked upload being reassembled (at most one, at most MAX_UPLOAD_BYTES).
        self._chunks: dict[str, Any] | None = None
        self._pictures = _export.Pictures(lambda content: self.send(content))
        first_name, first_label = DEFAULT_IMAGES[0]
        if image is None:
            (pixels, info), name = self._load(default_image_path(first_name)), first_label
        else:
            (pixels, info), name = self._load(image), _describe_source(image)
        name = clean_name(name)
        acts = network.activations(pixels)
        self._set_shown(pixels, acts, name)
        self._image_info = info
        super().__init__(
            _network=encode_network(network),
            _activations=encode_activations(network, acts, self._seq, name, "python"),
            _image_notice=info.notice(name),
            _thumbnails=[
                {"name": f, "label": label, "data": default_image_path(f).read_bytes()}
                for f, label in DEFAULT_IMAGES
            ],
            **kwargs,
        )

    def __repr__(self) -> str:
        """What the widget shows: the network, the image, the prediction and the selection."""
        sel = self.selected
        where = "None"
        if sel is not None:
            where = f"{sel['layer']}[{sel['index']}]"
            if "y" in sel:
                where += f" at ({sel['y']}, {sel['x']})"
        p = max(self.probabilities.values())
        return (
            f"CNNExplainer(network={self._net.name!r}, image={self.image_name!r}, "
            f"prediction={self.prediction!r} ({p:.1%}), selected={where})"
        )

    # ---- the image -------------------------------------------------------------------------

    @property
    def network(self) -> Network:
        """The `Network` this widget explains."""
        return self._net

    def set_image(self, source: Any, name: str | None = None) -> None:
        """Show ``source`` (anything `load_image` accepts): one forward pass, one message.

        ``w.image = source`` does the same. Invalid input raises and leaves the widget unchanged.
        """
        pixels, info = self._load(source)
        self._show(pixels, info, name or _describe_source(source), "python")

    def _load(self, source: Any) -> tuple[np.ndarray, ImageInfo]:
        h, w, c = self._net.input_shape
        return load_image_with_info(source, size=h if h == w else (h, w), channels=c)

    def _show(self, pixels: np.ndarray, info: ImageInfo, name: str, source: str) -> None:
        """Compute and show an image: Python's state and the page change together or not at all.

        Updates are serialised. If sending fails (or an observer raises), Python's state goes
        back to the previous image, which the page is asked to show again, and the error is
        raised: Python and the page never disagree.
        """
        name = clean_name(name)
        with self._update_lock:
            ablated = self.ablated or {}
            acts = self._net.activations(pixels, ablate=ablated)
            self._seq += 1
            payload = encode_activations(
                self._net, acts, self._seq, name, source, derive=_derivable(self._net, ablated)
            )
            overlay = self._overlay_for(acts["input"], acts)
            before = (
                self._image,
                self._image_info,
                self._acts,
                self.image_name,
                self._activations,
                self._overlay,
                self.error,
            )
            try:
                self._update(pixels, info, acts, name, payload, overlay, "")
            except BaseException:
                self._states_to_send.clear()
                # Ask the page to show the previous image again; if even that cannot be sent,
                # the page still has it (the failed message never arrived).
                with suppress(Exception):
                    self._update(*before)
                raise

    def _update(
        self,
        pixels: np.ndarray,
        info: ImageInfo,
        acts: dict[str, np.ndarray],
        name: str,
        payload: dict[str, Any],
        overlay: dict[str, Any],
        error: str,
    ) -> None:
        # One message to the page; observers run once everything is set, and see all of it.
        with self.hold_sync(), self.hold_trait_notifications():
            self._set_shown(pixels, acts, name)
            self._image_info = info
            self._activations = payload
            self._overlay = overlay
            self._image_notice = info.notice(name)
            self.error = error

    def _set_shown(self, pixels: np.ndarray, acts: dict[str, np.ndarray], name: str) -> None:
        probs = acts["probabilities"]
        classes = self._net.classes
        pixels = acts["input"]  # the network's own read-only copy of the pixels
        self._image, self._acts = pixels, acts
        self.set_trait("image", pixels)
        self.set_trait("image_name", name)
        self.set_trait("prediction", classes[int(np.argmax(probs))])
        self.set_trait(
            "probabilities",
            types.MappingProxyType({c: float(p) for c, p in zip(classes, probs, strict=True)}),
        )

    # ---- why, what if, which images ----------------------------------------------------------

    @traitlets.default("ablated")
    def _default_ablated(self) -> dict[str, list[int]]:
        return {}

    @traitlets.validate("ablated")
    def _validate_ablated(self, proposal: dict[str, Any]) -> dict[str, list[int]]:
        try:
            off = self._net.normalise_ablation(proposal["value"])
        except ValueError as exc:
            raise InvalidAblation(str(exc)) from None
        return {name: list(indices) for name, indices in off.items()}

    @traitlets.observe("ablated")
    def _ablated_changed(self, change: dict[str, Any]) -> None:
        if hasattr(self, "_image") and change["old"] != change["new"]:
            self._show(self._image, self._image_info, self.image_name, "ablation")

    @traitlets.validate("overlay")
    def _validate_overlay(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        if value not in OVERLAYS:
            raise traitlets.TraitError(f"overlay must be one of {OVERLAYS}, got {short(value)}")
        return value

    @traitlets.validate("overlay_target")
    def _validate_overlay_target(self, proposal: dict[str, Any]) -> Any:
        value = proposal["value"]
        if value is None or (value == "selected" and "selected" not in self._net.classes):
            return value
        try:
            resolve_target(self._net, value)
        except (ValueError, TypeError) as exc:
            raise traitlets.TraitError(f"overlay_target: {exc}") from None
        return dict(value) if isinstance(value, dict) else value

    @traitlets.observe("overlay", "overlay_target")
    def _overlay_changed(self, change: dict[str, Any]) -> None:
        if hasattr(self, "_acts"):
            self._overlay = self._overlay_for(self._image, self._acts)

    @traitlets.observe("selected")
    def _selected_changed(self, change: dict[str, Any]) -> None:
        if self.overlay != "none" and self.overlay_target == "selected" and hasattr(self, "_acts"):
            self._overlay = self._overlay_for(self._image, self._acts)

    def _overlay_for(self, pixels: np.ndarray, acts: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.overlay == "none":
            return {}
        prediction = self._net.classes[int(np.argmax(acts["probabilities"]))]
        target = effective_target(self._net, self.overlay_target, self.selected, prediction)
        return overlay_payload(self._net, pixels, self.overlay, target, self.ablated or {})

    def show_top_activations(
        self,
        images: Any,
        layer: str | None = None,
        index: int | None = None,
        k: int = 9,
        batch_size: int = 256,
        *,
        progress: bool = True,
    ) -> list[tuple[int, float, tuple[int, int]]]:
        """Scan ``images`` for the ``k`` that excite a neuron most and show them in a strip.

        The neuron is ``(layer, index)``, by default the selected one. ``images`` is anything
        `top_activations` takes (an array, a folder, an iterable). Each thumbnail outlines the
        receptive field of the map's maximum; clicking one shows that image in the widget.
        The switched-off neurons (`ablated`) stay on for the scan. Returns the top list, as
        `top_activations` does.
        """
        if layer is None or index is None:
            sel = self.selected
            if sel is None or sel["layer"] == "input":
                raise ValueError(
                    "select a neuron first (click one, or set w.selected) or give layer= and index="
                )
            layer = sel["layer"] if layer is None else layer
            index = sel["index"] if index is None else index
        result = scan(self._net, images, layer, index, k, batch_size, progress=progress,
                      keep_images=True)  # fmt: skip
        assert result.images is not None
        self._top_images = result.images
        self._top_names = [
            f"top {r + 1} of {layer}[{index}] (image {i})" for r, (i, _, _) in enumerate(result.top)
        ]
        self._top = top_payload(self._net, result, layer, index)
        return result.top

    # ---- read-outs -------------------------------------------------------------------------

    @property
    def image_info(self) -> ImageInfo:
        """What loading did to the current image (an `ImageInfo`).

        Its size before, whether it was centre-cropped (``.cropped``) or enlarged
        (``.scaled_up``); the widget shows ``.notice()`` when either is true.
        """
        return self._image_info

    @property
    def activations(self) -> dict[str, np.ndarray]:
        """Every layer's output for the current image (see `cnn_explainer_widget.activations`)."""
        return dict(self._acts)

    @property
    def classes(self) -> list[str]:
        """Class names, in output order."""
        return list(self._net.classes)

    @property
    def selected_neuron(self) -> Neuron | None:
        """The selected neuron's data (map, inputs, kernel, bias, window, value), or None."""
        sel = self.selected
        if sel is None:
            return None
        return explain_neuron(
            self._net, self._acts, sel["layer"], sel["index"], sel.get("y"), sel.get("x")
        )

    # ---- explanations that travel ---------------------------------------------------------

    def to_html(self, title: str | None = None) -> str:
        """Return the widget as one self-contained HTML page that explains without a kernel.

        The page holds the network, the current image's activations, the colour scale and the
        selection, and the front end itself: clicking neurons, the sliding window, hover values
        and the hyperparameter explorer all work offline, from a ``file://`` URL, with no
        network request. Choosing another image needs a kernel and is disabled there.

        Parameters
        ----------
        title:
            The page title; default: the network, the image and the prediction.
        """
        return _export.to_html(self, title)

    def save_html(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write `to_html` to ``path``; return the path."""
        return _export.save_html(self, path, title)

    def save_image(
        self,
        path: str | os.PathLike[str],
        view: str = "overview",
        *,
        scale: float = 2.0,
        light: bool = False,
        timeout: float = 30.0,
    ) -> _export.PendingPicture:
        """Save a picture of the overview or the open explanation view, as PNG or SVG.

        The displayed widget draws it (as its toolbar's picture button does): the file is
        written right after the current cell finishes, as soon as the page answers.

        Parameters
        ----------
        path:
            Where to write it; the extension chooses the format: ``.png`` or ``.svg``.
        view:
            ``"overview"`` (the whole network) or ``"detail"`` (the open explanation view).
        scale:
            Pixels per screen pixel of a PNG (2 by default, for slides and high-DPI screens).
        light:
            Light background and colours whatever the notebook's theme.
        timeout:
            Seconds to wait for the page's answer before giving up.

        Returns
        -------
        PendingPicture
            A `concurrent.futures.Future`: ``result()`` (in a later cell) gives the path or
            raises why there is no picture (no explanation view open, no view answered, ...).

        Raises
        ------
        ValueError
            For an extension other than .png/.svg, an unknown view or a bad scale.
        RuntimeError
            When the widget is not displayed anywhere (the page draws the picture).
        """
        return self._pictures.request(path, view, scale, light, timeout)

    def _ipython_display_(self) -> None:
        # Two outputs: the widget view, and a second one that a live front end hides and an
        # HTML export of the notebook (which renders only the widget view of an output, with a
        # renderer from a CDN) uses to draw the widget offline from its saved state.
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        display(data, metadata=metadata, raw=True)
        display({"text/html": _export.notebook_fallback_html(self)}, raw=True)

    # ---- validation of what the front end (or a user) sends --------------------------------

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: dict[str, Any]) -> dict[str, Any] | None:
        return _checked_selection(self._net, proposal["value"])

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
                    accepted[key] = _checked_selection(self._net, value)
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
            elif kind == "upload":
                self._handle_upload(content, buffers)
            elif kind == "upload-chunk":
                self._handle_upload_chunk(content, buffers)
            elif kind in ("picture", "view"):
                self._pictures.handle(content, buffers)
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

    def _handle_upload(self, content: dict[str, Any], buffers: Any) -> None:
        name = content.get("name")
        name = clean_name(name) if isinstance(name, str) and name else "the uploaded file"
        if not isinstance(buffers, list | tuple) or len(buffers) != 1:
            count = len(buffers) if isinstance(buffers, list | tuple) else 0
            self.error = f"Could not use {name}: expected one file, got {count}."
            return
        try:
            size = memoryview(buffers[0]).nbytes
        except TypeError:
            self.error = f"Could not use {name}: the file did not arrive as bytes."
            return
        if size > MAX_UPLOAD_BYTES:
            self.error = _too_large(name, size)
            return
        self._use_upload(name, bytes(memoryview(buffers[0])))

    def _handle_upload_chunk(self, content: dict[str, Any], buffers: Any) -> None:
        """One piece of a file: ``{"id", "index", "count", "size", "name"}`` and one buffer.

        Pieces of one upload arrive in order (index 0 starts a new upload and drops any
        unfinished one); the last completes it. Anything inconsistent drops the upload with a
        message; at most `MAX_UPLOAD_BYTES` are ever held.
        """
        name = content.get("name")
        name = clean_name(name) if isinstance(name, str) and name else "the uploaded file"
        fields = [content.get(k) for k in ("id", "index", "count", "size")]
        ints = [v for v in fields if type(v) is int]
        if len(ints) != 4:
            return
        upload_id, index, count, size = ints
        if size > MAX_UPLOAD_BYTES:
            self._chunks = None
            if index == 0:
                self.error = _too_large(name, size)
            return
        chunk: memoryview | None = None
        if isinstance(buffers, list | tuple) and len(buffers) == 1:
            try:
                chunk = memoryview(buffers[0])
            except TypeError:
                chunk = None
        cur = self._chunks
        if index == 0:
            cur = {"id": upload_id, "count": count, "size": size, "parts": [], "n": 0}
            self._chunks = cur
        if (
            cur is None
            or chunk is None
            or (cur["id"], cur["count"], cur["size"]) != (upload_id, count, size)
            or not len(cur["parts"]) == index < count
            or chunk.nbytes > MAX_CHUNK_BYTES
            or cur["n"] + chunk.nbytes > size
        ):
            self._chunks = None
            self.error = f"Could not use {name}: it arrived incomplete; please upload it again."
            return
        cur["parts"].append(bytes(chunk))
        cur["n"] += chunk.nbytes
        if index == count - 1:
            self._chunks = None
            if cur["n"] != size:
                self.error = f"Could not use {name}: it arrived incomplete; please upload it again."
                return
            self._use_upload(name, b"".join(cur["parts"]))

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


def _checked_selection(network: Network, value: Any) -> dict[str, Any] | None:
    """`Network.normalise_selection`, raising `InvalidSelection` (a trait error) instead."""
    try:
        return network.normalise_selection(value)
    except SelectionError as exc:
        raise InvalidSelection(str(exc)) from None


def _derivable(network: Network, ablated: dict[str, list[int]]) -> bool:
    """Whether ReLU and max-pool maps may travel as recipes: not when one of them is ablated."""
    return all(network.layer(name).kind not in ("activation", "pool") for name in ablated)


def clean_name(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """``name`` made safe to show and to send: printable, valid Unicode, at most ``limit`` long.

    Lone surrogates (which cannot be encoded as UTF-8, so the page would never get the update)
    and control or format characters (a terminal escape, a right-to-left override) become
    U+FFFD; an empty result becomes "image".
    """
    text = "".join(
        ch if ch == " " or unicodedata.category(ch) not in _UNSAFE_CATEGORIES else "\ufffd"
        for ch in name[: limit * 4]
    ).strip()
    return short(text, limit) if text else "image"


def _check_keywords(cls: type[CNNExplainer], kwargs: Mapping[str, Any]) -> None:
    """Refuse keyword arguments that are not settable public traits (a typo is not ignored)."""
    allowed = sorted(
        name
        for name, trait in cls.class_traits().items()
        if not name.startswith("_")
        and not trait.read_only
        and name not in ("image", "comm", "keys", "log", "error", "busy")
    )
    for key in kwargs:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), [*allowed, "image", "model"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"CNNExplainer() got an unexpected keyword argument {short(key)!r}{hint} "
                f"It takes image, model, classes, input_shape and {', '.join(allowed)}."
            )


def _network_for(model: Any, classes: Sequence[str] | None, input_shape: Any) -> Network:
    """The `Network` to explain, with ``classes`` and ``input_shape`` applied or refused."""
    if model is None:
        network = tiny_vgg_network()
        if input_shape is not None and tuple(input_shape) != INPUT_SHAPE:
            raise ValueError(
                f"input_shape {tuple(input_shape)} does not fit the shipped Tiny VGG, which "
                f"takes {INPUT_SHAPE}; give your own model=... for other sizes"
            )
    else:
        network = as_network(model, classes, input_shape)
    if input_shape is not None and tuple(input_shape) != network.input_shape:
        raise ValueError(
            f"input_shape {tuple(input_shape)} does not match the network's input "
            f"{network.input_shape}"
        )
    if classes is not None and tuple(str(c) for c in classes) != network.classes:
        # A new Network object: the caller's (and the cached Tiny VGG) keep their names.
        h, w, c = network.input_shape
        network = Network(network.layers, network.params, (h, w, c), classes, name=network.name)
    return network


def _too_large(name: str, size: int) -> str:
    return (
        f"Could not use {name}: it is {size:,} bytes; uploads up to "
        f"{MAX_UPLOAD_BYTES:,} bytes are accepted."
    )


def _describe_source(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    if isinstance(source, np.ndarray):
        return f"array {source.shape}"
    if isinstance(source, bytes | bytearray | memoryview):
        return "image bytes"
    return type(source).__name__


__all__ = [
    "COLOR_SCALES",
    "MAX_UPLOAD_BYTES",
    "CNNExplainer",
    "InvalidAblation",
    "InvalidSelection",
]
