"""A network saved to one file with its class names, and read back without its code.

The file is a safetensors file (see `cnn_explainer_widget._safetensors`): each conv and dense
layer's ``<layer>.kernel`` and ``<layer>.bias`` as float32 tensors, and in the metadata the
architecture (every layer's kind and hyperparameters, padding as numbers), the class names, the
input shape and the training history. `read_model_file` rebuilds an ``nnx.Sequential`` from that
alone and checks every field and tensor, naming the one that is wrong.
`cnn_explainer_widget.TrainedModel.save` and `cnn_explainer_widget.load_model` use this module.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from cnn_explainer_widget._model_fields import (
    MAX_CLASSES,
    MAX_INPUT_SIDE,
    MAX_LAYERS,
    count_values,
    history_field,
    ints_field,
    json_field,
    name_field,
    options_field,
    set_weights,
    shown,
    weights_spec,
)
from cnn_explainer_widget._safetensors import WeightsFileError, dumps, load_file
from cnn_explainer_widget.flax_module import Flatten, network_from_layers
from cnn_explainer_widget.layers import ACTIVATION_OPTIONS, ACTIVATIONS, conv_output_size
from cnn_explainer_widget.network import Network

#: Value of the ``format`` metadata field of a model file.
FORMAT = "cnn-explainer-widget.model"
#: Version of the model file layout.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SavedModel:
    """What a model file holds: the rebuilt module and what the widget needs to explain it.

    The fields are those of `cnn_explainer_widget.TrainedModel`, which `load_model` makes of it.
    """

    model: nnx.Sequential
    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]
    history: dict[str, list[float]]
    best_epoch: int | None
    layer_names: tuple[str, ...]
    name: str


def write_model_file(
    network: Network,
    history: dict[str, list[float]],
    best_epoch: int | None,
    path: str | os.PathLike[str],
) -> Path:
    """Write ``network`` (weights, architecture, classes) and its training history to ``path``.

    `read_model_file` gives it back as an ``nnx.Sequential`` with the same layer names and the
    same outputs.
    """
    previous = "input"
    for layer in network.layers:
        plain = layer.kind in ("conv", "activation", "pool", "flatten", "dense", "softmax")
        if not plain or layer.inputs != (previous,) or layer.groups != 1 or layer.dilation:
            raise ValueError(
                f"cannot save {layer.name!r} ({layer.kind}): a model file holds a sequence of "
                "conv, activation, pool, flatten and dense layers (no graph, batch norm, groups "
                "or dilation); save your module's weights with Flax instead (nnx.state)"
            )
        previous = layer.name
    tensors: dict[str, np.ndarray] = {}
    layers: list[dict[str, Any]] = []
    for layer in network.layers:
        entry: dict[str, Any] = {"name": layer.name, "kind": layer.kind}
        if layer.kind in ("conv", "pool"):
            entry["kernel_size"] = list(layer.kernel_size or ())
            entry["stride"] = list(layer.stride or ())
            entry["padding"] = [list(p) for p in layer.padding or ()]
        if layer.kind in ("activation", "pool"):
            entry["function"] = layer.function
            entry["options"] = dict(layer.options)
        if layer.kind in ("conv", "dense"):
            params = network.params[layer.name]
            kernel = params["kernel"]
            assert kernel is not None
            entry["features"] = int(kernel.shape[-1])
            entry["use_bias"] = params.get("bias") is not None
            tensors[f"{layer.name}.kernel"] = kernel
            if params.get("bias") is not None:
                tensors[f"{layer.name}.bias"] = params["bias"]  # type: ignore[assignment]
        layers.append(entry)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "name": network.name,
        "classes": json.dumps(list(network.classes)),
        "input_shape": json.dumps(list(network.input_shape)),
        "layers": json.dumps(layers),
        "history": json.dumps(history),
        "best_epoch": json.dumps(best_epoch),
    }
    path = Path(path)
    path.write_bytes(dumps(tensors, metadata))
    return path


def read_model_file(path: str | os.PathLike[str]) -> SavedModel:
    """Read a model file written by `write_model_file`.

    Raises
    ------
    WeightsFileError
        If the file is missing or corrupt, is not a model file, or a metadata field or tensor
        is missing or malformed; the message names the field or tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"model file not found: {path}")
    source = str(path)
    tensors, metadata = load_file(path)  # memory-mapped: a large file is never read whole
    return _from_parts(tensors, metadata, source)


def _from_parts(
    tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str
) -> SavedModel:
    fmt = metadata.get("format")
    if fmt != FORMAT:
        raise WeightsFileError(
            f"{source}: not a cnn-explainer-widget model file (metadata field 'format' is "
            f"{fmt!r}, expected {FORMAT!r})"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise WeightsFileError(
            f"{source}: metadata field 'format_version' is {version!r}; this version of "
            f"cnn-explainer-widget reads {FORMAT_VERSION}"
        )
    classes = json_field(metadata, "classes", source)
    if not isinstance(classes, list) or not classes or len(classes) > MAX_CLASSES:
        raise WeightsFileError(
            f"{source}: metadata field 'classes' must be a list of 1 to {MAX_CLASSES:,} names"
        )
    for c in classes:
        name_field(c, "metadata field 'classes': each class", source)
    display_name = name_field(metadata.get("name", "network"), "metadata field 'name'", source)
    input_shape = ints_field(
        json_field(metadata, "input_shape", source), 3, "'input_shape'", source, 1
    )
    if max(input_shape[:2]) > MAX_INPUT_SIDE or input_shape[2] not in (1, 3):
        raise WeightsFileError(
            f"{source}: metadata field 'input_shape' is {list(input_shape)}; images of at most "
            f"{MAX_INPUT_SIDE}×{MAX_INPUT_SIDE} pixels with 1 or 3 channels are explained"
        )
    specs = json_field(metadata, "layers", source)
    if (
        not isinstance(specs, list)
        or not specs
        or len(specs) > MAX_LAYERS
        or not all(isinstance(s, dict) for s in specs)
    ):
        raise WeightsFileError(
            f"{source}: metadata field 'layers' must be a list of 1 to {MAX_LAYERS} layers"
        )
    history, best_epoch = history_field(metadata, source)

    items: list[Any] = []
    names: list[str] = []
    used: set[str] = set()
    shape: tuple[int, ...] = input_shape
    values = count_values(0, shape, f"{source}: metadata field 'input_shape'")
    for i, spec in enumerate(specs):
        name, kind = spec.get("name"), spec.get("kind")
        if not isinstance(name, str) or not name:
            raise WeightsFileError(f"{source}: layer {i} of 'layers' has no name")
        name_field(name, f"layer {i} of 'layers': its name", source)
        where = f"{source}: layer {name!r}"
        if kind in ("conv", "pool"):
            if len(shape) != 3:
                raise WeightsFileError(f"{where}: needs an (H, W, C) input, gets {shape}")
            kernel_size = ints_field(
                spec.get("kernel_size"), 2, f"layer {name!r} kernel_size", source, 1
            )
            stride = ints_field(spec.get("stride"), 2, f"layer {name!r} stride", source, 1)
            pads = spec.get("padding")
            if not isinstance(pads, list) or len(pads) != 2:
                raise WeightsFileError(f"{where}: padding must be two (before, after) pairs")
            padding = tuple(ints_field(p, 2, f"layer {name!r} padding", source) for p in pads)
            oh = conv_output_size(shape[0], kernel_size[0], stride[0], *padding[0])
            ow = conv_output_size(shape[1], kernel_size[1], stride[1], *padding[1])
            if oh < 1 or ow < 1:
                raise WeightsFileError(f"{where}: window {kernel_size} does not fit {shape}")
        if kind == "conv":
            features, use_bias = weights_spec(spec, name, tensors, source)
            values = count_values(values, (oh, ow, features), where)
            kernel_shape = (*kernel_size, shape[2], features)
            conv = _abstract(
                nnx.Conv, shape[2], features, kernel_size, strides=stride, padding=padding,
                use_bias=use_bias,
            )  # fmt: skip
            set_weights(conv, tensors, name, kernel_shape, use_bias, source)
            items.append(conv)
            shape = (oh, ow, features)
        elif kind == "dense":
            if len(shape) != 1:
                raise WeightsFileError(f"{where}: a dense layer needs a flat input, gets {shape}")
            features, use_bias = weights_spec(spec, name, tensors, source)
            values = count_values(values, (features,), where)
            dense = _abstract(nnx.Linear, shape[0], features, use_bias=use_bias)
            set_weights(dense, tensors, name, (shape[0], features), use_bias, source)
            items.append(dense)
            shape = (features,)
        elif kind == "pool":
            function = spec.get("function")
            if function not in ("max", "avg"):
                raise WeightsFileError(
                    f"{where}: pool function {shown(function)} is not max or avg"
                )
            allowed: dict[str, type] = {"count_include_pad": bool} if function == "avg" else {}
            options = options_field(spec, allowed, where)
            pool = nnx.max_pool if function == "max" else nnx.avg_pool
            if function == "avg":
                options = {"count_include_pad": options.get("count_include_pad", True)}
            values = count_values(values, (oh, ow, shape[2]), where)
            items.append(
                functools.partial(
                    pool, window_shape=kernel_size, strides=stride, padding=padding, **options
                )
            )
            shape = (oh, ow, shape[2])
        elif kind == "activation":
            function = spec.get("function")
            if function not in ACTIVATIONS or function not in ACTIVATION_OPTIONS:
                raise WeightsFileError(
                    f"{where}: activation {shown(function)} is not one of {sorted(ACTIVATIONS)}"
                )
            options = options_field(spec, ACTIVATION_OPTIONS[function], where)
            values = count_values(values, shape, where)
            fn = ACTIVATIONS[function]
            items.append(functools.partial(fn, **options) if options else fn)
        elif kind == "flatten":
            items.append(Flatten())
            shape = (int(np.prod(shape)),)
        elif kind == "softmax":
            values = count_values(values, shape, where)
            items.append(nnx.softmax)
        else:
            raise WeightsFileError(f"{where}: unknown layer kind {kind!r}")
        if name in used:
            raise WeightsFileError(f"{where}: the name is used twice")
        used.add(name)
        names.append(name)
    extra = sorted(set(tensors) - {f"{n}.{p}" for n in names for p in ("kernel", "bias")})
    if extra:
        raise WeightsFileError(f"{source}: unexpected tensor(s) {extra}")
    if len(shape) == 1 and shape[0] != len(classes):
        raise WeightsFileError(
            f"{source}: metadata field 'classes' has {len(classes)} names for the network's "
            f"{shape[0]} outputs"
        )
    saved = SavedModel(
        model=nnx.Sequential(*items),
        classes=tuple(classes),
        input_shape=input_shape,  # type: ignore[arg-type]
        history=history,
        best_epoch=best_epoch,
        layer_names=tuple(names),
        name=display_name,
    )
    try:  # the whole architecture, checked as the widget will use it
        network_from_layers(
            items, input_shape, saved.classes, names=saved.layer_names, name=saved.name
        )
    except ValueError as exc:
        raise WeightsFileError(f"{source}: {exc}") from None
    return saved


def _abstract(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
    """A module with its structure but no values (no random initialisation runs)."""
    return nnx.eval_shape(lambda: cls(*args, **kwargs, rngs=nnx.Rngs(0)))


__all__ = ["FORMAT", "FORMAT_VERSION", "SavedModel", "read_model_file", "write_model_file"]
