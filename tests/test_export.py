"""Explanations that travel, without a browser: the saved HTML page and the notebook outputs.

What the page does in a browser (offline, from file://) is tested in
``tests/browser/test_browser_export.py``.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from cnn_explainer_widget import CNNExplainer
from cnn_explainer_widget._export import notebook_fallback_html, saved_state

VIEW_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def w():
    w = CNNExplainer()
    w.color_scale = "global"
    w.selected = {"layer": "conv_1_2", "index": 4}
    return w


def _script(page: str, element_id: str):
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert m, element_id
    return json.loads(m.group(1))


def test_html_is_self_contained_and_small(w):
    page = w.to_html()
    # nothing is loaded from anywhere: no src/href attributes at all, and a CSP that forbids it
    assert not re.search(r"<[a-z]+[^>]*\s(src|href)\s*=", page, re.I)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1) and "connect-src 'none'" in csp.group(1)
    assert len(page.encode()) < 3 * 1024 * 1024
    # the title and caption say what the widget shows
    assert f"→ {w.prediction}" in page and "Tiny VGG" in page


def test_html_state_round_trips_the_payload(w):
    saved = _script(w.to_html(), "cnnx-state")
    state = saved["state"]
    assert state["color_scale"] == "global"
    assert state["selected"] == {"layer": "conv_1_2", "index": 4}
    assert state["_thumbnails"] == [] and state["error"] == "" and not state["busy"]
    assert "_esm" not in state
    by_path = {tuple(b["path"]): base64.b64decode(b["data"]) for b in saved["buffers"]}
    assert by_path[("_activations", "data")] == bytes(w._activations["data"])
    assert by_path[("_network", "data")] == bytes(w._network["data"])
    assert state["_activations"]["seq"] == w._activations["seq"]
    # the bundle travels as a JSON string that cannot end its <script> early
    esm = _script(w.to_html(), "cnnx-esm")
    assert "mountSaved" in esm


def test_save_html_writes_the_page(w, tmp_path):
    path = w.save_html(tmp_path / "w.html", title="My <network>")
    text = path.read_text(encoding="utf-8")
    assert "<title>My &lt;network&gt;</title>" in text
    assert text == w.to_html(title="My <network>")


def test_saved_state_leaves_the_widget_unchanged(w):
    before = (w.color_scale, w.selected, len(w._thumbnails))
    saved_state(w)
    assert (w.color_scale, w.selected, len(w._thumbnails)) == before


def test_display_gives_widget_view_and_a_separate_fallback_output(monkeypatch):
    import IPython.display

    w = CNNExplainer()
    shown = []
    monkeypatch.setattr(
        IPython.display, "display", lambda obj, raw=False, **kw: shown.append((obj, raw))
    )
    w._ipython_display_()
    assert len(shown) == 2 and all(raw for _, raw in shown)
    view, fallback = shown[0][0], shown[1][0]
    assert view[VIEW_MIME]["model_id"] == w.model_id
    # the fallback is HTML only (no second text/plain in text exports), keyed to this model
    assert set(fallback) == {"text/html"}
    html = fallback["text/html"]
    assert json.dumps(w.model_id) in html
    assert f"→ {w.prediction}" in html
    assert html == notebook_fallback_html(w)


# ---- pictures (Python's side; the page's side is tested in a real browser) ---------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\0" * 100


@pytest.fixture
def pic(monkeypatch):
    w = CNNExplainer()
    w.sent = []
    monkeypatch.setattr(w, "send", lambda content, buffers=None: w.sent.append(content))
    return w


def test_save_image_without_a_displayed_view_says_so(pic, tmp_path):
    with pytest.raises(RuntimeError, match="needs the widget displayed"):
        pic.save_image(tmp_path / "x.png")
    assert pic.sent == []


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("x.jpg",), r"\.png or \.svg"),
        (("x.png", "sideways"), "view must be one of"),
        (("x.png", "overview", 0), "scale must be"),
        (("missing-folder/x.png",), "does not exist"),
    ],
)
def test_save_image_refuses_bad_arguments(pic, tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    pic._handle_custom_msg({"type": "view", "shown": True}, [])
    path, *rest = args
    with pytest.raises(ValueError, match=match):
        if len(rest) == 2:
            pic.save_image(path, rest[0], scale=rest[1])
        else:
            pic.save_image(path, *rest)


def test_save_image_round_trip_writes_the_first_answer(pic, tmp_path):
    pic._handle_custom_msg({"type": "view", "shown": True}, [])
    pending = pic.save_image(tmp_path / "o.png", scale=3, light=True)
    assert "when this cell ends" in repr(pending)
    req = pic.sent[-1]
    assert req == {
        "type": "picture-request",
        "id": req["id"],
        "target": "overview",
        "format": "png",
        "scale": 3.0,
        "light": True,
    }
    pic._handle_custom_msg({"type": "picture", "id": req["id"], "ok": True}, [PNG_BYTES])
    assert pending.result(0) == tmp_path / "o.png"
    assert (tmp_path / "o.png").read_bytes() == PNG_BYTES
    # a second view's late answer changes nothing
    pic._handle_custom_msg(
        {"type": "picture", "id": req["id"], "ok": True}, [b"\x89PNG\r\n\x1a\nX"]
    )
    assert (tmp_path / "o.png").read_bytes() == PNG_BYTES


def test_save_image_reports_what_went_wrong(pic, tmp_path):
    pic._handle_custom_msg({"type": "view", "shown": True}, [])
    refused = pic.save_image(tmp_path / "d.svg", "detail")
    pic._handle_custom_msg(
        {
            "type": "picture",
            "id": pic.sent[-1]["id"],
            "ok": False,
            "error": "no explanation view is open",
        },
        [],
    )
    with pytest.raises(RuntimeError, match="no explanation view is open"):
        refused.result(0)
    wrong = pic.save_image(tmp_path / "w.svg")
    pic._handle_custom_msg({"type": "picture", "id": pic.sent[-1]["id"], "ok": True}, [PNG_BYTES])
    with pytest.raises(RuntimeError, match="no valid SVG"):
        wrong.result(0)
    assert not (tmp_path / "w.svg").exists()
    late = pic.save_image(tmp_path / "late.png", timeout=0.05)
    with pytest.raises(TimeoutError, match="no displayed view answered"):
        late.result(5)


def test_views_are_counted_from_hello_and_goodbye(pic, tmp_path):
    pic._handle_custom_msg({"type": "view", "shown": True}, [])
    pic._handle_custom_msg({"type": "view", "shown": False}, [])
    pic._handle_custom_msg({"type": "view", "shown": False}, [])  # never below zero
    pic._handle_custom_msg({"type": "view", "shown": "yes"}, [])  # ignored
    with pytest.raises(RuntimeError, match="needs the widget displayed"):
        pic.save_image(tmp_path / "x.png")
