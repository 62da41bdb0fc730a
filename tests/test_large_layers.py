"""Large layers (issue 10): the update budget, the previews, and the page's ``fetch`` message.

A VGG-style network on 224×224×3 with 64 channels per conv (and its no-pooling and 8-GELU
variants, ``tests/large_networks.py``) must send at most 5 MB per image update, computed from
the message itself; the previews must be the maps' block means to within one quantisation step;
the exact values a view needs come from ``fetch``, whose requests are checked (the page is
not trusted) and whose answers are Python's own activations, in pieces small enough for
JupyterLab's websocket. Tiny VGG keeps its exact payload.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from flax import nnx
from large_networks import CLASSES, NETWORKS, SHAPE

from cnn_explainer_widget import CNNExplainer, Flatten
from cnn_explainer_widget import _fetch as fetch_module
from cnn_explainer_widget._fetch import MAX_FETCH_VALUES, FetchError, fetch_replies, parse_fetch
from cnn_explainer_widget._protocol import (
    UPDATE_BUDGET_BYTES,
    encode_activations,
    message_bytes,
    preview,
    preview_shape,
)


@functools.cache
def _large(name: str) -> CNNExplainer:
    return CNNExplainer(model=NETWORKS[name](), classes=CLASSES, input_shape=SHAPE)


@pytest.fixture(scope="module")
def vgg() -> CNNExplainer:
    return _large("vgg")


def _entries(msg):
    return {e["name"]: e for e in msg["layers"]}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_update_of_a_224x224x64_network_is_within_5_mb(name):
    w = (
        _large(name)
        if name == "vgg"
        else CNNExplainer(model=NETWORKS[name](), classes=CLASSES, input_shape=SHAPE)
    )
    msg = w._activations
    size = message_bytes(msg)
    assert size <= UPDATE_BUDGET_BYTES == 5_000_000, size
    # every map but the (small) input is a preview; vectors and the input stay exact
    acts = w.activations
    for e in msg["layers"]:
        value = w.network.output_of(acts, e["name"])
        if value.ndim == 3 and e["name"] != "input":
            assert "offset" not in e and "derived" not in e
            c, h, wd = e["preview"]["shape"]
            assert (c, h, wd) == (value.shape[2], *[min(56, n) for n in value.shape[:2]])
        else:
            data = np.frombuffer(msg["data"], "<f4")
            got = data[e["offset"] : e["offset"] + value.size]
            want = value.transpose(2, 0, 1) if value.ndim == 3 else value
            np.testing.assert_array_equal(got, want.reshape(-1))
        np.testing.assert_array_equal(
            e["min"],
            value.min(axis=(0, 1) if value.ndim == 3 else None, keepdims=value.ndim == 1).reshape(
                -1
            ),
        )
        np.testing.assert_array_equal(
            e["max"],
            value.max(axis=(0, 1) if value.ndim == 3 else None, keepdims=value.ndim == 1).reshape(
                -1
            ),
        )
    # the update the page used to get: every map in float32 (the 17.5 MB for vgg)
    exact = encode_activations(w.network, acts, 1, "x", "python")
    assert "previews" in exact
    full = sum(v.nbytes for k, v in acts.items() if k not in ("logits",))
    assert size < full / 3


def test_previews_are_block_means_within_one_step(vgg):
    msg, acts = vgg._activations, vgg.activations
    previews = np.frombuffer(msg["previews"], np.uint8)
    for name in ("conv_1", "relu_2", "max_pool_1", "conv_4"):
        e = _entries(msg)[name]
        value = acts[name]
        c, h, w = e["preview"]["shape"]
        q = previews[e["preview"]["offset"] : e["preview"]["offset"] + c * h * w].reshape(c, h, w)
        lo, hi = np.array(e["min"]), np.array(e["max"])
        approx = lo[:, None, None] + q * ((hi - lo) / 255)[:, None, None]
        fy, fx = value.shape[0] // h, value.shape[1] // w
        mean = value.reshape(h, fy, w, fx, c).astype(np.float64).mean(axis=(1, 3))
        step = ((hi - lo) / 255)[:, None, None]
        assert np.all(np.abs(approx - mean.transpose(2, 0, 1)) <= step / 2 + 1e-5), name


def test_preview_of_uneven_sizes_and_flat_channels():
    rng = np.random.default_rng(0)
    value = rng.normal(size=(62, 31, 3)).astype(np.float32)
    value[..., 2] = 7.0  # one value: all zeros
    assert preview_shape(62, 31) == (56, 28)
    lo, hi = value.min(axis=(0, 1)), value.max(axis=(0, 1))
    q = preview(value, lo, hi)
    assert q.shape == (3, 56, 28) and q.dtype == np.uint8
    assert not q[2].any()
    # an independent block mean: row block i covers [i*62//56, (i+1)*62//56)
    rows = [(i * 62 // 56, (i + 1) * 62 // 56) for i in range(56)]
    cols = [(j * 31 // 28, (j + 1) * 31 // 28) for j in range(28)]
    for ch in range(2):
        step = (hi[ch] - lo[ch]) / 255
        for i in (0, 13, 55):
            for j in (0, 9, 27):
                (a, b), (c, d) = rows[i], cols[j]
                m = value[a:b, c:d, ch].astype(np.float64).mean()
                assert abs(lo[ch] + q[ch, i, j] * step - m) <= step / 2 + 1e-5
    # a small map is not scaled
    assert preview_shape(20, 36) == (20, 36)


def test_tiny_vgg_keeps_its_exact_payload():
    w = CNNExplainer()
    msg = w._activations
    assert "previews" not in msg
    assert all("preview" not in e for e in msg["layers"])
    assert message_bytes(msg) < 420_000  # 405 KB of float32 maps, as before


def test_too_large_a_payload_is_warned_about():
    r = nnx.Rngs(0)
    # 64×64 maps with 256 channels: 4 MB each, previews of 800 KB each, eight of them
    model = nnx.Sequential(
        nnx.Conv(3, 256, (1, 1), rngs=r),
        *[nnx.tanh] * 7,
        functools.partial(nnx.avg_pool, window_shape=(64, 64), strides=(64, 64)),
        Flatten(),
        nnx.Linear(256, 2, rngs=r),
    )
    with pytest.warns(UserWarning, match=r"sends \d+\.\d MB .* Use a smaller input_shape"):
        w = CNNExplainer(model=model, input_shape=(64, 64, 3), classes=["a", "b"])
    assert message_bytes(w._activations) > UPDATE_BUDGET_BYTES


# ---- fetch ------------------------------------------------------------------------------------


def _ask(w, content):
    """What the widget sends back for a ``fetch`` message (through its real handler)."""
    sent = []
    w.send = lambda msg, buffers=None: sent.append((msg, buffers))
    try:
        w._handle_custom_msg(content, [])
    finally:
        del w.send
    return sent


def _assemble(sent, shape):
    c, h, w = shape
    out = np.full((c, h, w), np.nan, np.float32)
    for msg, buffers in sent:
        assert len(buffers) == 1 and len(buffers[0]) <= fetch_module.MAX_PART_BYTES
        y0, y1 = msg["rows"]
        vals = np.frombuffer(buffers[0], "<f4").reshape(len(msg["channels"]), y1 - y0, w)
        out[msg["channels"], y0:y1] = vals
    return out


def test_fetch_answers_pythons_own_values(vgg):
    seq = vgg._activations["seq"]
    req = {
        "type": "fetch",
        "id": 7,
        "seq": seq,
        "layers": [
            {"layer": "relu_1", "channels": list(range(64))},
            {"layer": "conv_2", "channels": [5]},
        ],
    }
    sent = _ask(vgg, req)
    assert all(m["id"] == 7 and m["seq"] == seq and "error" not in m for m, _ in sent)
    assert [m["part"] for m, _ in sent] == list(range(len(sent)))
    assert {m["parts"] for m, _ in sent} == {len(sent)}
    relu = _assemble([s for s in sent if s[0]["layer"] == "relu_1"], (64, 224, 224))
    np.testing.assert_array_equal(relu, vgg.activations["relu_1"].transpose(2, 0, 1))
    conv = [s for s in sent if s[0]["layer"] == "conv_2"]
    assert (
        len(conv) == 1 and conv[0][0]["channels"] == [5] and conv[0][0]["shape"] == [64, 224, 224]
    )
    np.testing.assert_array_equal(
        np.frombuffer(conv[0][1][0], "<f4").reshape(224, 224), vgg.activations["conv_2"][..., 5]
    )


def test_fetch_splits_large_maps_by_rows(vgg, monkeypatch):
    monkeypatch.setattr(fetch_module, "MAX_PART_BYTES", 224 * 4 * 50)  # 50 rows of one channel
    req = {
        "type": "fetch",
        "id": 1,
        "seq": vgg._activations["seq"],
        "layers": [{"layer": "input", "channels": [2, 0]}],
    }
    sent = _ask(vgg, req)
    assert [m["rows"] for m, _ in sent[:5]] == [
        [0, 50],
        [50, 100],
        [100, 150],
        [150, 200],
        [200, 224],
    ]
    got = _assemble(sent, (3, 224, 224))
    np.testing.assert_array_equal(got[[0, 2]], vgg.activations["input"].transpose(2, 0, 1)[[0, 2]])
    assert np.isnan(got[1]).all()


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        (None, "'layers' must be a list"),
        ([], "'layers' must be a list"),
        ([{"layer": "conv_1", "channels": [0]}] * 9, "'layers' must be a list of 1 to 8"),
        ([{"layer": "nope", "channels": [0]}], "no map layer nope; map layers are input, conv_1"),
        ([{"layer": "output", "channels": [0]}], "no map layer output"),
        (
            [{"layer": "conv_1", "channels": [64]}],
            r"channels of conv_1 must be distinct indices in \[0, 64\)",
        ),
        ([{"layer": "conv_1", "channels": [1, 1]}], "distinct"),
        ([{"layer": "conv_1", "channels": [True]}], "distinct"),
        ([{"layer": "conv_1", "channels": []}], "distinct"),
        ([{"layer": "conv_1", "channels": "0"}], "distinct"),
        ([{"layer": "conv_1"}], r"each entry must be \{'layer'"),
        ([{"layer": "conv_1", "channels": [0], "x": 1}], "each entry"),
        (["conv_1"], "each entry"),
        (
            [
                {"layer": n, "channels": list(range(64))}
                for n in ("conv_1", "relu_1", "conv_2", "relu_2")
            ]
            * 2,
            f"at most {MAX_FETCH_VALUES} values",
        ),
    ],
)
def test_fetch_refuses_bad_requests(vgg, layers, match):
    req = {"type": "fetch", "id": 3, "seq": vgg._activations["seq"], "layers": layers}
    sent = _ask(vgg, req)
    assert len(sent) == 1
    msg, buffers = sent[0]
    assert msg["id"] == 3 and not buffers
    assert msg["error"].startswith("fetch refused: ")
    with pytest.raises(FetchError, match=match):
        parse_fetch(vgg.network, req)


def test_fetch_for_another_image_is_stale_and_junk_is_ignored(vgg):
    seq = vgg._activations["seq"]
    layers = [{"layer": "conv_1", "channels": [0]}]
    sent = _ask(vgg, {"type": "fetch", "id": 4, "seq": seq - 1, "layers": layers})
    assert sent == [({"type": "values", "id": 4, "seq": seq - 1, "error": "stale"}, [])]
    for junk in ({"type": "fetch"}, {"type": "fetch", "id": "1", "seq": seq, "layers": layers},
                 {"type": "fetch", "id": -1, "seq": seq, "layers": layers},
                 {"type": "fetch", "id": 2**53, "seq": seq, "layers": layers},
                 {"type": "fetch", "id": 1, "seq": 1.0, "layers": layers}):  # fmt: skip
        assert _ask(vgg, junk) == []
    # the widget's state is untouched by all of this
    assert vgg._activations["seq"] == seq and vgg.error == ""


def test_fetch_replies_follow_the_image_shown(vgg, image_dir):
    seq = vgg._activations["seq"]
    vgg.image = image_dir / "koala_1.jpeg"
    assert vgg._activations["seq"] == seq + 1
    req = {
        "type": "fetch",
        "id": 9,
        "seq": seq + 1,
        "layers": [{"layer": "max_pool_2", "channels": [63]}],
    }
    ((_, buffers),) = list(fetch_replies(vgg.network, vgg.activations, seq + 1, req))
    np.testing.assert_array_equal(
        np.frombuffer(buffers[0], "<f4").reshape(56, 56), vgg.activations["max_pool_2"][..., 63]
    )
