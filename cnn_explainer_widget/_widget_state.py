"""The widget's state: its traits, their validation, and one consistent update per image.

`WidgetState` is the base of `CNNExplainer` (`cnn_explainer_widget._widget`): the synced and
read-only traits with their validators, and the update that changes the image, its name, its
prediction and the page together (`WidgetState._show`). What the page sends is handled one
level up (`cnn_explainer_widget._widget_messages`); the constructor and the public methods are
on `CNNExplainer` itself.
"""

from __future__ import annotations

import threading
import types
from contextlib import suppress
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from cnn_explainer_widget._protocol import encode_activations
from cnn_explainer_widget._text import clean_name, short
from cnn_explainer_widget._whyif import OVERLAYS, effective_target, overlay_payload
from cnn_explainer_widget.attribution import resolve_target
from cnn_explainer_widget.images import ImageInfo, load_image_with_info
from cnn_explainer_widget.network import Network, SelectionError

STATIC = Path(__file__).parent / "static"

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


class _ImageTrait(traitlets.Any):
    """The ``image`` trait: reads give the shown image; assigning any source loads and shows it.

    Observers are notified only once the whole update (image, name, prediction, page) is done.
    """

    def __set__(self, obj: traitlets.HasTraits, value: Any) -> None:
        obj.set_image(value)  # type: ignore[attr-defined]


class WidgetState(anywidget.AnyWidget):
    """The widget's traits and its image update (the base of `CNNExplainer`)."""

    # The bundle as text traits, not paths: anywidget watches a path's contents through a
    # class-level signal whose callback holds every instance, so no widget would ever be freed.
    _esm = traitlets.Unicode((STATIC / "widget.js").read_text(encoding="utf-8")).tag(sync=True)
    _css = traitlets.Unicode((STATIC / "widget.css").read_text(encoding="utf-8")).tag(sync=True)

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
    # Set by CNNExplainer.__init__ (annotations only: until the first image is shown,
    # hasattr() is False for the image's attributes, which the observers check).
    _net: Network
    _update_lock: threading.RLock
    _seq: int
    _image: np.ndarray
    _image_info: ImageInfo
    _acts: dict[str, np.ndarray]
    _top_images: list[np.ndarray]
    _top_names: list[str]

    # ---- the image -------------------------------------------------------------------------

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

    # ---- validation, and why / what if -------------------------------------------------------

    @traitlets.validate("selected")
    def _validate_selected(self, proposal: dict[str, Any]) -> dict[str, Any] | None:
        return checked_selection(self._net, proposal["value"])

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


def checked_selection(network: Network, value: Any) -> dict[str, Any] | None:
    """`Network.normalise_selection`, raising `InvalidSelection` (a trait error) instead."""
    try:
        return network.normalise_selection(value)
    except SelectionError as exc:
        raise InvalidSelection(str(exc)) from None


def _derivable(network: Network, ablated: dict[str, list[int]]) -> bool:
    """Whether ReLU and max-pool maps may travel as recipes: not when one of them is ablated."""
    return all(network.layer(name).kind not in ("activation", "pool") for name in ablated)
