"""Any Flax NNX module, read from what it computes: five architectures unlike Tiny VGG.

Each model records its own intermediate values with ``self.sow(nnx.Intermediate, "at_<layer>",
value)`` (``"__"`` in the key stands for ``"."`` in the layer name); the traced network's
activations must equal them within 1e-4 for every layer, every layer must be checked, and
every neuron's explanation must reproduce its value (`check_every_neuron`). What cannot be
explained is refused with the operation and the line of this file it comes from.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_graph_networks import check_every_neuron

from cnn_explainer_widget import (
    CNNExplainer,
    TrainedModel,
    activations,
    as_network,
    grad_cam,
    saliency,
)
from cnn_explainer_widget.scan import receptive_field
from cnn_explainer_widget.traced import TraceError, network_from_module

TOL = 1e-4
# The tracer runs the models' own code, sow() included, outside nnx.capture.
pytestmark = pytest.mark.filterwarnings("ignore:Using 'Module.sow:DeprecationWarning")


def _sow(module: nnx.Module, name: str, value: jax.Array) -> jax.Array:
    module.sow(nnx.Intermediate, "at_" + name.replace(".", "__"), value)
    return value


class ResBlock(nnx.Module):
    """conv-bn-relu-conv-bn + shortcut (a strided 1×1 conv and bn when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs, at: str) -> None:
        self.at = at
        self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=stride, use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(cout, rngs=rngs)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(cout, use_scale=False, rngs=rngs)
        self.proj = nnx.Conv(cin, cout, (1, 1), strides=stride, rngs=rngs) if stride != 1 else None

    def __call__(self, x: jax.Array, names: dict[str, str]) -> jax.Array:
        a = self.at
        y = _sow(self, f"{a}.bn1", self.bn1(_sow(self, f"{a}.conv1", self.conv1(x))))
        y = _sow(self, names["relu"], nnx.relu(y))
        y = _sow(self, f"{a}.bn2", self.bn2(_sow(self, f"{a}.conv2", self.conv2(y))))
        shortcut = x if self.proj is None else _sow(self, f"{a}.proj", self.proj(x))
        y = _sow(self, names["add"], y + shortcut)
        return _sow(self, names["out"], nnx.relu(y))


class ResNet(nnx.Module):
    """Residual network with batch norm (identity and projection shortcuts), jnp.mean head."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.stem = nnx.Conv(3, 8, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.block1 = ResBlock(8, 8, 1, rngs, "block1")
        self.block2 = ResBlock(8, 16, 2, rngs, "block2")
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.head = nnx.Linear(16, 4, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = _sow(self, "bn", self.bn(_sow(self, "stem", self.stem(x))))
        y = _sow(self, "relu_1", nnx.relu(y))
        y = self.block1(y, {"relu": "relu_2", "add": "add_1", "out": "relu_3"})
        y = self.block2(y, {"relu": "relu_4", "add": "add_2", "out": "relu_5"})
        y = _sow(self, "global_avg_pool", jnp.mean(y, axis=(1, 2)))
        return _sow(self, "logits", self.head(self.drop(y)))


class Separable(nnx.Module):
    """Depthwise (groups = channels, multiplier 2) then pointwise convs; global max pool."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 6, (3, 3), strides=2, padding="SAME", rngs=rngs)
        self.depthwise = nnx.Conv(6, 12, (3, 3), feature_group_count=6, rngs=rngs)
        self.pointwise = nnx.Conv(12, 10, (1, 1), rngs=rngs)
        self.out = nnx.Linear(10, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = _sow(self, "silu_1", nnx.silu(_sow(self, "conv", self.conv(x))))
        y = _sow(self, "relu_1", nnx.relu(_sow(self, "depthwise", self.depthwise(y))))
        y = _sow(self, "elu_1", nnx.elu(_sow(self, "pointwise", self.pointwise(y)), alpha=0.5))
        y = _sow(self, "global_max_pool", y.max(axis=(1, 2)))
        return nnx.softmax(_sow(self, "logits", self.out(y)))


class Dilated(nnx.Module):
    """Dilated convs, a non-square kernel, asymmetric padding, strides; avg pool, flatten."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.a = nnx.Conv(3, 4, (3, 5), kernel_dilation=(2, 1), padding=((0, 2), (1, 3)), rngs=rngs)
        self.b = nnx.Conv(4, 4, (3, 3), strides=(2, 1), kernel_dilation=3, padding=3, rngs=rngs)
        self.c = nnx.Linear(3 * 6 * 4, 2, rngs=rngs)  # 14×11 → 12×11 → 6×11 → 3×6

    def __call__(self, x: jax.Array) -> jax.Array:
        y = _sow(self, "tanh_1", jnp.tanh(_sow(self, "a", self.a(x))))
        y = _sow(self, "leaky_relu_1", nnx.leaky_relu(_sow(self, "b", self.b(y)), 0.2))
        y = nnx.avg_pool(y, (2, 3), (2, 2), padding=((0, 1), (1, 1)), count_include_pad=False)
        y = _sow(self, "avg_pool_1", y)
        y = _sow(self, "flatten", y.reshape(y.shape[0], -1))
        return _sow(self, "logits", self.c(y))


class Inception(nnx.Module):
    """Parallel branches (1×1, 3×3, max pool → 1×1) concatenated on channels, twice."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.b1 = nnx.Conv(3, 4, (1, 1), rngs=rngs)
        self.b3 = nnx.Conv(3, 6, (3, 3), rngs=rngs)
        self.bp = nnx.Conv(3, 2, (1, 1), rngs=rngs)
        self.mix = nnx.Conv(16, 5, (3, 3), strides=2, padding="VALID", rngs=rngs)
        self.out = nnx.Linear(5, 6, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        a = _sow(self, "b1", self.b1(x))
        b = _sow(self, "gelu_1", nnx.gelu(_sow(self, "b3", self.b3(x)), approximate=False))
        p = _sow(self, "max_pool_1", nnx.max_pool(x, (3, 3), (1, 1), padding="SAME"))
        c = _sow(self, "bp", self.bp(p))
        y = _sow(self, "concat_1", jnp.concatenate([a, b, c], axis=-1))
        y = _sow(self, "concat_2", jnp.concatenate([y, a], axis=-1))  # a branch used twice
        y = _sow(self, "sigmoid_1", nnx.sigmoid(_sow(self, "mix", self.mix(y))))
        y = _sow(self, "global_avg_pool", jnp.mean(y, axis=(1, 2)))
        return _sow(self, "logits", self.out(y))


class Tall(nnx.Module):
    """A non-square grey input (20×12×1) through an nnx.Sequential inside a module."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.features = nnx.Sequential(
            nnx.Conv(1, 3, (5, 3), strides=(2, 1), rngs=rngs),
            functools.partial(nnx.gelu, approximate=True),
        )
        self.classifier = nnx.Linear(10 * 12 * 3, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = _sow(self, "gelu_1", self.features(x))
        _sow(self, "features.layers.0", self.features.layers[0](x))  # the conv's own value
        y = _sow(self, "flatten", y.reshape(y.shape[0], -1))
        return _sow(self, "logits", self.classifier(y))


ARCHITECTURES = {
    "residual+batchnorm": (ResNet, (16, 16, 3)),
    "depthwise": (Separable, (15, 13, 3)),
    "dilated": (Dilated, (14, 11, 3)),
    "concatenation": (Inception, (9, 9, 3)),
    "non-square input": (Tall, (20, 12, 1)),
}


def _trained_statistics(model: nnx.Module, x: np.ndarray) -> None:
    """Give every batch norm non-trivial running statistics (as training would)."""
    rng = np.random.default_rng(3)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.BatchNorm):
            c = node.mean.shape[0]
            node.mean[...] = jnp.asarray(rng.normal(0, 0.5, c), jnp.float32)
            node.var[...] = jnp.asarray(rng.uniform(0.3, 2.0, c), jnp.float32)
            if node.scale is not None:
                node.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, c), jnp.float32)
            node.bias[...] = jnp.asarray(rng.normal(0, 0.3, c), jnp.float32)


def _own_values(model: nnx.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every value the model sowed for ``x`` (in inference mode), by layer name."""
    model.eval()
    _, sown = nnx.capture(model, nnx.Intermediate)(jnp.asarray(x[None]))
    model.train()
    out = {}
    for path, value in jax.tree_util.tree_flatten_with_path(sown)[0]:
        key = next(str(getattr(k, "key", k)) for k in reversed(path) if "at_" in str(k))
        out[key.split("at_", 1)[1].replace("__", ".")] = np.asarray(value)[0]
    return out


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_layer_equals_the_modules_own_values(arch: str) -> None:
    cls, shape = ARCHITECTURES[arch]
    model = cls(nnx.Rngs(0))
    x = np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
    _trained_statistics(model, x)
    network = as_network(model, input_shape=shape)
    ours = network.activations(x)
    theirs = _own_values(model, x)
    checked = {"input", "probabilities"} | set(theirs)
    missing = [la.name for la in network.layers if network.key_of(la.name) not in checked]
    assert not missing, f"{arch}: layers without the module's own value: {missing}"
    for name, value in theirs.items():
        np.testing.assert_allclose(ours[name], value, atol=TOL, rtol=0, err_msg=f"{arch} {name}")
    np.testing.assert_allclose(
        ours["probabilities"], jax.nn.softmax(theirs["logits"]), atol=1e-6, err_msg=arch
    )
    check_every_neuron(network, x)
    # What each layer is, read from the module: sources name the module and this file.
    conv = next(la for la in network.layers if la.kind == "conv")
    assert re.fullmatch(r"\w+\.\w+ \(test_traced_networks\.py:\d+ in \w+\.__call__\)", conv.source)


def test_the_architectures_have_what_they_claim() -> None:
    layers = {
        arch: as_network(cls(nnx.Rngs(0)), input_shape=shape).layers
        for arch, (cls, shape) in ARCHITECTURES.items()
    }
    kinds = {arch: {la.kind for la in ls} for arch, ls in layers.items()}
    assert {"batchnorm", "add", "global_pool"} <= kinds["residual+batchnorm"]
    res = {la.name: la for la in layers["residual+batchnorm"]}
    assert res["add_1"].inputs == ("block1.bn2", "relu_1")  # the skip connection
    assert res["add_2"].inputs == ("block2.bn2", "block2.proj")
    assert res["block2.proj"].stride == (2, 2) and res["block2.proj"].kernel_size == (1, 1)
    sep = {la.name: la for la in layers["depthwise"]}
    assert sep["depthwise"].groups == 6 and sep["global_max_pool"].function == "max"
    assert sep["elu_1"].options == {"alpha": 0.5}
    dil = {la.name: la for la in layers["dilated"]}
    assert dil["a"].dilation == (2, 1) and dil["a"].padding == ((0, 2), (1, 3))
    assert dil["a"].kernel_size == (3, 5) and dil["b"].stride == (2, 1)
    assert dil["leaky_relu_1"].options == {"negative_slope": 0.2}
    assert dil["avg_pool_1"].options == {"count_include_pad": False}
    inc = {la.name: la for la in layers["concatenation"]}
    assert inc["concat_1"].inputs == ("b1", "gelu_1", "bp")
    assert inc["concat_2"].inputs == ("concat_1", "b1")
    assert inc["gelu_1"].options == {"approximate": False}
    tall = {la.name: la for la in layers["non-square input"]}
    assert tall["gelu_1"].options == {"approximate": True}
    assert tall["features.layers.0"].output_shape == (10, 12, 3)  # SAME, stride (2, 1)


def test_any_module_goes_into_the_widget_and_activations() -> None:
    model = Separable(nnx.Rngs(0))
    x = np.random.default_rng(0).uniform(0, 1, (15, 13, 3)).astype(np.float32)
    first = activations(x, model=model)
    model.out.bias[...] = model.out.bias[...] + 1.0  # trained further: read again
    np.testing.assert_allclose(
        activations(x, model=model)["logits"], first["logits"] + 1.0, atol=1e-6
    )
    w = CNNExplainer(model=model, input_shape=(15, 13, 3), classes=["a", "b", "c"])
    assert w.prediction in ("a", "b", "c")
    w.selected = {"layer": "depthwise", "index": 5, "y": 1, "x": 2}
    n = w.selected_neuron
    assert n.channels == (2, 3)
    assert abs(float((n.window * n.kernel).sum()) + n.bias - n.value) < TOL
    with pytest.raises(ValueError, match=r"give input_shape=\(H, W, C\) for this Separable"):
        as_network(model)


# -- refusals ------------------------------------------------------------------------------


def _line(fn: Any, text: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


class Doubles(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 2, (3, 3), rngs=rngs)
        self.out = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(x) * 2.0  # not an activation
        return self.out(y.mean(axis=(1, 2)))


class Sorts(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 2, (3, 3), rngs=rngs)
        self.out = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.cumsum(self.conv(x), axis=1)  # no layer computes this
        return self.out(y.mean(axis=(1, 2)))


class Masked(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 2, (3, 3), mask=jnp.ones((3, 3, 1, 2)).at[0].set(0), rngs=rngs)
        self.out = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.conv(x).mean(axis=(1, 2)))


class Cropping(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 2, (3, 3), padding=((-1, 0), (0, 0)), rngs=rngs)
        self.out = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.conv(x).mean(axis=(1, 2)))


class OneD(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 2, kernel_size=3, rngs=rngs)  # an int: a 1-D kernel in NNX
        self.out = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.conv(x).mean(axis=(1, 2)))


class NoHead(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 2, (3, 3), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(x).mean(axis=(1, 2))


class BadOption(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(1, 2, (3, 3), rngs=rngs)
        self.out = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = functools.partial(nnx.relu, foo=1)(self.conv(x))
        return self.out(y.mean(axis=(1, 2)))


@pytest.mark.parametrize(
    ("cls", "code", "message"),
    [
        (
            Doubles,
            "* 2.0",
            r"cannot explain the elementwise operations mul at {at}: they compute no activation",
        ),
        (Sorts, "cumsum", r"cannot explain 'cumsum' at {at}: not an operation the explainer knows"),
        (
            Masked,
            "self.conv(x)",
            r"cannot explain 'mul' at {at}: it computes with the parameter conv\.kernel .*masked",
        ),
        (
            Cropping,
            "self.conv(x)",
            r"cannot explain 'conv_general_dilated' at {at}: negative padding",
        ),
        (OneD, "self.conv(x)", r"cannot explain 'reshape' at {at}: reshaping to"),
    ],
)
def test_what_cannot_be_explained_is_refused_with_the_operation_and_line(
    cls: Any, code: str, message: str
) -> None:
    at = f"test_traced_networks.py:{_line(cls.__call__, code)} in {cls.__name__}.__call__"
    with pytest.raises(TraceError, match=message.format(at=re.escape(at))):
        network_from_module(cls(nnx.Rngs(0)), (6, 6, 1))


def test_a_model_without_class_scores_or_that_fails_is_refused_clearly() -> None:
    with pytest.raises(
        TraceError, match=r"output comes from global_pool 'global_avg_pool'.*final dense layer"
    ):
        network_from_module(NoHead(nnx.Rngs(0)), (6, 6, 1))
    with pytest.raises(
        ValueError, match=r"(?s)raised TypeError when run on an input shaped \(6, 6, 1\): .*'foo'"
    ):
        network_from_module(BadOption(nnx.Rngs(0)), (6, 6, 1))
    with pytest.raises(ValueError, match=r"when run on an input shaped \(6, 6, 2\): .*input_shape"):
        network_from_module(NoHead(nnx.Rngs(0)), (6, 6, 2))


def test_a_graph_network_is_not_saved_as_a_sequence(tmp_path: Any) -> None:
    trained = TrainedModel(ResNet(nnx.Rngs(0)), ("a", "b", "c", "d"), (16, 16, 3))
    with pytest.raises(
        ValueError, match=r"cannot save 'bn' \(batchnorm\): a model file holds a sequence"
    ):
        trained.save(tmp_path / "res.safetensors")
    assert not (tmp_path / "res.safetensors").exists()


def test_saliency_grad_cam_and_receptive_fields_follow_the_graph() -> None:
    model = ResNet(nnx.Rngs(0))
    x = np.random.default_rng(4).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    _trained_statistics(model, x)
    network = as_network(model, input_shape=(16, 16, 3))
    model.eval()
    graphdef, state = nnx.split(model)

    def logit(image: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(image[None])[0, 2]

    want = np.asarray(jax.grad(logit)(jnp.asarray(x)))
    np.testing.assert_allclose(saliency(x, 2, model=network), want, atol=1e-5)
    # Grad-CAM at block 1's output: the gradient reaches it through block 2's two paths.
    cam = grad_cam(x, "relu_3", 2, model=network)
    assert cam.shape == (16, 16) and (cam >= 0).all() and cam.max() > 0
    # block1's add reads bn2 (two 3×3 convs after relu_1) and relu_1 itself: the union.
    assert receptive_field("add_1", 5, 5, model=network) == ((2, 9), (2, 9))
    # block2.proj (1×1, stride 2) reads relu_3 at (0, 0): two 3×3 convs and the stem before.
    assert receptive_field("block2.proj", 0, 0, model=network) == ((0, 4), (0, 4))
