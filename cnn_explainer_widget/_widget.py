"""`CNNExplainer`: the anywidget that shows a network and one image's activations in a cell.

This layer only moves state: it turns images into activations through the pure core
(`images`, `network`, `explain`), sends them as one binary payload per update, and validates
everything the front end sends back (selection, colour scale, uploads, image choices).
"""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnn_explainer_widget import _export
from cnn_explainer_widget._protocol import encode_activations, encode_network, payload_warning
from cnn_explainer_widget._shipped import INPUT_SHAPE, tiny_vgg_network
from cnn_explainer_widget._text import clean_name, short
from cnn_explainer_widget._uploads import MAX_UPLOAD_BYTES, ChunkedUploads
from cnn_explainer_widget._whyif import top_payload
from cnn_explainer_widget._widget_messages import PageMessages
from cnn_explainer_widget._widget_state import COLOR_SCALES, InvalidAblation, InvalidSelection
from cnn_explainer_widget.explain import Neuron, explain_neuron
from cnn_explainer_widget.images import DEFAULT_IMAGES, ImageInfo, default_image_path
from cnn_explainer_widget.model import as_network
from cnn_explainer_widget.network import Network
from cnn_explainer_widget.scan import scan


class CNNExplainer(PageMessages):
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
        self._uploads = ChunkedUploads()
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
        payload = encode_activations(network, acts, self._seq, name, "python")
        if (too_large := payload_warning(network, payload)) is not None:
            warnings.warn(too_large, stacklevel=2)
        super().__init__(
            _network=encode_network(network),
            _activations=payload,
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
