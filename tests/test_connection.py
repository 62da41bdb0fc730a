"""What the page sends must arrive or be refused with a message: pings answered, uploads in pieces.

The pieces of an upload may be handled in any order and on two threads at once (ipykernel 7
routes each comm message to the thread that last published on the comm; see
`cnn_explainer_widget._uploads`): they are kept by index and put together when all are there.
The page's side (ping timing, the banner, splitting files) is tested with vitest
(``js/test/connection.test.ts``) and in a real JupyterLab (``tests/browser/test_browser_connection.py``).
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from cnn_explainer_widget import CNNExplainer
from cnn_explainer_widget._uploads import (
    MAX_CHUNK_BYTES,
    MAX_UPLOAD_BYTES,
    STALE_SECONDS,
    ChunkedUploads,
    UploadRefused,
)

from conftest import ROOT

JPEG = (ROOT / "cnn_explainer_widget" / "images" / "koala_1.jpeg").read_bytes()
PIECE = 4 * 1024 * 1024


@pytest.fixture
def w(monkeypatch):
    w = CNNExplainer()
    w.sent = []
    monkeypatch.setattr(w, "send", lambda content, buffers=None: w.sent.append(content))
    return w


def pieces(data: bytes, name="big.jpeg", upload_id=1, piece=PIECE):
    """The messages the page sends for ``data`` (js/src/ui/upload.ts), in its order."""
    count = max(1, -(-len(data) // piece))
    return [
        (
            {"type": "upload-chunk", "id": upload_id, "index": i, "count": count}
            | {"size": len(data), "name": name},
            [data[i * piece : (i + 1) * piece]],
        )
        for i in range(count)
    ]


def send_pieces(w, data: bytes, name="big.jpeg", upload_id=1, piece=PIECE, order=None):
    msgs = pieces(data, name, upload_id, piece)
    for index in order if order is not None else range(len(msgs)):
        w._handle_custom_msg(*msgs[index])


def padded(mib: float) -> bytes:
    """A valid JPEG of ``mib`` MiB: koala_1.jpeg with zeros after its end (decoders ignore them)."""
    return JPEG + b"\0" * (int(mib * 1024 * 1024) - len(JPEG))


def test_ping_is_answered_with_its_id(w):
    w._handle_custom_msg({"type": "ping", "id": 7}, [])
    assert w.sent == [{"type": "pong", "id": 7}]
    w._handle_custom_msg({"type": "ping", "id": "7"}, [])  # not an int: ignored
    assert len(w.sent) == 1


@pytest.mark.parametrize("mib", [9, 12, 19])
def test_pieces_of_a_large_upload_are_reassembled(w, mib):
    send_pieces(w, padded(mib), name=f"koala-{mib}.jpeg")
    assert w.error == ""
    assert w.image_name == f"koala-{mib}.jpeg"
    assert w.prediction == "koala"
    assert w._uploads.held_bytes == 0 and w._uploads.unfinished == 0  # nothing held after


@pytest.mark.parametrize(
    "order",
    [[2, 0, 1], [1, 2, 0], [0, 2, 1], [0, 1, 1, 2], [2, 2, 0, 0, 1, 1]],
    ids=["last first", "first last", "swapped", "duplicate", "all twice"],
)
def test_pieces_in_any_order_or_repeated_arrive(w, order):
    send_pieces(w, padded(12), name="koala.jpeg", order=order)
    assert w.error == "" and w.image_name == "koala.jpeg" and w.prediction == "koala"
    assert w._uploads.unfinished == 0


def test_two_uploads_interleaved_both_arrive_the_later_is_shown(w):
    first, second = pieces(padded(9), "first.jpeg", 1), pieces(padded(10), "second.jpeg", 2)
    shown = []
    w.observe(lambda change: shown.append(change["new"]), "image_name")
    for a, b in zip(first, second, strict=True):
        w._handle_custom_msg(*a)
        w._handle_custom_msg(*b)
    assert shown == ["first.jpeg", "second.jpeg"] and w.error == ""
    assert w._uploads.unfinished == 0


def test_pieces_handled_by_two_threads_at_once_are_reassembled():
    """As ipykernel 7 does when it moves a comm's messages to another thread mid-upload."""
    files = {i: bytes(random.Random(i).randbytes(300_000 + i)) for i in range(1, 41)}
    uploads = ChunkedUploads()
    done: list[tuple[str, bytes]] = []
    msgs = [m for i, data in files.items() for m in pieces(data, f"f{i}", i, piece=50_000)]
    random.Random(0).shuffle(msgs)  # each file's pieces scattered among the others'
    start = threading.Barrier(2)

    def handle(part):
        start.wait()
        for content, buffers in part:
            if (result := uploads.add(content, buffers)) is not None:
                done.append(result)

    threads = [threading.Thread(target=handle, args=(msgs[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Completing a file drops older unfinished ones, so not every file need complete; every
    # one that does is exactly what was sent, and each at most once.
    assert done, "no upload completed"
    names = [name for name, _ in done]
    assert len(names) == len(set(names))
    for name, data in done:
        assert data == files[int(name[1:])]
    assert uploads.held_bytes <= MAX_UPLOAD_BYTES


def _feed(uploads: ChunkedUploads, part: list, done: list) -> None:
    done.extend(r for c, b in part if (r := uploads.add(c, b)) is not None)


def test_each_upload_alone_completes_whatever_the_threads_do():
    for trial in range(20):
        data = random.Random(trial).randbytes(1_000_000)
        uploads = ChunkedUploads()
        msgs = pieces(data, "x", trial, piece=64_000)
        random.Random(trial).shuffle(msgs)
        done: list = []
        threads = [
            threading.Thread(target=_feed, args=(uploads, msgs[k::3], done)) for k in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert done == [("x", data)]
        assert uploads.held_bytes == 0


def test_upload_over_the_limit_is_refused_before_any_piece_is_kept(w):
    before = w.image_name
    size = MAX_UPLOAD_BYTES + 1
    msg = {"type": "upload-chunk", "id": 1, "index": 0, "count": 6, "size": size}
    w._handle_custom_msg({**msg, "name": "huge.jpeg"}, [b"\0" * 16])
    assert f"uploads up to {MAX_UPLOAD_BYTES:,} bytes" in w.error
    assert w._uploads.held_bytes == 0 and w.image_name == before


@pytest.mark.parametrize(
    "case",
    ["size lies", "piece too big", "two buffers", "no buffer", "count changes", "size changes"],
)
def test_inconsistent_pieces_drop_the_upload_with_a_message(w, case):
    before = w.image_name
    data = padded(9)
    msgs = pieces(data)
    if case == "size lies":
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
    elif case in ("count changes", "size changes"):
        w._handle_custom_msg(*msgs[0])
        content, buffers = msgs[1]
        key = "count" if case == "count changes" else "size"
        w._handle_custom_msg({**content, key: content[key] + 1}, buffers)
    assert "arrived incomplete" in w.error
    assert w.image_name == before
    assert w._uploads.held_bytes == 0
    if case in ("count changes", "size changes"):  # the rest of that upload is ignored
        w.error = ""
        w._handle_custom_msg(*msgs[2])
        assert w.error == "" and w.image_name == before and w._uploads.held_bytes == 0


def test_a_lost_piece_is_named_when_the_upload_is_given_up(w):
    """A piece that never comes: said once the upload is stale, or its memory is needed."""
    now = [0.0]
    w._uploads = ChunkedUploads(clock=lambda: now[0])
    before = w.image_name
    send_pieces(w, padded(12), name="lost.jpeg", upload_id=1, order=[1, 2])  # piece 1 lost
    assert w.error == "" and w._uploads.unfinished == 1  # it may still come
    now[0] += STALE_SECONDS + 1
    w._handle_custom_msg(*pieces(padded(9), "next.jpeg", 2)[0])
    assert w.error == "Could not use lost.jpeg: piece 1 of 3 never arrived; please upload it again."
    assert w.image_name == before and w._uploads.unfinished == 1
    send_pieces(w, padded(9), name="next.jpeg", upload_id=2, order=[1, 2])
    assert w.error == "" and w.image_name == "next.jpeg"


def test_unfinished_uploads_never_hold_more_than_the_upload_cap():
    uploads = ChunkedUploads()
    lost = []
    for upload_id in range(1, 9):  # eight 12 MiB uploads, 8 MiB of each sent: 2 fit in 20 MiB
        for content, buffers in pieces(padded(12), f"u{upload_id}", upload_id)[:2]:
            try:
                assert uploads.add(content, buffers) is None
            except UploadRefused as exc:
                lost.append(str(exc))
            assert uploads.held_bytes <= MAX_UPLOAD_BYTES
    assert lost == [
        f"Could not use u{i}: piece 3 of 3 never arrived; please upload it again."
        for i in range(1, 7)
    ]
    assert uploads.unfinished == 2


def test_malformed_piece_messages_are_ignored(w):
    for msg in [
        {"type": "upload-chunk"},
        {"type": "upload-chunk", "id": "1", "index": 0, "count": 1, "size": 3},
        {"type": "upload-chunk", "id": 1, "index": 0.0, "count": 1, "size": 3},
    ]:
        w._handle_custom_msg(msg, [b"abc"])
    assert w.error == "" and w._uploads.unfinished == 0


# ---- in a real kernel, as JupyterLab 4.6 talks to ipykernel 7 --------------------------------

KERNEL_SETUP = """
import json
import threading
from cnn_explainer_widget import CNNExplainer, _uploads
w = CNNExplainer()
threads = []
_add = _uploads.ChunkedUploads.add
def add(self, content, buffers):
    threads.append(threading.current_thread().name)
    return _add(self, content, buffers)
_uploads.ChunkedUploads.add = add
print(w.comm.comm_id)
"""


@pytest.mark.kernel
def test_uploads_arrive_when_the_kernel_moves_the_comm_between_threads(tmp_path):
    """JupyterLab sends comm messages on a subshell; ipykernel routes each to the thread that
    last published on the comm. A Python cell publishes from the main shell, then the page sends
    piece 0, a ping (whose pong is published from the thread handling it) and the other pieces:
    the pieces are split between the main thread and the subshell's, as in the browser."""
    jupyter_client = pytest.importorskip("jupyter_client.manager")
    km, kc = jupyter_client.start_new_kernel(kernel_name="python3")
    try:

        def run(code: str) -> list[str]:
            msg_id = kc.execute(code)
            out = []
            while True:
                msg = kc.get_iopub_msg(timeout=120)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                if msg["msg_type"] == "error":
                    raise AssertionError(msg["content"]["traceback"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return out

        kc.control_channel.send(kc.session.msg("create_subshell_request", {}))
        reply = kc.control_channel.get_msg(timeout=60)["content"]
        if reply.get("status") != "ok":
            pytest.skip(f"this kernel has no subshells: {reply}")
        subshell = reply["subshell_id"]
        comm_id = "".join(run(KERNEL_SETUP)).strip()

        def comm_send(content: dict, buffers=None) -> None:
            data = {"method": "custom", "content": content}
            msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
            msg["header"]["subshell_id"] = subshell
            kc.session.send(kc.shell_channel.socket, msg, buffers=buffers)

        data = padded(12)
        for upload_id in range(1, 9):
            run("w.send({'type': 'noop'})")  # Python publishes on the comm from the main shell
            for i, (content, buffers) in enumerate(
                pieces(data, f"koala-{upload_id}.jpeg", upload_id, piece=1024 * 1024)
            ):
                comm_send(content, buffers)
                if i == 0:
                    comm_send({"type": "ping", "id": upload_id})
            for _ in range(200):
                state = "".join(run("print(json.dumps([w.image_name, w.error, len(threads)]))"))
                name, error, handled = json.loads(state)
                if error or name == f"koala-{upload_id}.jpeg":
                    break
                time.sleep(0.05)
            assert (name, error) == (f"koala-{upload_id}.jpeg", ""), (upload_id, handled)
        threads = "".join(run("print(json.dumps(sorted(set(threads))))"))
        # The pieces really were handled by two threads (else this test shows nothing).
        assert len(json.loads(threads)) == 2, threads
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
