"""`CNNExplainer`: the anywidget that shows a network and one image's activations in a cell.

This layer only moves state: it turns images into activations through the pure core
(`images`, `network`, `explain`), sends them as one binary payload per update, and validates
everything the front end sends back (selection, colour scale, uploads, image choices).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

_STATIC = Path(__file__).parent / "static"

#: Largest upload accepted from the front end, checked before decoding.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Colour-range policies for hidden layers (js/src/colors.ts implements them): "unit" one range
#: per conv or dense layer shared with the activation and pooling after it (the original's
#: default), "module" one per block (up to and including a pooling layer), "global" one for all
#: hidden layers, "neuron" one per neuron.
COLOR_SCALES = ("unit", "module", "global", "neuron")
#: Traits the front end may set (anything else it sends is refused).
BROWSER_TRAITS = ("selected", "color_scale", "ablated", "overlay", "overlay_target")


class InvalidSelection(traitlets.TraitError, SelectionError):
    """A ``selected`` value that does not name a neuron of the network (a `ValueError`)."""


class InvalidAblation(traitlets.TraitError, ValueError):
    """An ``ablated`` value that does not name neurons of the network."""


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
    color_scale = traitlets.Unicode(
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

    def __init__(
        self,
        image: Any = None,
        *,
        model: Any = None,
        classes: Sequence[str] | None = None,
        input_shape: tuple[int, int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        if model is None and classes is None:
            network = tiny_vgg_network()
        else:
            network = as_network(
                model if model is not None else tiny_vgg_network(), classes, input_shape
            )
        self._net: Network = network
        self._seq = 0
        self._top_images: list[np.ndarray] = []
        self._top_names: list[str] = []
        first_name, first_label = DEFAULT_IMAGES[0]
        if image is None:
            (pixels, info), name = self._load(default_image_path(first_name)), first_label
        else:
            (pixels, info), name = self._load(image), _describe_source(image)
        acts = network.activations(pixels)
        self._image, self._acts, self._image_name = pixels, acts, name
        self._image_info = info
        self._seq = 1
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

    # ---- the image -------------------------------------------------------------------------

    @property
    def network(self) -> Network:
        """The `Network` this widget explains."""
        return self._net

    @property
    def image(self) -> np.ndarray:
        """The current input image, ``(H, W, C)`` float32 in [0, 1] (read-only).

        Assign anything `load_image` accepts (a path, PIL image, numpy array or file bytes) to
        show another image; invalid input raises and leaves the widget unchanged.
        """
        view = self._image.view()
        view.flags.writeable = False
        return view

    @image.setter
    def image(self, source: Any) -> None:
        self.set_image(source)

    def set_image(self, source: Any, name: str | None = None) -> None:
        """Show ``source`` (anything `load_image` accepts): one forward pass, one message."""
        pixels, info = self._load(source)
        self._show(pixels, info, name or _describe_source(source), "python")

    def _load(self, source: Any) -> tuple[np.ndarray, ImageInfo]:
        h, w, c = self._net.input_shape
        return load_image_with_info(source, size=h if h == w else (h, w), channels=c)

    def _show(self, pixels: np.ndarray, info: ImageInfo, name: str, source: str) -> None:
        ablated = self.ablated or {}
        acts = self._net.activations(pixels, ablate=ablated)
        self._seq += 1
        payload = encode_activations(
            self._net, acts, self._seq, name, source, derive=_derivable(self._net, ablated)
        )
        self._image, self._acts, self._image_name = pixels, acts, name
        self._image_info = info
        overlay = self._overlay_for(pixels, acts)
        with self.hold_sync():
            self._activations = payload
            self._overlay = overlay
            self._image_notice = info.notice(name)
            self.error = ""

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
            self._show(self._image, self._image_info, self._image_name, "ablation")

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
    def image_name(self) -> str:
        """A short description of the current image (file or default image name)."""
        return self._image_name

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
    def probabilities(self) -> dict[str, float]:
        """Class name → probability for the current image."""
        probs = self._acts["probabilities"]
        return {c: float(p) for c, p in zip(self._net.classes, probs, strict=True)}

    @property
    def prediction(self) -> str:
        """The most probable class for the current image."""
        return self._net.classes[int(np.argmax(self._acts["probabilities"]))]

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

    @traitlets.validate("color_scale")
    def _validate_color_scale(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        if value not in COLOR_SCALES:
            raise traitlets.TraitError(
                f"color_scale must be one of {COLOR_SCALES}, got {short(value)}"
            )
        return value

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
            if kind == "upload":
                self._handle_upload(content, buffers)
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
        name = short(name, 80) if isinstance(name, str) and name else "the uploaded file"
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
            self.error = (
                f"Could not use {name}: it is {size:,} bytes; uploads up to "
                f"{MAX_UPLOAD_BYTES:,} bytes are accepted."
            )
            return
        # Decoding a large photo can take a second: say so in the view while it runs.
        self.busy = True
        try:
            pixels, info = self._load(bytes(memoryview(buffers[0])))
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
