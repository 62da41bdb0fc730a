"""Networks that are graphs: residual adds, concatenations, batch norm, grouped and dilated convs.

The records-built network of the front end's ``graph`` fixture (`scripts/make_js_fixture.py`)
is checked layer by layer against a Flax NNX module holding the same weights (Flax's own
``nnx.Conv`` with ``feature_group_count``/``kernel_dilation``, ``nnx.BatchNorm`` in inference
mode, ``+`` and ``jnp.concatenate``), every neuron's explanation is checked to reproduce its
value within 1e-4, the payload carries the new keys, and malformed graphs are refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cnn_explainer_widget import Network
from cnn_explainer_widget._protocol import encode_network
from cnn_explainer_widget.explain import explain_neuron
from cnn_explainer_widget.layers import ACTIVATIONS, Layer

from conftest import js_fixture_script

TOL = 1e-4


@pytest.fixture(scope="module")
def graph() -> Network:
    return js_fixture_script().graph_network()


class FixtureNet(nnx.Module):
    """The graph fixture's network written as Flax modules (weights set by `_load`)."""

    def __init__(self) -> None:
        r = nnx.Rngs(0)
        self.conv_1 = nnx.Conv(3, 4, (3, 3), padding=1, rngs=r)
        self.bn_1 = nnx.BatchNorm(4, use_running_average=True, rngs=r)
        self.conv_2 = nnx.Conv(4, 4, (3, 3), padding=1, rngs=r)
        self.bn_2 = nnx.BatchNorm(4, use_running_average=True, rngs=r)
        self.depthwise_1 = nnx.Conv(
            4, 8, (3, 3), strides=2, padding=((1, 0), (0, 1)), feature_group_count=4, rngs=r
        )
        self.dilated_1 = nnx.Conv(8, 4, (3, 3), padding=2, kernel_dilation=2, rngs=r)
        self.bn_3 = nnx.BatchNorm(12, use_running_average=True, use_scale=False, rngs=r)
        self.output = nnx.Linear(12, 5, rngs=r)

    def __call__(self, x: jnp.ndarray) -> dict[str, jnp.ndarray]:
        out: dict[str, jnp.ndarray] = {"input": x}
        out["conv_1"] = self.conv_1(x)
        out["bn_1"] = self.bn_1(out["conv_1"])
        out["relu_1"] = nnx.relu(out["bn_1"])
        out["conv_2"] = self.conv_2(out["relu_1"])
        out["bn_2"] = self.bn_2(out["conv_2"])
        out["add_1"] = out["bn_2"] + out["relu_1"]
        out["relu_2"] = nnx.relu(out["add_1"])
        out["depthwise_1"] = self.depthwise_1(out["relu_2"])
        out["dilated_1"] = self.dilated_1(out["depthwise_1"])
        out["concat_1"] = jnp.concatenate([out["dilated_1"], out["depthwise_1"]], axis=-1)
        out["bn_3"] = self.bn_3(out["concat_1"])
        out["gap"] = jnp.mean(out["bn_3"], axis=(1, 2))
        out["logits"] = self.output(out["gap"])
        out["probabilities"] = nnx.softmax(out["logits"])
        return out


def _load(model: FixtureNet, network: Network) -> None:
    """Copy ``network``'s weights into ``model``'s modules of the same names."""
    for name, params in network.params.items():
        module = getattr(model, name)
        if isinstance(module, nnx.BatchNorm):
            module.mean[...] = params["mean"]
            module.var[...] = params["var"]
            if params["scale"] is not None:
                module.scale[...] = params["scale"]
            module.bias[...] = params["bias"]
        else:
            module.kernel[...] = params["kernel"]
            module.bias[...] = params["bias"]


def _image(network: Network, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, network.input_shape).astype(np.float32)


def test_every_layer_of_the_graph_fixture_equals_flax(graph: Network) -> None:
    model = FixtureNet()
    _load(model, graph)
    x = _image(graph)
    ours = graph.activations(x)
    theirs = {k: np.asarray(v)[0] for k, v in model(jnp.asarray(x[None])).items()}
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key].shape == value.shape, key
        np.testing.assert_allclose(ours[key], value, atol=TOL, rtol=0, err_msg=key)
    # Every kind of the fixture is there, and the depthwise conv's groups matter.
    assert {la.kind for la in graph.layers} >= {"batchnorm", "add", "concat", "global_pool"}
    assert graph.layer("depthwise_1").groups == 4
    assert graph.layer("dilated_1").dilation == (2, 2)
    assert graph.layer("add_1").inputs == ("bn_2", "relu_1")
    assert graph.layer("conv_2").inputs == ("relu_1",)  # filled in: the layer before


def test_every_neuron_of_the_graph_fixture_is_explained_exactly(graph: Network) -> None:
    check_every_neuron(graph, _image(graph, 1))


def check_every_neuron(graph: Network, x: np.ndarray) -> None:
    """Every neuron of every layer, at three random positions: its math gives its value."""
    acts = graph.activations(x)
    rng = np.random.default_rng(2)
    for layer in graph.layers:
        if layer.kind in ("flatten", "softmax"):
            continue
        out = graph.output_of(acts, layer.name)
        for index in range(out.shape[-1]):
            if out.ndim == 1:
                n = explain_neuron(graph, acts, layer.name, index)
                check_neuron(layer, n, float(out[index]))
                continue
            for _ in range(3):
                y, xx = int(rng.integers(out.shape[0])), int(rng.integers(out.shape[1]))
                n = explain_neuron(graph, acts, layer.name, index, y, xx)
                assert n.value == pytest.approx(float(out[y, xx, index]), abs=TOL)
                check_neuron(layer, n, float(out[y, xx, index]))


def check_neuron(layer: Layer, n: Any, value: float) -> None:
    """The neuron's own numbers give its value (the math a detail view shows)."""
    if n.kind != "concat":
        assert n.sources == layer.inputs
    if n.kind == "conv":
        got = float((n.window * n.kernel).sum()) + (n.bias or 0.0)
        assert n.window.shape == n.kernel.shape
        assert n.inputs.shape[-1] == n.channels[1] - n.channels[0] == n.kernel.shape[-1]
    elif n.kind == "batchnorm":
        s = n.stats
        (v,) = n.window.reshape(-1)
        scale = 1.0 if s["scale"] is None else s["scale"]
        got = (v - s["mean"]) / np.sqrt(s["var"] + s["epsilon"]) * scale + (s["bias"] or 0.0)
        assert s["a"] * v + s["b"] == pytest.approx(value, abs=TOL)  # the folded affine
    elif n.kind == "add":
        assert n.window.shape == (len(layer.inputs),)
        got = float(n.window.sum())
    elif n.kind == "concat":
        assert n.sources[0] in layer.inputs
        got = float(n.window[0, 0])
    elif n.kind == "global_pool":
        got = float(n.window.mean()) if layer.function == "avg" else float(n.window.max())
    elif n.kind in ("dense", "output"):
        got = float(n.inputs @ n.kernel) + (n.bias or 0.0)
        value = n.logit if n.kind == "output" else value
    elif n.kind == "relu":
        got = max(float(n.window[0, 0]), 0.0)
    elif n.kind == "activation":
        fn = ACTIVATIONS[layer.function]
        (v,) = np.asarray(n.inputs if n.window is None else n.window).reshape(-1)[:1]
        got = float(fn(np.float32(v), **layer.options))
    elif n.kind == "pool":
        w = n.window[~np.isnan(n.window)]
        if layer.function == "max":
            got = float(w.max())
        elif layer.options.get("count_include_pad", True):
            got = float(w.sum()) / (n.window.size)
        else:
            got = float(w.mean())
    else:
        raise AssertionError(f"unchecked kind {n.kind}")
    assert got == pytest.approx(value, abs=TOL), (layer.name, n.index)


def test_a_concat_neuron_names_its_source_channel(graph: Network) -> None:
    acts = graph.activations(_image(graph))
    n = explain_neuron(graph, acts, "concat_1", 6, 2, 3)
    assert n.sources == ("depthwise_1",) and n.channels == (2, 3)
    np.testing.assert_array_equal(n.inputs, acts["depthwise_1"][..., 2])


def test_a_depthwise_neuron_reads_only_its_group(graph: Network) -> None:
    acts = graph.activations(_image(graph))
    # Channel multiplier 2: outputs 6 and 7 read input channel 3.
    n = explain_neuron(graph, acts, "depthwise_1", 7, 0, 4)
    assert n.channels == (3, 4) and n.kernel.shape == (3, 3, 1)
    np.testing.assert_array_equal(n.inputs[..., 0], acts["relu_2"][..., 3])
    # Padding ((1, 0), (0, 1)): at (0, 4) the top row and the right column are padded zeros.
    assert np.all(n.window[0] == 0) and np.all(n.window[:, 2] == 0)


def test_the_payload_carries_inputs_groups_dilation_and_statistics(graph: Network) -> None:
    msg = encode_network(graph)
    assert msg["version"] == 3
    data = np.frombuffer(msg["data"], "<f4")
    entries = {e["name"]: e for e in msg["layers"]}
    assert entries["add_1"]["inputs"] == ["bn_2", "relu_1"]
    assert entries["conv_1"]["inputs"] == ["input"]
    assert entries["depthwise_1"]["groups"] == 4
    assert entries["depthwise_1"]["kernel"]["shape"] == [8, 1, 3, 3]
    assert entries["dilated_1"]["dilation"] == [2, 2]
    assert entries["conv_1"]["dilation"] is None and entries["conv_1"]["source"] is None
    for name in ("bn_1", "bn_3"):
        entry = entries[name]
        assert entry["kernel"] is None and entry["bias"] is None
        assert entry["options"] == {"epsilon": 1e-5}
        for key, ref in entry["stats"].items():
            want = graph.params[name][key]
            if want is None:
                assert ref is None and (name, key) == ("bn_3", "scale")
                continue
            got = data[ref["offset"] : ref["offset"] + np.prod(ref["shape"])]
            np.testing.assert_array_equal(got, want)
    assert "stats" not in entries["conv_1"]


def _net(layers: list[Layer], shape: tuple[int, int, int] = (4, 4, 2)) -> Network:
    params = {
        la.name: {"kernel": np.zeros((*la.input_shape, la.output_shape[0])), "bias": None}
        for la in layers
        if la.kind == "dense"
    }
    return Network(layers, params, shape, ["a", "b"])


def _head(source: str, shape: tuple[int, int, int] = (4, 4, 2)) -> list[Layer]:
    flat = int(np.prod(shape))
    return [
        Layer("flatten", "flatten", shape, (flat,), inputs=(source,)),
        Layer("output", "dense", (flat,), (2,)),
        Layer("softmax", "softmax", (2,), (2,)),
    ]


def test_a_graph_is_checked_when_the_network_is_made() -> None:
    shape = (4, 4, 2)
    relu = Layer("relu", "activation", shape, shape, function="relu")
    ok = _net([relu, Layer("sum", "add", shape, shape, inputs=("input", "relu")), *_head("sum")])
    assert ok.layer("sum").inputs == ("input", "relu")
    x = _image(ok)
    np.testing.assert_allclose(ok.activations(x)["sum"], x + np.maximum(x, 0), atol=1e-6)
    with pytest.raises(ValueError, match="reads 'later', which is not a layer listed before"):
        _net([Layer("sum", "add", shape, shape, inputs=("input", "later")), relu, *_head("sum")])
    with pytest.raises(ValueError, match=r"'sum' \(add\) reads 1 layers; add and concat read two"):
        _net([Layer("sum", "add", shape, shape, inputs=("input",)), *_head("sum")])
    with pytest.raises(ValueError, match=r"'relu' \(activation\) reads 2 layers"):
        _net([dataclasses.replace(relu, inputs=("input", "input")), *_head("relu")])
    wide = Layer("cat", "concat", shape, (4, 4, 3), inputs=("input", "relu"))
    with pytest.raises(ValueError, match=r"'cat' \(concat, output \(4, 4, 3\)\) cannot read"):
        _net([relu, wide, *_head("cat", (4, 4, 3))])
