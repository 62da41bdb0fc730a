"""Write the front end's test fixtures: real payload messages from the Python package.

Usage: ``python scripts/make_js_fixture.py`` (from the repository root). Writes, into
``js/test/fixtures/``, for each network ``<name>``:

- ``<name>.network.json`` and ``<name>.network.bin``: `encode_network`'s header and ``data``;
- ``<name>.activations.json`` and ``<name>.activations.bin.gz``: `encode_activations` for one
  image with every map sent (``derive=False``: JAX's own numbers, the ground truth; gzipped,
  the maps are most of the bytes);
- ``<name>.derived.json`` and ``<name>.derived.bin.gz``: the same message as the widget sends
  it, ReLU and max-pool maps as recipes the front end rebuilds.

Networks: ``tiny_vgg`` (the shipped weights, espresso image) and ``odd`` (a small random
network with stride 2, SAME and asymmetric padding, a non-square kernel, average pooling with and
without padded cells counted, padded max pooling, several activation functions and one input
channel), so `js/src/math.ts` is tested against JAX on more than one layer configuration, and
``graph`` (`graph_network`: a network built from `Layer` records with a residual block with batch
norm, a depthwise convolution with a channel multiplier, stride and asymmetric padding, a dilated
convolution, a channel concatenation, a batch norm without scale and a global average pool, on a
non-square input).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np
from flax import nnx

from cnn_explainer_widget import Flatten, Network, activations, as_network, load_image
from cnn_explainer_widget._protocol import encode_activations, encode_network
from cnn_explainer_widget.images import default_image_path
from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

Shape = tuple[int, ...]
OUT = Path(__file__).resolve().parent.parent / "js" / "test" / "fixtures"


def odd_model() -> nnx.Sequential:
    """A small network whose every layer differs from Tiny VGG's configuration."""
    rngs = nnx.Rngs(0)
    return nnx.Sequential(
        nnx.Conv(1, 4, (3, 3), strides=2, padding="SAME", rngs=rngs),  # 17 -> 9, pad (1, 1)
        functools.partial(nnx.leaky_relu, negative_slope=0.1),
        # SAME on 9: pad (0, 1), the padded zeros count in the mean.
        functools.partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2), padding="SAME"),
        nnx.Conv(4, 3, (2, 3), strides=(1, 2), padding=((1, 0), (2, 1)), rngs=rngs),  # 5×3
        nnx.gelu,
        functools.partial(nnx.max_pool, window_shape=(3, 3), strides=(2, 1), padding="SAME"),
        nnx.elu,
        functools.partial(
            nnx.avg_pool,
            window_shape=(2, 2),
            strides=(1, 1),
            padding=((1, 0), (1, 0)),
            count_include_pad=False,
        ),
        nnx.silu,
        nnx.tanh,
        nnx.sigmoid,
        Flatten(),
        nnx.Linear(27, 5, rngs=rngs),
    )


def graph_network() -> Network:
    """A small graph network built from `Layer` records, with seeded random weights."""
    rng = np.random.default_rng(10)

    def conv(name: str, shape: Shape, out: Shape, cin: int, **kw: object) -> Layer:
        kernel = rng.normal(0, 0.4, (3, 3, cin, out[2])).astype(np.float32)
        params[name] = {"kernel": kernel, "bias": rng.normal(0, 0.1, out[2]).astype(np.float32)}
        pad = kw.pop("padding", ((1, 1), (1, 1)))
        return Layer(name, "conv", shape, out, (3, 3), kw.pop("stride", (1, 1)), pad, **kw)  # type: ignore[arg-type]

    def norm(name: str, shape: Shape, scale: bool = True, **kw: object) -> Layer:
        c = shape[-1]
        params[name] = {
            "mean": rng.normal(0, 0.3, c).astype(np.float32),
            "var": rng.uniform(0.2, 2.0, c).astype(np.float32),
            "scale": rng.uniform(0.5, 1.5, c).astype(np.float32) if scale else None,
            "bias": rng.normal(0, 0.2, c).astype(np.float32),
        }
        return Layer(name, "batchnorm", shape, shape, options={"epsilon": 1e-5}, **kw)  # type: ignore[arg-type]

    params: dict[str, dict[str, np.ndarray | None]] = {}
    big, small = (12, 10, 4), (6, 5, 4)
    layers = [
        conv("conv_1", (12, 10, 3), big, 3),
        norm("bn_1", big),
        Layer("relu_1", "activation", big, big, function="relu"),
        conv("conv_2", big, big, 4),
        norm("bn_2", big),
        Layer("add_1", "add", big, big, inputs=("bn_2", "relu_1")),
        Layer("relu_2", "activation", big, big, function="relu"),
        # Depthwise with a channel multiplier of 2: 12×10 → 6×5, padding ((1, 0), (0, 1)).
        conv("depthwise_1", big, (6, 5, 8), 1, stride=(2, 2), padding=((1, 0), (0, 1)), groups=4),
        conv("dilated_1", (6, 5, 8), small, 8, padding=((2, 2), (2, 2)), dilation=(2, 2)),
        Layer("concat_1", "concat", (6, 5, 12), (6, 5, 12), inputs=("dilated_1", "depthwise_1")),
        norm("bn_3", (6, 5, 12), scale=False),
        Layer("gap", "global_pool", (6, 5, 12), (12,), function="avg"),
        Layer("output", "dense", (12,), (5,)),
        Layer("softmax", "softmax", (5,), (5,)),
    ]
    params["output"] = {
        "kernel": rng.normal(0, 0.5, (12, 5)).astype(np.float32),
        "bias": rng.normal(0, 0.1, 5).astype(np.float32),
    }
    return Network(layers, params, (12, 10, 3), list("vwxyz"), name="graph")


def dump(
    out: Path, name: str, network: Network, acts: dict[str, np.ndarray], image_name: str
) -> None:
    """Write one network's and one image's messages into ``out``."""
    net_msg = encode_network(network)
    (out / f"{name}.network.bin").write_bytes(net_msg.pop("data"))
    (out / f"{name}.network.json").write_text(json.dumps(net_msg, indent=1) + "\n")
    for stem, derive in (("activations", False), ("derived", True)):
        act_msg = encode_activations(
            network, acts, seq=1, image_name=image_name, image_source="default", derive=derive
        )
        data = act_msg.pop("data")
        (out / f"{name}.{stem}.bin.gz").write_bytes(gzip.compress(data, 9, mtime=0))
        (out / f"{name}.{stem}.json").write_text(json.dumps(act_msg, indent=1) + "\n")


def main(out: Path = OUT) -> None:
    """Write both fixtures into ``out`` (tests/test_js_fixtures.py writes them elsewhere)."""
    out.mkdir(parents=True, exist_ok=True)
    image = "espresso_1.jpeg"
    x = load_image(default_image_path(image))
    dump(out, "tiny_vgg", tiny_vgg_network(), activations(x), image)

    network = as_network(odd_model(), classes=list("abcde"), input_shape=(17, 17, 1))
    gray = load_image(default_image_path("koala_1.jpeg"), size=17, channels=1)
    # Centre the input on zero so the first layer sees negative values too.
    dump(out, "odd", network, network.activations(gray - 0.5), "koala_1.jpeg (17×17 gray − 0.5)")

    graph = graph_network()
    image = load_image(default_image_path("koala_1.jpeg"), size=12)[:, 1:11]
    dump(out, "graph", graph, graph.activations(image), "koala_1.jpeg (12×12, columns 1-10)")
    for path in sorted(out.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
