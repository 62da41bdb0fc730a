"""The widget's "why" and "which images" payloads, built from the pure core.

`overlay_payload` turns a saliency map or a Grad-CAM into what the front end overlays on the
input: normalised to [0, 1], upsampled to the input size, with the raw range for the legend.
`top_payload` turns a data-set scan into the strip of top images (PNG thumbnails with the
receptive field of each maximum). Nothing here holds state: the widget calls these.
"""

from __future__ import annotations

import io
from typing import Any

import jax
import numpy as np
from PIL import Image

from cnn_explainer_widget.attribution import grad_cam, resolve_target, saliency
from cnn_explainer_widget.network import Network
from cnn_explainer_widget.scan import ScanResult, receptive_field

#: Overlay kinds: nothing, the saliency map, or Grad-CAM.
OVERLAYS = ("none", "saliency", "grad_cam")


def cam_layer_for(network: Network, target_layer: str) -> str:
    """The layer Grad-CAM is taken at for a target in ``target_layer``.

    The last layer with maps at or before the target that is not a pooling (Tiny VGG:
    ``relu_2_2`` for a class), so a neuron in an early layer gets a map of its own layer.
    """
    names = [la.name for la in network.layers]
    stop = names.index(target_layer)
    spatial = [la for la in network.layers[: stop + 1] if len(la.output_shape) == 3]
    unpooled = [la for la in spatial if la.kind != "pool"]
    return (unpooled or spatial)[-1].name


def effective_target(network: Network, target: Any, selected: Any, prediction: str) -> Any:
    """The target an ``overlay_target`` value means now (None: the prediction)."""
    if target is None:
        return prediction
    if target == "selected" and "selected" not in network.classes:
        if selected is None or selected["layer"] == "input":
            return prediction
        return {"layer": selected["layer"], "index": selected["index"]}
    return target


def describe(network: Network, target: Any) -> str:
    """A short label of a resolved target for the legend."""
    layer, index = resolve_target(network, target)
    if isinstance(target, dict):
        return f"{layer} neuron {index}"
    return network.classes[index]


def overlay_payload(
    network: Network,
    image: np.ndarray,
    kind: str,
    target: Any,
    ablated: dict[str, list[int]],
) -> dict[str, Any]:
    """What the front end draws over the input: a map in [0, 1] at the input size, and its range.

    ``data`` is float32 ``(H, W)`` row-major; ``max`` is the raw value that 1 stands for (the
    legend's top), ``min`` is 0. Saliency is the largest |∂score/∂pixel| over the channels;
    Grad-CAM is bilinearly upsampled from its layer's size (``source_shape``).
    """
    if kind == "none":
        return {}
    h, w, c = network.input_shape
    label = describe(network, target)
    layer, _ = resolve_target(network, target)
    if kind == "saliency":
        raw = np.abs(saliency(image, target, model=network, ablate=ablated)).max(axis=-1)
        full = raw
        cam_layer = None
        caption = f"|∂ score of {label} / ∂ pixel|, largest over the channels"
    else:
        cam_layer = cam_layer_for(network, layer)
        raw = grad_cam(image, cam_layer, target, model=network, ablate=ablated)
        full = np.asarray(jax.image.resize(raw, (h, w), "bilinear"))
        caption = f"Grad-CAM of {label} at {cam_layer}, upsampled"
    top = float(raw.max())
    norm = np.clip(full / top, 0.0, 1.0) if top > 0 else np.zeros((h, w))
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if c == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return {
        "kind": kind,
        "target": label,
        "layer": cam_layer,
        "caption": caption,
        "shape": [h, w],
        "source_shape": list(raw.shape),
        "min": 0.0,
        "max": top,
        "data": np.ascontiguousarray(norm, "<f4").tobytes(),
        "image": pixels.tobytes(),
    }


def png(image: np.ndarray) -> bytes:
    """An ``(H, W, C)`` float image in [0, 1] as PNG bytes."""
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(out, "PNG")
    return out.getvalue()


def top_payload(network: Network, result: ScanResult, layer: str, index: int) -> dict[str, Any]:
    """The strip of top images: thumbnails, values, the maximum and its receptive field."""
    assert result.images is not None
    h, w, _ = network.input_shape
    items = []
    for rank, ((image_index, value, (y, x)), pixels) in enumerate(
        zip(result.top, result.images, strict=True)
    ):
        (top, bottom), (left, right) = receptive_field(layer, y, x, model=network)
        items.append(
            {
                "rank": rank,
                "image_index": image_index,
                "value": value,
                "y": y,
                "x": x,
                "field": [top, bottom, left, right],
                "png": png(pixels),
            }
        )
    return {"layer": layer, "index": index, "shape": [h, w], "items": items}


__all__ = ["OVERLAYS", "cam_layer_for", "overlay_payload", "top_payload"]
