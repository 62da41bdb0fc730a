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
from cnn_explainer_widget.explain import Neuron, explain_neuron
from cnn_explainer_widget.images import (
    DEFAULT_IMAGES,
    ImageInfo,
    default_image_path,
    load_image_with_info,
)
from cnn_explainer_widget.model import as_network
from cnn_explainer_widget.network import Network, SelectionError
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

_STATIC = Path(__file__).parent / "static"

#: Largest upload accepted from the front end, checked before decoding.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Colour-range policies for hidden layers (js/src/colors.ts implements them): "unit" one range
#: per conv or dense layer shared with the activation and pooling after it (the original's
#: default), "module" one per block (up to and including a pooling layer), "global" one for all
#: hidden layers, "neuron" one per neuron.
COLOR_SCALES = ("unit", "module", "global", "neuron")


class InvalidSelection(traitlets.TraitError, SelectionError):
    """A ``selected`` value that does not name a neuron of the network (a `ValueError`)."""


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

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    _network = traitlets.Dict(help="py→js, once: network structure and weights.").tag(sync=True)
    _activations = traitlets.Dict(help="py→js, per image: every layer's maps.").tag(sync=True)
    _thumbnails = traitlets.List(help="py→js, once: the default images.").tag(sync=True)
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
        if h != w:
            raise ValueError(f"only square inputs are supported, the network takes {h}×{w}")
        return load_image_with_info(source, size=h, channels=c)

    def _show(self, pixels: np.ndarray, info: ImageInfo, name: str, source: str) -> None:
        acts = self._net.activations(pixels)
        self._seq += 1
        payload = encode_activations(self._net, acts, self._seq, name, source)
        self._image, self._acts, self._image_name = pixels, acts, name
        self._image_info = info
        with self.hold_sync():
            self._activations = payload
            self._image_notice = info.notice(name)
            self.error = ""

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
        value = proposal["value"]
        if value not in COLOR_SCALES:
            raise traitlets.TraitError(
                f"color_scale must be one of {COLOR_SCALES}, got {short(value)}"
            )
        return value

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply state sent by the front end, refusing anything invalid.

        Only ``selected`` and ``color_scale`` may be set from the browser. An invalid value is
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
            else:
                refused.append(key)
        if accepted:
            super().set_state(accepted)
        resend = [k for k in refused if k in ("selected", "color_scale")]
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


def _describe_source(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    if isinstance(source, np.ndarray):
        return f"array {source.shape}"
    if isinstance(source, bytes | bytearray | memoryview):
        return "image bytes"
    return type(source).__name__


__all__ = ["COLOR_SCALES", "MAX_UPLOAD_BYTES", "CNNExplainer", "InvalidSelection"]
