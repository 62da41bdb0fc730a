"""The fields and tensors of a model file, checked: each check names what is wrong and where.

`cnn_explainer_widget.model_file` reads a file's metadata and tensors through these, so a
malformed or absurd file (a 900-byte file can declare a 20000×20000 input) is refused with a
`WeightsFileError` before anything is built or allocated.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from cnn_explainer_widget._safetensors import WeightsFileError

# Sane limits, checked before anything is built or allocated: a small file must not be able to
# make the widget allocate gigabytes (a 900-byte file can declare a 20000×20000 input).
#: Largest input side, in pixels.
MAX_INPUT_SIDE = 4096
#: Most values in one image's activations, all layers together (4 bytes each).
MAX_ACTIVATION_VALUES = 32_000_000
#: Most layers, class names, and characters in a name.
MAX_LAYERS = 1000
MAX_CLASSES = 10_000
MAX_NAME_CHARS = 200
#: Most epochs in a history.
MAX_EPOCHS = 100_000


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key[:60]!r} appears twice")
        out[key] = value
    return out


def json_field(metadata: dict[str, str], key: str, source: str, default: str | None = None) -> Any:
    if key not in metadata and default is None:
        raise WeightsFileError(f"{source}: metadata field {key!r} is missing")
    try:
        return json.loads(metadata.get(key, default), object_pairs_hook=unique_keys)  # type: ignore[arg-type]
    except RecursionError:
        raise WeightsFileError(f"{source}: metadata field {key!r} is nested too deeply") from None
    except json.JSONDecodeError:
        raise WeightsFileError(f"{source}: metadata field {key!r} is not valid JSON") from None
    except ValueError as exc:  # a duplicate key
        raise WeightsFileError(f"{source}: metadata field {key!r}: {exc}") from None


def name_field(value: Any, what: str, source: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise WeightsFileError(
            f"{source}: {what} must be a name of 1 to {MAX_NAME_CHARS} characters at most, "
            f"got {shown(value)}"
        )
    return value


def shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value[:40])
    return text if len(text) <= 60 else text[:59] + "…"


def history_field(
    metadata: dict[str, str], source: str
) -> tuple[dict[str, list[float]], int | None]:
    """The ``history`` and ``best_epoch`` fields, checked."""
    history = json_field(metadata, "history", source, "{}")
    if not isinstance(history, dict):
        raise WeightsFileError(
            f"{source}: metadata field 'history' must be a table of metric → list of numbers"
        )
    for key, values in history.items():
        if (
            len(key) > MAX_NAME_CHARS
            or not isinstance(values, list)
            or len(values) > MAX_EPOCHS
            or not all(is_number(v) for v in values)
        ):
            raise WeightsFileError(
                f"{source}: metadata field 'history' entry {shown(key)} must be a list of "
                f"numbers (at most {MAX_EPOCHS:,})"
            )
    best_epoch = json_field(metadata, "best_epoch", source, "null")
    epochs = max((len(v) for v in history.values()), default=None)
    if best_epoch is not None and (
        type(best_epoch) is not int or best_epoch < 1 or (epochs and best_epoch > epochs)
    ):
        raise WeightsFileError(
            f"{source}: metadata field 'best_epoch' must be null or an integer in "
            f"[1, {epochs or '…'}] (the history has {epochs or 0} epochs), got {shown(best_epoch)}"
        )
    return {str(k): [float(v) for v in vs] for k, vs in history.items()}, best_epoch


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def options_field(spec: dict[str, Any], allowed: dict[str, type], where: str) -> dict[str, Any]:
    """A layer's ``options``: only the keywords its function takes, of the right types."""
    options = spec.get("options", {})
    if not isinstance(options, dict):
        raise WeightsFileError(f"{where}: options must be a table, got {shown(options)}")
    for key, value in options.items():
        kind = allowed.get(key)
        if kind is None:
            known = ", ".join(allowed) or "none"
            raise WeightsFileError(
                f"{where}: unknown option {shown(key)} (this function takes: {known})"
            )
        ok = type(value) is bool if kind is bool else is_number(value)
        if not ok:
            raise WeightsFileError(
                f"{where}: option {key!r} must be "
                f"{'true or false' if kind is bool else 'a finite number'}, got {shown(value)}"
            )
    return dict(options)


def count_values(total: int, shape: tuple[int, ...], where: str) -> int:
    """Add one layer's output size to the activations' running total; refuse absurd sizes."""
    n = math.prod(shape)
    if total + n > MAX_ACTIVATION_VALUES:
        raise WeightsFileError(
            f"{where}: its output {'×'.join(map(str, shape))} = {n:,} values brings one "
            f"image's activations to {total + n:,} values; at most {MAX_ACTIVATION_VALUES:,} "
            "are explained"
        )
    return total + n


def ints_field(value: Any, n: int, what: str, source: str, minimum: int = 0) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or len(value) != n
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)
    ):
        raise WeightsFileError(f"{source}: {what} must be {n} integers ≥ {minimum}, got {value!r}")
    return tuple(value)


def weights_spec(
    spec: dict[str, Any], name: str, tensors: dict[str, np.ndarray], source: str
) -> tuple[int, bool]:
    features = spec.get("features")
    if not isinstance(features, int) or isinstance(features, bool) or features < 1:
        raise WeightsFileError(f"{source}: layer {name!r} features must be a positive integer")
    use_bias = spec.get("use_bias")
    if not isinstance(use_bias, bool):
        raise WeightsFileError(f"{source}: layer {name!r} use_bias must be true or false")
    return features, use_bias


def set_weights(
    module: nnx.Conv | nnx.Linear,
    tensors: dict[str, np.ndarray],
    name: str,
    kernel_shape: tuple[int, ...],
    use_bias: bool,
    source: str,
) -> None:
    wanted = {f"{name}.kernel": kernel_shape}
    if use_bias:
        wanted[f"{name}.bias"] = (kernel_shape[-1],)
    for key, shape in wanted.items():
        if key not in tensors:
            raise WeightsFileError(f"{source}: tensor {key!r} is missing")
        if tensors[key].shape != shape:
            raise WeightsFileError(
                f"{source}: tensor {key!r} has shape {tensors[key].shape}, expected {shape}"
            )
    module.kernel.set_value(jnp.asarray(tensors[f"{name}.kernel"]))
    if use_bias:
        assert module.bias is not None
        module.bias.set_value(jnp.asarray(tensors[f"{name}.bias"]))
