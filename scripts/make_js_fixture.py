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
channel), so `js/src/math.ts` is tested against JAX on more than one layer configuration.
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
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

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
    for path in sorted(out.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
