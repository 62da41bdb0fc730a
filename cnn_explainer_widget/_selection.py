"""Checks of what names neurons: a selection (what the front end sends) and an ablation.

`cnn_explainer_widget.network.Network.normalise_selection` and ``normalise_ablation`` call
these with the network's neuron counts; the widget calls those methods on what the page sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnn_explainer_widget._text import short


class SelectionError(ValueError):
    """A selection that names no neuron of the network (see `Network.normalise_selection`)."""


def check_selection(
    layers: dict[str, tuple[int, tuple[int, int] | None]], value: Any
) -> dict[str, Any] | None:
    """Check a selection ``{'layer', 'index'[, 'y', 'x']}`` against ``layers``; clean it.

    ``layers`` maps each layer with neurons to its neuron count and map size (None: no map).

    Raises
    ------
    SelectionError
        Saying which key is wrong and what is accepted.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SelectionError(
            f"selected must be None or a dict like {{'layer': 'conv_1_1', 'index': 0}}, "
            f"got {type(value).__name__}"
        )
    extra = set(value) - {"layer", "index", "y", "x"}
    if extra:
        raise SelectionError(
            f"selected has unknown key(s) {sorted(map(short, extra))[:5]}; "
            "allowed: layer, index, y, x"
        )
    layer, index = value.get("layer"), value.get("index")
    if not isinstance(layer, str) or layer not in layers:
        raise SelectionError(f"selected['layer'] must be one of {list(layers)}, got {short(layer)}")
    count, size = layers[layer]
    if type(index) is not int or not 0 <= index < count:
        raise SelectionError(
            f"selected['index'] must be an int in [0, {count - 1}] for {layer}, got {short(index)}"
        )
    result: dict[str, Any] = {"layer": layer, "index": index}
    if "y" in value or "x" in value:
        y, x = value.get("y"), value.get("x")
        if size is None:
            raise SelectionError(f"{layer} neurons have no map: give no 'y'/'x'")
        for axis, v, n in (("y", y, size[0]), ("x", x, size[1])):
            if type(v) is not int or not 0 <= v < n:
                raise SelectionError(
                    f"selected[{axis!r}] must be an int in [0, {n - 1}] for {layer}, got {short(v)}"
                )
        result.update(y=y, x=x)
    return result


def check_ablation(counts: dict[str, int], ablate: Any) -> dict[str, tuple[int, ...]]:
    """Check ``{layer: [index, ...]}`` against ``counts`` (layer → neurons); return it sorted.

    The result lists layers in the order of ``counts``; layers with no index are dropped.

    Raises
    ------
    ValueError
        Naming the entry that is wrong and what is accepted.
    """
    if ablate is None:
        return {}
    if not isinstance(ablate, dict):
        raise ValueError(
            "ablate must be a dict like {'conv_1_2': [3, 5]} (layer name → channel "
            f"indices), got {type(ablate).__name__}"
        )
    result: dict[str, tuple[int, ...]] = {}
    for name, indices in ablate.items():
        if not isinstance(name, str) or name not in counts:
            shown = repr(name)[:40]
            raise ValueError(f"ablate: no layer {shown} with neurons; layers are {list(counts)}")
        if isinstance(indices, str | bytes) or not isinstance(
            indices, Sequence | set | frozenset | np.ndarray
        ):
            kind = type(indices).__name__
            raise ValueError(f"ablate[{name!r}] must be a list of neuron indices, got {kind}")
        n = counts[name]
        for i in indices:
            if isinstance(i, bool | np.bool_) or not isinstance(i, int | np.integer):
                raise ValueError(f"ablate[{name!r}]: indices must be ints, got {repr(i)[:40]}")
            if not 0 <= int(i) < n:
                raise ValueError(f"ablate[{name!r}]: index {int(i)} is not in [0, {n - 1}]")
        indices = list(indices)
        if indices:
            result[name] = tuple(sorted({int(i) for i in indices}))
    return {name: result[name] for name in counts if name in result}


__all__ = ["SelectionError", "check_ablation", "check_selection"]
