"""Convert the original CNN Explainer's TF.js Tiny VGG into this project's weights file.

Usage::

    python weights/convert.py [SOURCE_DIR] [OUTPUT]

SOURCE_DIR holds the TF.js layers-model (``model.json`` + ``group1-shard1of1.bin``); it defaults
to ``../shared/cnn-explainer-original/weights`` next to the checkout. OUTPUT defaults to
``weights/tiny_vgg.safetensors``. The conversion is deterministic: running it again reproduces
the shipped file bit for bit (tests/test_weights.py checks this).

Layout of the output: one float32 tensor per parameter, named like the Flax NNX state of
`cnn_explainer_widget.TinyVGG` (``conv_1_1.kernel``, ``conv_1_1.bias``, ..., ``output.kernel``).
Kernels keep Keras/Flax layouts: convolutions HWIO (kh, kw, c_in, c_out), the dense kernel
(1690, 10) whose rows follow Keras's flatten order of (h, w, c), channels fastest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnn_explainer_widget._safetensors import dumps  # noqa: E402
from cnn_explainer_widget.tiny_vgg import CLASS_NAMES  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "cnn-explainer-original" / "weights"
DEFAULT_OUTPUT = ROOT / "weights" / "tiny_vgg.safetensors"


def convert(source: Path) -> bytes:
    """Read the TF.js model in ``source`` and return the safetensors bytes."""
    manifest = json.loads((source / "model.json").read_text())["weightsManifest"]
    tensors: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((source / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] != "float32":
                raise ValueError(f"{spec['name']}: unsupported dtype {spec['dtype']}")
            count = int(np.prod(spec["shape"]))
            values = np.frombuffer(blob, dtype="<f4", count=count, offset=offset)
            offset += 4 * count
            # "conv_1_1/kernel" -> "conv_1_1.kernel": the NNX state path of the same parameter.
            tensors[spec["name"].replace("/", ".")] = values.reshape(spec["shape"])
        if offset != len(blob):
            raise ValueError(f"manifest covers {offset} bytes but the shards hold {len(blob)}")
    metadata = {
        "format": "cnn-explainer-widget/1",
        "architecture": "tiny_vgg",
        "classes": json.dumps(list(CLASS_NAMES)),
        "source": "poloclub/cnn-explainer (MIT), TF.js layers-model, via weights/convert.py",
    }
    return dumps(tensors, metadata)


def main(argv: list[str]) -> int:
    """Run the conversion from the command line."""
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT
    data = convert(source)
    output.write_bytes(data)
    print(f"wrote {output} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
