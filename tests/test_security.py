"""An untrusted front end: nothing it sends may read a file, fetch a URL, import or evaluate code.

Every attack goes through what the browser can really reach: ``set_state`` (a comm ``update``),
the custom-message handler (uploads, image choices) and ipywidgets' own ``_handle_msg``. During
each call a tripwire records every file open, network connection, import, ``eval``/``exec``,
unpickling and subprocess; afterwards nothing may carry an attacker-controlled value, the few
files opened must be the package's own default images, and the widget's state is unchanged.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import io
import os
import pathlib
import pickle
import socket
import subprocess
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import cnn_explainer_widget
from cnn_explainer_widget import CNNExplainer
from cnn_explainer_widget.images import DEFAULT_IMAGES

PACKAGE_DIR = Path(cnn_explainer_widget.__file__).resolve().parent
MARK = "PWNED7f3a"  # appears in every attacker-controlled string


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), color).save(buf, "PNG")
    return buf.getvalue()


class Payload:
    """Unpickling this runs a shell command: the kernel must never unpickle what it is sent."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch /tmp/{MARK}-pickle",))


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp(f"home-{MARK}")
    png = d / f"secret-{MARK}.png"
    png.write_bytes(_png((255, 0, 0)))  # if it were ever shown, the image would turn red
    text = d / f"notes-{MARK}.txt"
    text.write_text(f"TOP SECRET {MARK}")
    return {"png": png, "text": text, "dir": d}


def attack_strings(secrets: dict[str, Path]) -> list[str]:
    png = str(secrets["png"])
    return [
        png,
        f"file://{png}",
        f"file://localhost{png}",
        f"http://127.0.0.1:9/{MARK}.png",
        f"https://example.invalid/{MARK}.png",
        f"//example.invalid/{MARK}.png",
        f"data:image/png;base64,{MARK}",
        f"../../../../etc/passwd#{MARK}",
        f"/etc/passwd#{MARK}",
        f"~/.ssh/id_rsa#{MARK}",
        f"${{HOME}}/{MARK}",
        f"__import__('os').system('touch /tmp/{MARK}-eval')",
        f"exec('import {MARK}')",
        f"eval('{MARK}')",
        f"{MARK}.__class__.__mro__[1].__subclasses__()",
        f"{{{{7*7}}}}{MARK}",
        f"import {MARK}",
        f"{MARK}\x00/etc/passwd",
        f"{MARK}" + "../" * 2000,
    ]


class Tripwire:
    """Records calls that read files, reach the network, import, evaluate or spawn."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def record(self, what: str, *args: Any) -> None:
        self.calls.append((what, " ".join(_text(a) for a in args)))

    def forbidden(self) -> list[tuple[str, str]]:
        """Calls that must never happen, or that carry an attacker's value."""
        bad = []
        for what, arg in self.calls:
            if (
                MARK in arg
                or "passwd" in arg
                or "id_rsa" in arg
                or "://" in arg
                or what
                in (
                    "eval",
                    "exec",
                    "compile",
                    "pickle",
                    "marshal",
                    "subprocess",
                    "system",
                    "socket",
                    "urlopen",
                    "http",
                )
                or (what == "open" and not _inside_package(arg))
            ):
                bad.append((what, arg))
        return bad


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value[:4096]).decode("latin-1")
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    return value if isinstance(value, str) else repr(value)[:4096]


def _is_module_code(code: Any) -> bool:
    return (
        isinstance(code, types.CodeType)
        and code.co_name == "<module>"
        and Path(code.co_filename).is_file()
    )


def _inside_package(arg: str) -> bool:
    try:
        return Path(arg).resolve().is_relative_to(PACKAGE_DIR) or arg.isdigit()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tripwire]:
    t = Tripwire()

    def spy(name: str, real: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            what = name
            if name in ("exec", "eval") and args and _is_module_code(args[0]):
                what = "import-module-code"  # importlib running a module file on first import
            t.record(what, *args[: 1 if name == "open" else 2])
            return real(*args, **kwargs)

        return wrapper

    real_import = builtins.__import__

    def spy_import(name: str, *args: Any, **kwargs: Any) -> Any:
        t.record("import", name)
        return real_import(name, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", spy("open", builtins.open))
        m.setattr(io, "open", spy("open", io.open))
        m.setattr(os, "open", spy("open", os.open))
        for method in ("open", "read_bytes", "read_text"):
            m.setattr(pathlib.Path, method, _path_spy(t, method, getattr(pathlib.Path, method)))
        m.setattr(Image, "open", spy("pil-open", Image.open))
        m.setattr(builtins, "__import__", spy_import)
        m.setattr(importlib, "import_module", spy("import", importlib.import_module))
        for name in ("eval", "exec", "compile"):
            m.setattr(builtins, name, spy(name, getattr(builtins, name)))
        m.setattr(pickle, "loads", spy("pickle", pickle.loads))
        m.setattr(pickle, "load", spy("pickle", pickle.load))
        m.setattr(subprocess, "Popen", spy("subprocess", subprocess.Popen))
        m.setattr(os, "system", spy("system", os.system))
        m.setattr(os, "popen", spy("system", os.popen))
        m.setattr(socket.socket, "connect", spy("socket", socket.socket.connect))
        m.setattr(socket, "create_connection", spy("socket", socket.create_connection))
        m.setattr(urllib.request, "urlopen", spy("urlopen", urllib.request.urlopen))
        m.setattr(
            urllib.request.OpenerDirector,
            "open",
            spy("urlopen", urllib.request.OpenerDirector.open),
        )
        import http.client

        m.setattr(
            http.client.HTTPConnection, "connect", spy("http", http.client.HTTPConnection.connect)
        )
        yield t


def _path_spy(t: Tripwire, method: str, real: Any) -> Any:
    def wrapper(self: Path, *args: Any, **kwargs: Any) -> Any:
        t.record("open", str(self))
        return real(self, *args, **kwargs)

    return wrapper


@pytest.fixture(scope="module")
def widget() -> CNNExplainer:
    w = CNNExplainer()
    w.selected = {"layer": "conv_2_1", "index": 4, "y": 3, "x": 9}
    w.color_scale = "module"
    return w


def snapshot(w: CNNExplainer) -> tuple[Any, ...]:
    return (
        w._image,
        w._acts,
        w._activations,
        w._seq,
        w.image_name,
        dict(w.selected),
        w.color_scale,
        w._esm,
        w._css,
        type(w),
        w.keys,
        w._model_id,
        w._thumbnails,
    )


def assert_unchanged(w: CNNExplainer, before: tuple[Any, ...]) -> None:
    after = snapshot(w)
    for i in (0, 1, 2, 12):
        assert after[i] is before[i], "state object replaced"
    assert after[3:12] == before[3:12]
    assert w.error == "" or w.error.startswith("Could not use ")
    assert not np.allclose(w.image[..., 0], 1.0), "the secret (red) image was shown"


def assert_no_escape(t: Tripwire, w: CNNExplainer, secrets: dict[str, Path]) -> None:
    assert t.forbidden() == []
    assert not list(Path("/tmp").glob(f"{MARK}-*")), "a payload ran"
    visible = f"{w.error} {w.image_name} {w._activations.get('image')}"
    assert "TOP SECRET" not in visible


def _dropping_send_state(w: CNNExplainer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w, "send_state", lambda key=None: None)


# ---- synced traits -----------------------------------------------------------------------------


def test_selection_strings_never_reach_the_filesystem(widget, secrets, monkeypatch):
    _dropping_send_state(widget, monkeypatch)
    for s in attack_strings(secrets):
        for value in [
            {"layer": s, "index": 0},
            {"layer": "conv_1_1", "index": s},
            {"layer": "conv_1_1", "index": 0, "y": s, "x": s},
            s,
            [s],
            {s: s},
            {"layer": {"__class__": s}, "index": 0},
        ]:
            before = snapshot(widget)
            with tripwire(monkeypatch) as t:
                widget.set_state({"selected": value})
                assert widget.selected_neuron is not None
            assert_unchanged(widget, before)
            assert_no_escape(t, widget, secrets)


PRIVATE_KEYS = [
    "_esm",
    "_css",
    "_anywidget_id",
    "_model_module",
    "_model_name",
    "_view_module",
    "_view_name",
    "_model_module_version",
    "_view_module_version",
    "_network",
    "_activations",
    "_thumbnails",
    "error",
    "busy",
    "__class__",
    "__dict__",
    "__init__",
    "__reduce__",
    "_trait_values",
    "_trait_notifiers",
    "keys",
    "comm",
    "log",
    "_model_id",
    "_repr_mimebundle_",
    "_handle_custom_msg",
    "on_msg",
    "image",
    "set_image",
    "_load",
    "network",
    "_net",
    "_image",
    "tabbable",
    "tooltip",
    "layout",
    "_dom_classes",
]


def test_private_traits_and_dunder_keys_are_refused(widget, secrets, monkeypatch):
    _dropping_send_state(widget, monkeypatch)
    pickled = pickle.dumps(Payload())
    for key in PRIVATE_KEYS:
        for s in [
            *attack_strings(secrets)[:8],
            pickled,
            {"data": pickled},
            [MARK],
            {"__class__": MARK},
        ]:
            before = snapshot(widget)
            with tripwire(monkeypatch) as t:
                widget.set_state({key: s, "color_scale": f"{MARK}"})
            assert_unchanged(widget, before)
            assert_no_escape(t, widget, secrets)
    assert CNNExplainer._esm.endswith("widget.js") if isinstance(CNNExplainer._esm, str) else True
    assert widget.network is not None and widget.error == ""


def test_color_scale_strings_are_only_compared(widget, secrets, monkeypatch):
    _dropping_send_state(widget, monkeypatch)
    for s in attack_strings(secrets):
        before = snapshot(widget)
        with tripwire(monkeypatch) as t:
            widget.set_state({"color_scale": s})
        assert_unchanged(widget, before)
        assert_no_escape(t, widget, secrets)


# ---- custom messages: uploads and image choices ------------------------------------------------


def _eps() -> bytes:
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
        + f"({MARK}) print (/etc/passwd) (r) file\n".encode()
        + b"showpage\n%%EOF\n"
    )


def test_eps_would_reach_ghostscript_without_the_format_allowlist():
    """The allowlist is what keeps uploads away from Pillow's EPS plugin (which runs gs)."""
    assert Image.open(io.BytesIO(_eps())).format == "EPS"
    with pytest.raises(ValueError, match="not a readable image"):
        cnn_explainer_widget.load_image(_eps())


def upload_attacks(secrets: dict[str, Path]) -> list[tuple[dict[str, Any], list[Any]]]:
    png_path = str(secrets["png"])
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg"><image href="file://{png_path}"/>'
        f"<script>{MARK}</script></svg>"
    ).encode()
    out: list[tuple[dict[str, Any], list[Any]]] = []
    for s in attack_strings(secrets):
        out.append(({"type": "upload", "name": s}, [s.encode("utf-8", "surrogatepass")]))
        out.append(({"type": "upload", "name": s, "path": s, "url": s}, []))
        out.append(({"type": "upload", "name": s}, [s]))  # a str where bytes belong
        out.append(({"type": "choose", "index": s}, []))
        out.append(({"type": "choose", "index": 0, "path": s}, []))
        out.append(({"type": s, "path": s}, []))
    for kind in [
        "load",
        "open",
        "fetch",
        "read",
        "eval",
        "exec",
        "import",
        "pickle",
        "path",
        "url",
    ]:
        out.append(
            (
                {
                    "type": kind,
                    "path": png_path,
                    "url": f"file://{png_path}",
                    "code": f"__import__('{MARK}')",
                    "module": MARK,
                },
                [],
            )
        )
    for buf in [
        pickle.dumps(Payload()),
        pickle.dumps(Payload(), protocol=0),
        svg,
        _eps(),
        f"file://{png_path}".encode(),
        png_path.encode(),
        b"\x80\x04" + MARK.encode(),
        f"GIF89a{MARK}".encode(),
    ]:
        out.append(({"type": "upload", "name": f"x-{MARK}.png"}, [buf]))
        out.append(({"type": "upload", "name": f"x-{MARK}.png"}, [memoryview(buf)]))
    out.append(({"type": "upload", "name": png_path}, [png_path.encode(), _png((255, 0, 0))]))
    out.append(({"type": "choose", "index": [png_path]}, [_png((255, 0, 0))]))
    return out


def test_custom_messages_never_read_files_or_run_code(widget, secrets, monkeypatch):
    for content, buffers in upload_attacks(secrets):
        before = snapshot(widget)
        with tripwire(monkeypatch) as t:
            widget._handle_custom_msg(widget, content, buffers)
        assert_no_escape(t, widget, secrets)
        if content.get("type") == "choose" and type(content.get("index")) is int:
            # a valid choice with extra keys: the packaged image is shown, the extras ignored
            assert widget.image_name == DEFAULT_IMAGES[content["index"]][1]
            assert {a for w, a in t.calls if w == "open"} == {
                str(PACKAGE_DIR / "images" / DEFAULT_IMAGES[content["index"]][0])
            }
            continue
        assert_unchanged(widget, before)
        if content.get("type") == "upload":
            assert widget.error.startswith("Could not use "), content
            assert "TOP SECRET" not in widget.error


def test_a_real_upload_named_like_a_path_is_only_a_label(widget, secrets, monkeypatch):
    """The name of an upload is shown, never opened; its bytes are what is decoded."""
    name = str(secrets["png"])
    with tripwire(monkeypatch) as t:
        widget._handle_custom_msg(widget, {"type": "upload", "name": name}, [_png((0, 0, 255))])
    assert_no_escape(t, widget, secrets)
    assert widget.image[..., 2].mean() > 0.99 and widget.image[..., 0].mean() < 0.01
    assert widget.image_name == name[:79] + "…" if len(name) > 80 else widget.image_name == name
    widget._handle_custom_msg(widget, {"type": "choose", "index": 0}, [])


def test_choose_opens_only_the_packaged_image(widget, secrets, monkeypatch):
    for index in range(len(DEFAULT_IMAGES)):
        with tripwire(monkeypatch) as t:
            widget._handle_custom_msg(widget, {"type": "choose", "index": index}, [])
        assert_no_escape(t, widget, secrets)
        opened = {arg for what, arg in t.calls if what == "open"}
        assert opened == {str(PACKAGE_DIR / "images" / DEFAULT_IMAGES[index][0])}
        assert widget.image_name == DEFAULT_IMAGES[index][1]
    widget._handle_custom_msg(widget, {"type": "choose", "index": 0}, [])


# ---- through ipywidgets' comm handler ----------------------------------------------------------


def test_comm_messages_never_read_files_or_run_code(widget, secrets, monkeypatch, caplog):
    _dropping_send_state(widget, monkeypatch)
    pickled = pickle.dumps(Payload())
    messages: list[dict[str, Any]] = []
    for s in attack_strings(secrets)[:10]:
        messages.append(
            {
                "method": "update",
                "state": {"_esm": s, "_css": s, "selected": {"layer": s, "index": 0}},
                "buffer_paths": [],
            }
        )
        messages.append(
            {
                "method": "update",
                "state": {"_esm": None},
                "buffer_paths": [["_esm"]],
                "_buffers": [s.encode("utf-8", "surrogatepass")],
            }
        )
        messages.append(
            {"method": "custom", "content": {"type": "upload", "name": s}, "_buffers": [pickled]}
        )
        messages.append({"method": "custom", "content": {"type": "choose", "index": s}})
        messages.append({"method": s, "state": {"selected": s}})
    before = snapshot(widget)
    for data in messages:
        buffers = data.pop("_buffers", [])
        with tripwire(monkeypatch) as t:
            widget._handle_msg({"content": {"data": data}, "buffers": buffers})
        assert_no_escape(t, widget, secrets)
        assert_unchanged(widget, before)
    logged = [
        r.getMessage() for r in caplog.records if "Exception in widget method" in r.getMessage()
    ]
    assert logged == []


def test_the_tripwire_sees_what_it_guards(secrets, monkeypatch):
    """The checks above are not vacuous: a real read, eval or unpickling is caught."""
    with tripwire(monkeypatch) as t:
        cnn_explainer_widget.load_image(secrets["png"])
        eval("1")
        pickle.loads(pickle.dumps(1))
    kinds = {what for what, _ in t.forbidden()}
    assert {"open", "eval", "pickle"} <= kinds
