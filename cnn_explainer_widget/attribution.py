"""Why this class: saliency maps and Grad-CAM, by differentiating the network's forward pass.

Both answer "which part of the input (or of a layer's maps) made this score high?". A *target*
is what is scored:

- a class, by index (``6``) or name (``"espresso"``): its score is its **logit** (the final
  dense layer's output, before softmax);
- a neuron, ``{"layer": "conv_2_1", "index": 3}``: its score is the **sum of its map** (its
  value, for a dense neuron).

`saliency` is ∂score/∂input. `grad_cam` is Grad-CAM (Selvaraju et al., 2017) at a spatial
layer: ReLU(Σ_k α_k A_k), with A_k that layer's maps and α_k the spatial mean of ∂score/∂A_k.
Each is one ``jax.jit``-compiled gradient per network and layer pair (the class or neuron index
is an argument, so trying another class does not compile again), and reads the network's
current weights on every call.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from cnn_explainer_widget._forward import run
from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.model import resolve_network
from cnn_explainer_widget.network import Network

#: Compiled gradient functions per network, keyed by (what, layer positions).
_compiled: weakref.WeakKeyDictionary[Network, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


def resolve_target(network: Network, target: Any) -> tuple[str, int]:
    """The ``(layer name, channel index)`` whose summed output is ``target``'s score.

    A class (index or name) is a unit of the final dense layer (its logit); a neuron
    ``{"layer": ..., "index": ...}`` is itself.

    Raises
    ------
    ValueError
        Naming what is wrong: an unknown class, layer or out-of-range index.
    TypeError
        For a target that is not an int, a str or a dict.
    """
    logits = network.layers[-2].name  # Network guarantees: ... dense, softmax
    classes = network.classes
    if isinstance(target, bool | np.bool_):
        raise TypeError(
            f"target must be a class index, a class name or a neuron dict, got {target!r}"
        )
    if isinstance(target, int | np.integer):
        if not 0 <= int(target) < len(classes):
            raise ValueError(
                f"class index {int(target)} is out of range: the network has {len(classes)} "
                f"classes (0 to {len(classes) - 1})"
            )
        return logits, int(target)
    if isinstance(target, str):
        if target not in classes:
            raise ValueError(f"no class {target[:60]!r}; classes are {list(classes)}")
        return logits, classes.index(target)
    if isinstance(target, dict):
        if set(target) != {"layer", "index"}:
            raise ValueError(
                "a neuron target is a dict with exactly the keys 'layer' and 'index', e.g. "
                f"{{'layer': 'conv_2_1', 'index': 3}}; got keys {sorted(map(str, target))[:5]}"
            )
        layer, index = target["layer"], target["index"]
        return layer_with_neurons(network, layer), check_index(network, layer, index)
    raise TypeError(
        "target must be a class index (int), a class name (str) or a neuron "
        f"{{'layer': str, 'index': int}}, got {type(target).__name__}"
    )


def layer_with_neurons(network: Network, layer: Any, spatial: bool = False) -> str:
    """Check that ``layer`` names a layer with neurons (with maps, if ``spatial``)."""
    ok = [
        la.name
        for la in network.layers
        if la.kind not in ("flatten", "softmax") and (not spatial or len(la.output_shape) == 3)
    ]
    if not isinstance(layer, str) or layer not in ok:
        what = "a layer with (H, W) maps" if spatial else "a layer with neurons"
        raise ValueError(f"layer must be {what}, one of {ok}; got {str(layer)[:60]!r}")
    return layer


def check_index(network: Network, layer: str, index: Any) -> int:
    """Check that ``index`` is a neuron (channel) of ``layer``; return it as an int."""
    n = network.layer(layer).output_shape[-1]
    if isinstance(index, bool | np.bool_) or not isinstance(index, int | np.integer):
        raise ValueError(f"index must be an int in [0, {n - 1}] for {layer}, got {index!r:.60}")
    if not 0 <= int(index) < n:
        raise ValueError(f"index {int(index)} is out of range for {layer}: it has {n} neurons")
    return int(index)


def _position(network: Network, name: str) -> int:
    return [la.name for la in network.layers].index(name)


def _channel_score(x: jax.Array, index: jax.Array) -> jax.Array:
    """Sum over the batch and the map of channel ``index`` (the last axis)."""
    return jnp.sum(jax.lax.dynamic_index_in_dim(x, index, axis=-1, keepdims=False))


def _run(
    layers: tuple[Layer, ...],
    params: dict[str, Any],
    x: jax.Array,
    keep: dict[str, Any],
    add: dict[str, jax.Array] | None = None,
) -> jax.Array:
    """The last of ``layers``' output (a prefix of a network's layers: any graph).

    Convolutions as the model's own (`lax_conv`), so gradients are the model's ``jax.grad``.
    """
    return run(layers, params, x, keep, add=add, lax_conv=True)[layers[-1].name]


def _saliency_fn(
    layers: tuple[Layer, ...],
    params: dict[str, Any],
    x: jax.Array,
    index: jax.Array,
    keep: dict[str, Any],
) -> Any:
    return jax.grad(lambda image: _channel_score(_run(layers, params, image, keep), index))(x)


def _grad_cam_fn(
    head: tuple[Layer, ...],
    layers: tuple[Layer, ...],
    params: dict[str, Any],
    x: jax.Array,
    index: jax.Array,
    keep: dict[str, Any],
) -> jax.Array:
    maps = _run(head, params, x, keep)  # (1, h, w, C): the A_k
    at = head[-1].name

    def score(delta: jax.Array) -> jax.Array:
        # A_k + δ at the layer, every later layer recomputed (skip connections included).
        return _channel_score(_run(layers, params, x, keep, add={at: delta}), index)

    grads = jax.grad(score)(jnp.zeros_like(maps))
    alpha = grads.mean(axis=(1, 2), keepdims=True)  # (1, 1, 1, C)
    return jax.nn.relu(jnp.sum(alpha * maps, axis=-1))[0]


def _compiled_fn(network: Network, key: tuple[Any, ...], build: Any) -> Any:
    cache = _compiled.setdefault(network, {})
    if key not in cache:
        cache[key] = jax.jit(build())
    return cache[key]


def _keep_masks(network: Network, ablate: Any) -> dict[str, np.ndarray]:
    """Boolean masks of the channels that stay on, per ablated layer."""
    masks = {}
    for name, indices in network.normalise_ablation(ablate).items():
        keep = np.ones(network.layer(name).output_shape[-1], bool)
        keep[list(indices)] = False
        masks[name] = keep
    return masks


def _one_image(network: Network, x: Any) -> np.ndarray:
    image = network._check_input(x)
    if image.ndim != 3:
        raise ValueError(
            f"expected one image shaped {network.input_shape}, got shape {image.shape} "
            "(call once per image)"
        )
    return image


def saliency(x: np.ndarray, target: Any, model: Any = None, ablate: Any = None) -> np.ndarray:
    """The gradient of ``target``'s score with respect to the input image.

    Parameters
    ----------
    x:
        One image ``(H, W, C)``, float in [0, 1] (e.g. from `load_image`).
    target:
        A class index or class name (score: its logit, before softmax), or a neuron
        ``{"layer": str, "index": int}`` (score: the sum of its map; a dense neuron's value).
    model:
        None for the shipped Tiny VGG, or any model the widget explains.
    ablate:
        Neurons switched off, as in `activations` (``{"conv_1_2": [3, 5]}``): the gradient of
        the network with those channels set to 0.

    Returns
    -------
    numpy.ndarray
        ∂score/∂x, float32, shaped like ``x``; signed and not normalised (take
        ``np.abs(s).max(axis=-1)`` for the usual one-channel saliency map).
    """
    network = resolve_network(model)
    image = _one_image(network, x)
    layer, index = resolve_target(network, target)
    keep = _keep_masks(network, ablate)
    stop = _position(network, layer)
    layers = network.layers[: stop + 1]
    fn = _compiled_fn(network, ("saliency", stop), lambda: functools.partial(_saliency_fn, layers))
    grad = fn(network._device_params, image[None], jnp.int32(index), keep)
    return np.array(grad[0], np.float32)


def grad_cam(
    x: np.ndarray, layer: str, target: Any, model: Any = None, ablate: Any = None
) -> np.ndarray:
    """Grad-CAM of ``target`` at ``layer``: ReLU(Σ_k α_k A_k), α_k = mean of ∂score/∂A_k.

    Parameters
    ----------
    x:
        One image ``(H, W, C)``, float in [0, 1].
    layer:
        A layer with ``(h, w)`` maps (a convolution, its activation, or a pooling); the last
        convolution's ReLU (``"relu_2_2"`` in Tiny VGG) is the usual choice.
    target:
        As in `saliency`; a neuron target must be ``layer`` itself or come after it.
    model:
        None for the shipped Tiny VGG, or any model the widget explains.
    ablate:
        Neurons switched off, as in `activations`.

    Returns
    -------
    numpy.ndarray
        Shaped ``(h, w)`` like ``layer``'s maps, float32, ≥ 0. Not upsampled to the input and
        not normalised: the numbers are in the units of ``layer``'s activations times score
        per activation. (The widget shows it normalised to [0, 1] and upsampled.)
    """
    network = resolve_network(model)
    image = _one_image(network, x)
    cam_layer = layer_with_neurons(network, layer, spatial=True)
    target_layer, index = resolve_target(network, target)
    keep = _keep_masks(network, ablate)
    at, stop = _position(network, cam_layer), _position(network, target_layer)
    if stop < at:
        raise ValueError(
            f"target neuron {target_layer!r} comes before layer {cam_layer!r}: its score does "
            "not depend on that layer; pick a later neuron or an earlier layer"
        )
    head, layers = network.layers[: at + 1], network.layers[: stop + 1]
    fn = _compiled_fn(
        network, ("grad_cam", at, stop), lambda: functools.partial(_grad_cam_fn, head, layers)
    )
    cam = fn(network._device_params, image[None], jnp.int32(index), keep)
    return np.array(cam, np.float32)


__all__ = ["grad_cam", "saliency"]
