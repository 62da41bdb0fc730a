"""What the page sends must arrive or be refused with a message: pings answered, uploads in pieces.

The page's side (ping timing, the banner, splitting files) is tested with vitest
(``js/test/connection.test.ts``) and in a real JupyterLab (``tests/browser/test_browser_connection.py``).
"""

from __future__ import annotations

import pytest

from cnn_explainer_widget import CNNExplainer
from cnn_explainer_widget._uploads import MAX_CHUNK_BYTES, MAX_UPLOAD_BYTES

from conftest import ROOT

JPEG = (ROOT / "cnn_explainer_widget" / "images" / "koala_1.jpeg").read_bytes()
PIECE = 4 * 1024 * 1024


@pytest.fixture
def w(monkeypatch):
    w = CNNExplainer()
    w.sent = []
    monkeypatch.setattr(w, "send", lambda content, buffers=None: w.sent.append(content))
    return w


def send_pieces(w, data: bytes, name="big.jpeg", upload_id=1, piece=PIECE, order=None):
    count = max(1, -(-len(data) // piece))
    for index in order if order is not None else range(count):
        msg = {"type": "upload-chunk", "id": upload_id, "index": index, "count": count}
        msg.update(size=len(data), name=name)
        w._handle_custom_msg(msg, [data[index * piece : (index + 1) * piece]])


def test_ping_is_answered_with_its_id(w):
    w._handle_custom_msg({"type": "ping", "id": 7}, [])
    assert w.sent == [{"type": "pong", "id": 7}]
    w._handle_custom_msg({"type": "ping", "id": "7"}, [])  # not an int: ignored
    assert len(w.sent) == 1


@pytest.mark.parametrize("mib", [9, 12, 19])
def test_pieces_of_a_large_upload_are_reassembled(w, mib):
    data = JPEG + b"\0" * (mib * 1024 * 1024 - len(JPEG))  # a JPEG with padding after its end
    send_pieces(w, data, name=f"koala-{mib}.jpeg")
    assert w.error == ""
    assert w.image_name == f"koala-{mib}.jpeg"
    assert w.prediction == "koala"
    assert w._uploads._chunks is None  # nothing held after the upload


def test_upload_over_the_limit_is_refused_before_any_piece_is_kept(w):
    before = w.image_name
    size = MAX_UPLOAD_BYTES + 1
    w._handle_custom_msg(
        {
            "type": "upload-chunk",
            "id": 1,
            "index": 0,
            "count": 6,
            "size": size,
            "name": "huge.jpeg",
        },
        [b"\0" * 16],
    )
    assert f"uploads up to {MAX_UPLOAD_BYTES:,} bytes" in w.error
    assert w._uploads._chunks is None and w.image_name == before


@pytest.mark.parametrize(
    "case",
    [
        "out of order",
        "missing first",
        "size lies",
        "piece too big",
        "two buffers",
        "no buffer",
        "id changes",
    ],
)
def test_inconsistent_pieces_drop_the_upload_with_a_message(w, case):
    before = w.image_name
    data = JPEG + b"\0" * (9 * 1024 * 1024)
    if case == "out of order":
        send_pieces(w, data, order=[0, 2, 1])
    elif case == "missing first":
        send_pieces(w, data, order=[1, 2])
    elif case == "size lies":
        msg = {"type": "upload-chunk", "id": 1, "index": 0, "count": 1, "size": 10, "name": "x"}
        w._handle_custom_msg(msg, [JPEG])
    elif case == "piece too big":
        send_pieces(w, JPEG + b"\0" * MAX_CHUNK_BYTES, piece=MAX_CHUNK_BYTES + len(JPEG))
    elif case == "two buffers":
        msg = {"type": "upload-chunk", "id": 1, "index": 0, "count": 1, "size": 4, "name": "x"}
        w._handle_custom_msg(msg, [b"ab", b"cd"])
    elif case == "no buffer":
        msg = {"type": "upload-chunk", "id": 1, "index": 0, "count": 1, "size": 4, "name": "x"}
        w._handle_custom_msg(msg, [])
    elif case == "id changes":
        send_pieces(w, data, order=[0])
        msg = {"type": "upload-chunk", "id": 2, "index": 1, "count": 3, "size": len(data)}
        w._handle_custom_msg({**msg, "name": "big.jpeg"}, [data[PIECE : 2 * PIECE]])
    assert "arrived incomplete" in w.error
    assert w.image_name == before
    assert w._uploads._chunks is None


def test_a_new_upload_replaces_an_unfinished_one(w):
    data = JPEG + b"\0" * (9 * 1024 * 1024)
    send_pieces(w, data, name="first.jpeg", upload_id=1, order=[0, 1])
    send_pieces(w, JPEG, name="second.jpeg", upload_id=2)
    assert w.error == "" and w.image_name == "second.jpeg"
    assert w._uploads._chunks is None


def test_malformed_piece_messages_are_ignored(w):
    for msg in [
        {"type": "upload-chunk"},
        {"type": "upload-chunk", "id": "1", "index": 0, "count": 1, "size": 3},
        {"type": "upload-chunk", "id": 1, "index": 0.0, "count": 1, "size": 3},
    ]:
        w._handle_custom_msg(msg, [b"abc"])
    assert w.error == "" and w._uploads._chunks is None
