"""top_activations against a brute-force numpy ranking; sharded over 2 devices as over 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_explainer_widget import activations, load_image, receptive_field, top_activations
from cnn_explainer_widget.scan import _scanner, image_files
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

ROOT = Path(__file__).resolve().parents[1]


def brute_force(floats: np.ndarray, layer: str, index: int, k: int):
    """Rank with numpy: every image's full forward pass, max and first argmax of the map."""
    network = tiny_vgg_network()
    maps = np.concatenate(
        [
            activations(floats[i : i + 16])[network.key_of(layer)][..., index]
            for i in range(0, len(floats), 16)
        ]
    )
    flat = maps.reshape(len(maps), -1)
    values = flat.max(axis=1)
    where = flat.argmax(axis=1)
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]
    width = maps.shape[2] if maps.ndim == 3 else 1
    return [(i, float(values[i]), (int(where[i] // width), int(where[i] % width))) for i in order]


def assert_same_ranking(got, want):
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[2] for g in got] == [w[2] for w in want]
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], atol=1e-5, rtol=1e-5)
    assert all(type(i) is int and type(v) is float for i, v, _ in got)


@pytest.fixture(scope="module")
def uint8_images():
    return np.random.default_rng(0).integers(0, 256, (37, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize(("layer", "index"), [("conv_2_1", 4), ("max_pool_1", 7), ("output", 6)])
def test_array_matches_brute_force(uint8_images, layer, index):
    # 37 images in batches of 8: the last batch is padded; the padding never enters the list.
    got = top_activations(uint8_images, layer, index, k=6, batch_size=8, progress=False)
    want = brute_force(uint8_images.astype(np.float32) / 255.0, layer, index, 6)
    assert_same_ranking(got, want)
    if layer == "output":
        assert all(p == (0, 0) for _, _, p in got)


def test_float_array_and_k_beyond_n(uint8_images):
    floats = uint8_images[:5].astype(np.float64) / 255.0
    got = top_activations(floats, "relu_2_2", 1, k=9, progress=False)
    assert len(got) == 5
    assert_same_ranking(got, brute_force(floats.astype(np.float32), "relu_2_2", 1, 9))


def test_ties_go_to_the_lower_index(uint8_images):
    same = np.repeat(uint8_images[:1], 6, axis=0)
    got = top_activations(same, "conv_1_1", 0, k=4, batch_size=4, progress=False)
    assert [i for i, _, _ in got] == [0, 1, 2, 3]
    assert len({v for _, v, _ in got}) == 1


def test_folder_matches_brute_force(tmp_path, uint8_images):
    # Nested folders, other sizes (load_image centre-crops them) and a file that is not an image.
    for j in range(9):
        sub = tmp_path / ("b" if j % 2 else "a")
        sub.mkdir(exist_ok=True)
        pixels = (
            np.kron(uint8_images[j], np.ones((2, 2, 1), np.uint8))
            if j % 3 == 0
            else uint8_images[j]
        )
        Image.fromarray(pixels).save(sub / f"{j}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    files = image_files(tmp_path)
    assert len(files) == 9 and files == sorted(files)
    floats = np.stack([load_image(f) for f in files])
    got = top_activations(tmp_path, "conv_2_2", 3, k=4, batch_size=4, progress=False)
    assert_same_ranking(got, brute_force(floats, "conv_2_2", 3, 4))
    assert_same_ranking(top_activations(str(tmp_path), "conv_2_2", 3, k=4, progress=False), got)


def test_generator_matches_array(uint8_images, capsys):
    def stream():  # no len(): the bar counts without a total
        for j, image in enumerate(uint8_images):
            yield image if j % 2 else image.astype(np.float32) / 255.0

    got = top_activations(stream(), "relu_2_1", 8, k=5, batch_size=8, progress=True)
    assert_same_ranking(got, brute_force(uint8_images.astype(np.float32) / 255.0, "relu_2_1", 8, 5))
    assert "relu_2_1[8]" in capsys.readouterr().err  # the tqdm bar
    listed = top_activations(
        [Image.fromarray(im) for im in uint8_images], "relu_2_1", 8, k=5, progress=False
    )
    assert [i for i, _, _ in listed] == [i for i, _, _ in got]


def test_compiled_once_per_layer(uint8_images):
    network = tiny_vgg_network()
    for index in (0, 5, 9):
        top_activations(uint8_images, "relu_1_2", index, k=2, batch_size=16, progress=False)
    # One executable for every neuron of the layer (and no recompilation per batch).
    assert _scanner(network, "relu_1_2").fn._cache_size() == 1


@pytest.mark.parametrize(
    ("images", "args", "error", "match"),
    [
        (np.zeros((3, 32, 32, 3), np.uint8), ("conv_1_1", 0), ValueError, r"\(N, 64, 64, 3\)"),
        (np.zeros((0, 64, 64, 3), np.uint8), ("conv_1_1", 0), ValueError, "no images"),
        (np.zeros((2, 64, 64, 3), np.int32), ("conv_1_1", 0), TypeError, "uint8 or floats"),
        (np.full((2, 64, 64, 3), 2.0), ("conv_1_1", 0), ValueError, r"in \[0, 1\]"),
        (np.zeros((2, 64, 64, 3), np.uint8), ("conv_7", 0), ValueError, "one of"),
        (np.zeros((2, 64, 64, 3), np.uint8), ("softmax", 0), ValueError, "one of"),
        (np.zeros((2, 64, 64, 3), np.uint8), ("conv_1_1", 10), ValueError, "10 neurons"),
        (np.zeros((2, 64, 64, 3), np.uint8), ("conv_1_1", "2"), ValueError, "must be an int"),
        (np.zeros((2, 64, 64, 3), np.uint8), ("conv_1_1", 0, 0), ValueError, "k must be"),
        (42, ("conv_1_1", 0), TypeError, "iterable of images"),
        ("/no/such/folder", ("conv_1_1", 0), ValueError, "not a folder"),
        ([np.zeros((64, 64, 3), np.uint8), "nope.png"], ("conv_1_1", 0), ValueError, "image 1"),
    ],
)
def test_bad_input_is_refused_clearly(images, args, error, match):
    with pytest.raises(error, match=match):
        top_activations(images, *args, progress=False)


def test_receptive_field_by_hand():
    assert receptive_field("conv_1_1", 5, 7) == ((5, 8), (7, 10))
    # max_pool_1 (y, x) <- relu_1_2 rows 2y..2y+1 <- conv_1_1 rows 2y..2y+3 <- input 2y..2y+5
    assert receptive_field("max_pool_1", 3, 0) == ((6, 12), (0, 6))
    # relu_2_2 row 0 <- relu_2_1 rows 0..2 <- max_pool_1 rows 0..4 <- relu_1_2 rows 0..9
    # <- relu_1_1 rows 0..11 <- input rows 0..13; column 25 <- 25..29 <- 50..59 <- 50..61 <- 50..63
    assert receptive_field("relu_2_2", 0, 25) == ((0, 14), (50, 64))
    assert receptive_field("output", 0, 0) == ((0, 64), (0, 64))
    with pytest.raises(ValueError, match=r"y must be an int in \[0, 25\]"):
        receptive_field("relu_2_2", 26, 0)


SUBPROCESS = """
import json, sys
import numpy as np
import jax
from cnn_explainer_widget import top_activations
from cnn_explainer_widget.tiny_vgg import tiny_vgg_network
from cnn_explainer_widget.scan import _scanner
images = np.random.default_rng(0).integers(0, 256, (37, 64, 64, 3), dtype=np.uint8)
out = {
    "devices": len(jax.devices()),
    # batch_size 7 is padded up to 8, a multiple of 2 devices
    "conv": top_activations(images, "conv_2_2", 3, k=7, batch_size=7, progress=False),
    "dense": top_activations(iter(images), "output", 6, k=4, batch_size=7, progress=False),
    "mesh": _scanner(tiny_vgg_network(), "conv_2_2").mesh.size,
}
json.dump(out, sys.stdout)
"""


def run_with_devices(n: int) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_two_devices_give_the_one_device_result():
    one, two = run_with_devices(1), run_with_devices(2)
    assert (one["devices"], one["mesh"]) == (1, 1)
    assert (two["devices"], two["mesh"]) == (2, 2)  # the scan really was split over 2 devices
    for key in ("conv", "dense"):
        assert [r[0] for r in two[key]] == [r[0] for r in one[key]]
        assert [r[2] for r in two[key]] == [r[2] for r in one[key]]
        np.testing.assert_allclose([r[1] for r in two[key]], [r[1] for r in one[key]], rtol=1e-6)
