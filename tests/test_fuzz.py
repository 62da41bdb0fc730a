"""Fuzzing every entry point that takes outside data: `load_image` and what the front end sends.

Each case must end in a correct result or a *clear* error (`ValueError`/`TypeError` whose
message says what was wrong), within a time bound, leaving the widget's image, activations and
selection as they were. The suite is reproducible (``derandomize=True``, no example database);
the number of cases run per entry point is printed at the end of the module
(``python -m pytest tests/test_fuzz.py -q -s`` or ``-rA`` shows it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from cnn_explainer_widget import CNNExplainer, WeightsFileError, load_image
from cnn_explainer_widget._safetensors import loads
from cnn_explainer_widget._uploads import MAX_UPLOAD_BYTES
from cnn_explainer_widget.images import DEFAULT_IMAGES, MAX_PIXELS
from cnn_explainer_widget.tiny_vgg import weights_path

#: Cases run per entry point (printed by the last test of this module).
CASES: Counter[str] = Counter()

#: Wall-clock bound for one case (a hang fails the test instead of stalling CI).
CASE_SECONDS = 10.0


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        database=None,
        derandomize=True,
        deadline=None,  # the per-case alarm below is the time bound; JIT warm-up varies
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
            HealthCheck.filter_too_much,
        ],
    )


class CaseTooSlow(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail a case that runs longer than ``seconds`` (SIGALRM; the tests run in the main thread)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTooSlow(f"case took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_load(source: Any, **kwargs: Any) -> np.ndarray | None:
    """`load_image(source)`: a valid (64, 64, 3) image, or a clear error; never anything else."""
    with time_bound():
        try:
            out = load_image(source, **kwargs)
        except (ValueError, TypeError) as exc:
            assert_clear(exc)
            return None
    channels = kwargs.get("channels", 3)
    assert out.shape == (64, 64, channels) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    return out


def assert_clear(exc: BaseException) -> None:
    """A clear error: our type, a message that is a sentence, not a bare library exception."""
    assert type(exc).__module__.startswith(("builtins", "cnn_explainer_widget")), repr(exc)
    message = str(exc)
    assert len(message) >= 15, f"unclear message: {exc!r}"
    assert len(message) < 2000, "message too long"


# ---- a corpus of real images in every format and mode ----------------------------------------


def _encode(image: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _picture(size: tuple[int, int] = (40, 30)) -> Image.Image:
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], axis=2)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (24, 16), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50)


def _corpus() -> dict[str, bytes]:
    pic = _picture()
    p_trans = pic.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p_trans.info["transparency"] = 0
    items = {
        "jpeg": _encode(pic, "JPEG", quality=80),
        "jpeg-progressive": _encode(pic, "JPEG", progressive=True),
        "jpeg-L": _encode(pic.convert("L"), "JPEG"),
        "jpeg-CMYK": _encode(pic.convert("CMYK"), "JPEG"),
        "png": _encode(pic, "PNG"),
        "png-RGBA": _encode(pic.convert("RGBA"), "PNG"),
        "png-LA": _encode(pic.convert("LA"), "PNG"),
        "png-1": _encode(pic.convert("1"), "PNG"),
        "png-P-transparency": _encode(p_trans, "PNG"),
        "png-I;16": _encode(pic.convert("L").convert("I;16"), "PNG"),
        "png-uncompressed": _encode(pic, "PNG", compress_level=0),
        "apng": _animated("PNG"),
        "gif": _encode(pic, "GIF"),
        "gif-animated": _animated("GIF"),
        "webp": _encode(pic, "WEBP", quality=70),
        "webp-lossless": _encode(pic.convert("RGBA"), "WEBP", lossless=True),
        "webp-animated": _animated("WEBP"),
        "bmp": _encode(pic, "BMP"),
        "bmp-P": _encode(p_trans, "BMP"),
        "tiff": _encode(pic, "TIFF"),
        "tiff-deflate": _encode(pic, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-F": _encode(
            Image.fromarray(np.linspace(0, 1, 1200, dtype=np.float32).reshape(30, 40)), "TIFF"
        ),
        "tiff-I": _encode(pic.convert("I"), "TIFF"),
        "tiff-CMYK": _encode(pic.convert("CMYK"), "TIFF"),
        "tiff-multipage": _animated("TIFF"),
    }
    exif = Image.Exif()
    exif[0x0112] = 6
    items["jpeg-exif-rotated"] = _encode(pic, "JPEG", exif=exif.tobytes())
    return items


CORPUS = _corpus()
CORPUS_NAMES = sorted(CORPUS)


def test_every_corpus_image_loads():
    for name, data in CORPUS.items():
        out = check_load(data)
        assert out is not None, name
    CASES["load_image: intact corpus"] += len(CORPUS)


# ---- load_image: random bytes, corrupted and truncated real images ---------------------------

MAGIC = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"BM",
    b"II*\0",
    b"MM\0*",
    b"%!PS-Adobe-3.0 EPSF-3.0\n",
    b"P6\n",
    b"\0\0\1\0",
]


@fuzz_settings(400)
@given(
    st.one_of(
        st.binary(max_size=4096),
        st.tuples(st.sampled_from(MAGIC), st.binary(max_size=2048)).map(b"".join),
    )
)
def test_load_image_random_bytes(data):
    CASES["load_image: random bytes"] += 1
    check_load(data)


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    data = bytearray(CORPUS[draw(st.sampled_from(CORPUS_NAMES))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            data = data[:i]
        elif op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            data[i : i + 4] = draw(
                st.sampled_from(
                    [b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x7f\xff\xff\xff", b"\x80\0\0\0"]
                )
            )
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        else:
            j = draw(st.integers(0, len(data) - 1))
            data[i:i] = data[j : j + draw(st.integers(1, 256))]
    return bytes(data)


@fuzz_settings(700)
@given(corrupted())
def test_load_image_corrupted_real_images(data):
    CASES["load_image: corrupted/truncated real images"] += 1
    check_load(data)


@fuzz_settings(150)
@given(st.sampled_from(CORPUS_NAMES), st.floats(0, 1, exclude_max=True))
def test_load_image_truncated_at_any_point(name, fraction):
    CASES["load_image: truncated real images"] += 1
    data = CORPUS[name]
    check_load(data[: int(len(data) * fraction)])


# ---- load_image: odd modes and extreme sizes --------------------------------------------------

MODES = [
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "P+transparency",
    "I;16",
    "I;16B",
    "I",
    "F",
    "CMYK",
    "RGBA",
    "RGBa",
    "RGBX",
    "RGB",
    "YCbCr",
    "LAB",
    "HSV",
]


def _mode_image(mode: str, w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode == "P+transparency":
        p = rgb.convert("P")
        p.info["transparency"] = int(rng.integers(0, 256))
        return p
    if mode == "F":
        values = rng.choice([rng.random(), 0.0, 1.0, 255.0, -3.0, 1e30, np.nan, np.inf], (h, w))
        return Image.fromarray(values.astype(np.float32), "F")
    if mode == "I":
        return Image.fromarray(rng.integers(-(2**31), 2**31 - 1, (h, w), dtype=np.int32), "I")
    if mode in ("LAB", "HSV"):
        return Image.frombytes(
            mode, (w, h), rng.integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes()
        )
    return rgb.convert(mode)


SIZES = st.one_of(
    st.tuples(st.integers(1, 150), st.integers(1, 150)),
    st.sampled_from([(1, 1), (1, 10000), (10000, 1), (64, 64), (65, 64), (64, 1), (3, 5000)]),
)


@fuzz_settings(300)
@given(st.sampled_from(MODES), SIZES, st.integers(0, 2**16), st.sampled_from([1, 3]))
def test_load_image_pil_modes_and_sizes(mode, size, seed, channels):
    CASES["load_image: PIL modes × sizes"] += 1
    check_load(_mode_image(mode, *size, seed), channels=channels)


SAVE_AS = {
    "PNG": ["1", "L", "LA", "P", "RGBA", "RGB", "I;16"],
    "GIF": ["L", "P", "RGB"],
    "WEBP": ["RGB", "RGBA"],
    "BMP": ["1", "L", "P", "RGB"],
    "JPEG": ["L", "RGB", "CMYK"],
    "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"],
}
SAVE_CASES = [(fmt, mode) for fmt, modes in SAVE_AS.items() for mode in modes]


@fuzz_settings(200)
@given(st.sampled_from(SAVE_CASES), SIZES, st.integers(0, 2**16))
def test_load_image_encoded_modes_and_sizes(case, size, seed):
    CASES["load_image: encoded modes × sizes"] += 1
    fmt, mode = case
    w, h = size
    if fmt == "WEBP" and max(w, h) > 16383:
        w, h = min(w, 16383), min(h, 16383)
    image = _mode_image(mode, w, h, seed)
    if mode == "F":
        image = Image.fromarray(np.nan_to_num(np.asarray(image), nan=0.5, posinf=1, neginf=0))
    out = check_load(_encode(image, fmt))
    assert out is not None, f"a valid {fmt} {mode} {w}×{h} was refused"


def _huge_header(fmt: str, w: int, h: int) -> bytes:
    if fmt == "PNG":

        def chunk(kind: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + kind
                + body
                + struct.pack(">I", zlib.crc32(kind + body))
            )

        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        )
    if fmt == "BMP":
        header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
        return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + header + b"\0" * 16
    if fmt == "GIF":
        return (
            b"GIF89a"
            + struct.pack("<HH", min(w, 65535), min(h, 65535))
            + b"\0\0\0"
            + b","
            + struct.pack("<HHHH", 0, 0, min(w, 65535), min(h, 65535))
            + b"\0\x02\x02\x44\x01\0;"
        )
    if fmt == "TIFF":
        entries = [
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 1, 8),
            (259, 3, 1, 1),
            (262, 3, 1, 1),
            (273, 4, 1, 8),
            (277, 3, 1, 1),
            (278, 4, 1, h),
            (279, 4, 1, min(w * h, 2**32 - 1)),
        ]
        ifd = (
            struct.pack("<H", len(entries))
            + b"".join(struct.pack("<HHII", tag, typ, n, v) for tag, typ, n, v in entries)
            + b"\0\0\0\0"
        )
        return b"II*\0" + struct.pack("<I", 8) + ifd
    raise AssertionError(fmt)


@fuzz_settings(120)
@given(
    st.sampled_from(["PNG", "BMP", "GIF", "TIFF"]),
    st.integers(1, 2**31 - 1),
    st.integers(1, 2**31 - 1),
)
def test_load_image_declared_sizes(fmt, w, h):
    """Headers declaring any size (up to 2³¹ per side): refused before decoding, or decoded."""
    CASES["load_image: declared huge sizes"] += 1
    if fmt == "GIF":
        w, h = min(w, 65535), min(h, 65535)
    out = check_load(_huge_header(fmt, w, h))
    if w * h > MAX_PIXELS:
        assert out is None


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "GIF", "TIFF"])
def test_bomb_headers_name_the_pixel_cap(fmt):
    w, h = (60000, 60000) if fmt != "GIF" else (65535, 65535)
    with pytest.raises(ValueError, match=f"at most {MAX_PIXELS:,}"):
        load_image(_huge_header(fmt, w, h))
    CASES["load_image: declared huge sizes"] += 1


# ---- load_image: arrays and other Python values -----------------------------------------------

DTYPES = [
    np.uint8,
    np.int8,
    np.uint16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
    np.complex64,
    np.object_,
    "U3",
    "V4",
    "M8[s]",
]


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    ndim = draw(st.integers(0, 5))
    side = 90 if ndim <= 3 else 6  # at most ~10^6 elements
    shape = tuple(draw(st.lists(st.integers(0, side), min_size=ndim, max_size=ndim)))
    if ndim == 3 and draw(st.booleans()):
        shape = (*shape[:2], draw(st.sampled_from([1, 3, 4])))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    size = int(np.prod(shape))
    if dtype.kind == "f":
        pool = [0.0, 0.5, 1.0, -0.0, 1e-45, 1.0000001, -1e-9, 2.0, np.nan, np.inf, -np.inf]
        values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        data = np.resize(np.array(values, dtype=np.float64), size)
        with np.errstate(over="ignore"):
            return data.astype(dtype).reshape(shape)
    try:
        return np.zeros(shape, dtype)
    except (TypeError, ValueError):
        return np.zeros(shape, np.uint8)


@fuzz_settings(300)
@given(arrays())
def test_load_image_arrays(array):
    CASES["load_image: arrays"] += 1
    check_load(array)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@fuzz_settings(200)
@given(
    st.one_of(
        JSONISH,
        st.builds(object),
        st.sampled_from([int, Image, np, slice(1), ...]),
        st.text(max_size=300).map(lambda s: "/nonexistent-dir/" + s),
    )
)
def test_load_image_other_values(value):
    CASES["load_image: other Python values"] += 1
    check_load(value)


# ---- the widget: what the front end can set and send ------------------------------------------


@pytest.fixture(scope="module")
def widget() -> CNNExplainer:
    w = CNNExplainer()
    w.selected = {"layer": "conv_1_2", "index": 3, "y": 5, "x": 7}
    return w


def snapshot(w: CNNExplainer) -> tuple[Any, ...]:
    return (w._image, w._acts, w._activations, w.selected, w.color_scale, w._seq, w.image_name)


def assert_unchanged(
    w: CNNExplainer, before: tuple[Any, ...], ignore_selection: bool = False
) -> None:
    after = snapshot(w)
    assert after[0] is before[0] and after[1] is before[1] and after[2] is before[2], (
        "image changed"
    )
    assert after[5:] == before[5:], "image changed"
    if not ignore_selection:
        assert after[3] == before[3], "selection changed"
    assert after[4] == before[4] or ignore_selection, "color_scale changed"


LAYERS = CNNExplainer().network.selectable_layers()


def expected_selection(value: Any) -> dict[str, Any] | str | None:
    """An independent statement of which selections are valid: the cleaned value, or "invalid"."""
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"layer", "index", "y", "x"}:
        return "invalid"
    layer, index = value.get("layer"), value.get("index")
    if not isinstance(layer, str) or layer not in LAYERS:
        return "invalid"
    count, size = LAYERS[layer]
    if type(index) is not int or not 0 <= index < count:
        return "invalid"
    if "y" not in value and "x" not in value:
        return {"layer": layer, "index": index}
    if size is None:
        return "invalid"
    y, x = value.get("y"), value.get("x")
    if type(y) is not int or type(x) is not int or not (0 <= y < size[0] and 0 <= x < size[1]):
        return "invalid"
    return {"layer": layer, "index": index, "y": y, "x": x}


BIG = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**100, 1e308, float("nan"), float("inf"), -1])
NEAR_INDEX = st.one_of(
    st.integers(-3, 70),
    BIG,
    st.booleans(),
    st.floats(0, 10),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
LAYER_NAMES = st.one_of(
    st.sampled_from(
        [
            *LAYERS,
            "flatten",
            "softmax",
            "Conv_1_1",
            "conv_1_1 ",
            "../../etc/passwd",
            "__class__",
            "",
            "x" * 100_000,
        ]
    ),
    st.text(max_size=30),
    JSONISH,
)


@st.composite
def selections(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["near", "near", "near", "junk", "huge", "nested"]))
    if kind == "near":
        value = {"layer": draw(LAYER_NAMES), "index": draw(NEAR_INDEX)}
        if draw(st.booleans()):
            value["y"] = draw(NEAR_INDEX)
        if draw(st.booleans()):
            value["x"] = draw(NEAR_INDEX)
        if draw(st.integers(0, 9)) == 0:
            value[draw(st.text(max_size=10))] = draw(JSONISH)
        return value
    if kind == "junk":
        return draw(JSONISH)
    if kind == "huge":
        return draw(
            st.sampled_from(
                [
                    "s" * 10**6,
                    {"layer": "conv_1_1", "index": 1, "y": "9" * 10**5, "x": 0},
                    {"layer": "conv_1_1", "index": list(range(10**5))},
                    {str(i): i for i in range(10**4)},
                ]
            )
        )
    depth = draw(st.integers(1, 400))
    nested: Any = draw(st.sampled_from([0, "conv_1_1", None]))
    for _ in range(depth):
        nested = draw(
            st.sampled_from(
                [
                    lambda v: [v],
                    lambda v: {"layer": v, "index": 0},
                    lambda v: {"layer": "conv_1_1", "index": v},
                ]
            )
        )(nested)
    return nested


@fuzz_settings(600)
@given(selections())
def test_front_end_selected(widget, value):
    CASES["set_state: selected"] += 1
    sent: list[Any] = []
    widget.send_state = lambda key=None: sent.append(key)  # type: ignore[method-assign]
    try:
        before = snapshot(widget)
        with time_bound():
            widget.set_state({"selected": value})
        expected = expected_selection(value)
        if expected == "invalid":
            assert_unchanged(widget, before)
            assert sent == [["selected"]]
        else:
            assert_unchanged(widget, before, ignore_selection=True)
            assert widget.selected == expected and sent == []
            with time_bound():
                neuron = widget.selected_neuron
            assert (neuron is None) == (expected is None)
    finally:
        del widget.send_state
        widget.selected = {"layer": "conv_1_2", "index": 3, "y": 5, "x": 7}


VIEW_KEYS = [
    "selected",
    "color_scale",
    "error",
    "busy",
    "_activations",
    "_network",
    "_thumbnails",
    "_esm",
    "_css",
    "_model_id",
    "_view_name",
    "layout",
    "comm",
    "keys",
    "log",
    "__class__",
    "__dict__",
    "_trait_values",
    "image",
    "_image",
    "tabbable",
    "tooltip",
    "_dom_classes",
]


@fuzz_settings(400)
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(VIEW_KEYS), st.text(max_size=12)),
        st.one_of(
            st.sampled_from(["unit", "module", "global", "neuron"]),
            selections(),
            JSONISH,
            st.binary(max_size=16),
        ),
        max_size=5,
    )
)
def test_front_end_any_state(widget, state):
    """Any keys with any values: only a valid ``selected``/``color_scale`` is ever applied."""
    CASES["set_state: any keys (view options, private traits)"] += 1
    widget.send_state = lambda key=None: None  # type: ignore[method-assign]
    esm, css, classes = widget._esm, widget._css, widget._dom_classes
    try:
        before = snapshot(widget)
        with time_bound():
            widget.set_state(state)
        assert_unchanged(widget, before, ignore_selection=True)
        if "selected" in state and expected_selection(state["selected"]) != "invalid":
            assert widget.selected == expected_selection(state["selected"])
        else:
            assert widget.selected == before[3]
        cs = state.get("color_scale")
        assert widget.color_scale == (
            cs if cs in ("unit", "module", "global", "neuron") else before[4]
        )
        assert (widget._esm, widget._css, widget._dom_classes) == (esm, css, classes)
        assert widget.error == "" and widget.busy is False
    finally:
        del widget.send_state
        widget.selected = {"layer": "conv_1_2", "index": 3, "y": 5, "x": 7}
        widget.color_scale = "unit"


@fuzz_settings(100)
@given(st.one_of(JSONISH, st.builds(object), st.binary()))
def test_front_end_state_not_a_dict(widget, state):
    CASES["set_state: not a dict"] += 1
    widget.send_state = lambda key=None: None  # type: ignore[method-assign]
    try:
        before = snapshot(widget)
        widget.set_state(state)
        assert_unchanged(widget, before)
    finally:
        del widget.send_state


def _png(color: tuple[int, int, int]) -> bytes:
    return _encode(Image.new("RGB", (30, 20), color), "PNG")


GOOD_PNG = _png((0, 200, 0))

BUFFER = st.one_of(
    st.binary(max_size=512),
    corrupted(),
    st.sampled_from(list(CORPUS.values())),
    st.just(GOOD_PNG).map(memoryview),
    st.just(GOOD_PNG).map(bytearray),
    st.sampled_from(
        [b"", "a string", 42, None, [1, 2], np.zeros(10, np.uint8), np.zeros(3, np.float64)]
    ),
)


@st.composite
def custom_messages(draw: st.DrawFn) -> tuple[Any, Any]:
    kind = draw(st.sampled_from(["upload", "upload", "upload", "choose", "choose", "junk"]))
    if kind == "upload":
        content = {
            "type": "upload",
            "name": draw(st.one_of(st.text(max_size=100), JSONISH, st.just("n" * 10**5))),
        }
        buffers = draw(
            st.one_of(
                st.lists(BUFFER, min_size=1, max_size=1), st.lists(BUFFER, max_size=3), JSONISH
            )
        )
    elif kind == "choose":
        content = {"type": "choose", "index": draw(NEAR_INDEX)}
        buffers = draw(st.lists(BUFFER, max_size=2))
    else:
        content = draw(
            st.one_of(
                JSONISH,
                st.dictionaries(st.sampled_from(["type", "name", "index", "path", "url"]), JSONISH),
            )
        )
        buffers = draw(st.one_of(st.lists(BUFFER, max_size=2), JSONISH))
    return content, buffers


def _is_valid_choose(content: Any) -> bool:
    index = content.get("index") if isinstance(content, dict) else None
    return (
        isinstance(content, dict)
        and content.get("type") == "choose"
        and type(index) is int
        and 0 <= index < len(DEFAULT_IMAGES)
    )


@fuzz_settings(500)
@given(custom_messages())
def test_front_end_custom_messages(widget, msg):
    CASES["custom messages: upload/choose/junk"] += 1
    content, buffers = msg
    before = snapshot(widget)
    with time_bound():
        widget._handle_custom_msg(widget, content, buffers)
    if widget._seq == before[5]:
        assert_unchanged(widget, before)
        if isinstance(content, dict) and content.get("type") == "upload":
            assert widget.error.startswith("Could not use ") and len(widget.error) < 1000
    else:
        # a new image: a valid choice or a decodable upload, shown in one step
        assert widget._seq == before[5] + 1 and widget.error == ""
        assert _is_valid_choose(content) or content.get("type") == "upload"
        assert widget._image.shape == (64, 64, 3)
    if _is_valid_choose(content):
        assert widget.image_name == DEFAULT_IMAGES[content["index"]][1]
    widget._handle_custom_msg(widget, {"type": "choose", "index": 0}, [])  # back to a known image


def test_upload_cap_is_checked_before_decoding(widget, monkeypatch):
    import cnn_explainer_widget._widget_state as wmod

    calls: list[int] = []
    monkeypatch.setattr(wmod, "load_image_with_info", lambda *a, **k: calls.append(1))
    before = snapshot(widget)
    widget._handle_custom_msg(
        widget,
        {"type": "upload", "name": "big.png"},
        [memoryview(GOOD_PNG + bytes(MAX_UPLOAD_BYTES))],
    )
    assert calls == [] and f"uploads up to {MAX_UPLOAD_BYTES:,} bytes" in widget.error
    assert_unchanged(widget, before)
    CASES["custom messages: upload/choose/junk"] += 1


# ---- real comm messages through ipywidgets' own handler ---------------------------------------


@st.composite
def comm_messages(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(
        st.sampled_from(["update", "update", "custom", "request_state", "echo_update", "bogus"])
    )
    data: dict[str, Any] = {"method": method}
    buffers: list[Any] = []
    if method in ("update", "echo_update"):
        data["state"] = draw(
            st.dictionaries(
                st.sampled_from(VIEW_KEYS), st.one_of(selections(), JSONISH), max_size=3
            )
        )
        data["buffer_paths"] = []
        if draw(st.booleans()) and data["state"]:
            key = draw(st.sampled_from(sorted(data["state"])))
            data["buffer_paths"] = [[key]]
            buffers = [draw(st.binary(max_size=64))]
    elif method == "custom":
        data["content"], buffers = draw(custom_messages())
        if not isinstance(buffers, list):
            buffers = []
    return {"content": {"data": data}, "buffers": buffers}


@fuzz_settings(400)
@given(msg=comm_messages())
def test_comm_messages_never_raise(widget, caplog, msg):
    """ipywidgets' `_handle_msg` logs (and swallows) any exception: none may be logged."""
    CASES["comm messages: Widget._handle_msg"] += 1
    widget.send_state = lambda key=None: None  # type: ignore[method-assign]
    caplog.clear()
    try:
        with caplog.at_level(logging.WARNING), time_bound():
            widget._handle_msg(msg)
        errors = [
            r
            for r in caplog.records
            if r.levelno >= logging.WARNING
            and "Unknown front-end to back-end" not in r.getMessage()
        ]
        assert not errors, errors[0].getMessage()
        data = msg["content"]["data"]
        state = data.get("state", {}) if data["method"] == "update" else {}
        if "selected" in state and expected_selection(state["selected"]) != "invalid":
            assert widget.selected == expected_selection(state["selected"])
    finally:
        del widget.send_state
        widget.selected = {"layer": "conv_1_2", "index": 3, "y": 5, "x": 7}
        widget.color_scale = "unit"


def test_comm_upload_reaches_the_widget(widget):
    """A real ``custom`` comm message (not a direct call) changes the image."""
    widget._handle_msg(
        {
            "content": {
                "data": {"method": "custom", "content": {"type": "upload", "name": "g.png"}}
            },
            "buffers": [memoryview(GOOD_PNG)],
        }
    )
    assert widget.image_name == "g.png" and widget.error == ""
    assert widget.image[..., 1].mean() == pytest.approx(200 / 255, abs=1e-6)
    widget._handle_msg(
        {
            "content": {"data": {"method": "custom", "content": {"type": "choose", "index": 0}}},
            "buffers": [],
        }
    )
    assert widget.image_name == DEFAULT_IMAGES[0][1]
    CASES["comm messages: Widget._handle_msg"] += 2


# ---- found while fuzzing: regression checks ----------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        zlib.error("invalid distance"),
        struct.error("unpack"),
        ZeroDivisionError(),
        RuntimeError("decoder"),
        ValueError("buffer is not large enough"),
    ],
)
def test_any_decoder_exception_becomes_a_clear_error(monkeypatch, exc):
    def broken_load(self):
        raise exc

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_load)
    with pytest.raises(ValueError, match="the image file is truncated or corrupt") as info:
        load_image(CORPUS["png"])
    assert type(exc).__name__ in str(info.value)


def test_unreadable_paths_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot read image file"):
        load_image("a" * 5000)
    with pytest.raises(ValueError, match="no such image file"):
        load_image("a\0b")


def test_float_images_with_nan_or_inf_are_refused():
    for bad in (np.nan, np.inf):
        values = np.full((20, 20), 0.5, np.float32)
        values[3, 4] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            load_image(Image.fromarray(values, "F"))
        with pytest.raises(ValueError, match="NaN or infinite"):
            load_image(_encode(Image.fromarray(values, "F"), "TIFF"))


# ---- weights files ------------------------------------------------------------------------------

WEIGHTS = weights_path().read_bytes()


@st.composite
def corrupted_weights(draw: st.DrawFn) -> bytes:
    data = bytearray(WEIGHTS)
    header_len = struct.unpack("<Q", data[:8])[0]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "flip-header", "flip-body", "nan", "edit"]))
        if op == "truncate" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif op == "flip-header" and len(data) > 8:
            i = draw(st.integers(0, min(len(data), 8 + header_len) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "flip-body" and len(data) > 8 + header_len:
            i = draw(st.integers(8 + header_len, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "nan" and len(data) >= 8 + header_len + 4:
            i = draw(st.integers(8 + header_len, len(data) - 4))
            data[i : i + 4] = struct.pack("<f", draw(st.sampled_from([np.nan, np.inf, -np.inf])))
        elif op == "edit" and len(data) >= 8 + header_len:
            text = bytes(data[8 : 8 + header_len])
            old = draw(
                st.sampled_from(
                    [b'"F32"', b'"shape":[', b'"data_offsets":[', b"kernel", b"bias", b",", b"]"]
                )
            )
            new = draw(
                st.sampled_from(
                    [
                        b'"F16"',
                        b'"shape":[-1,',
                        b'"data_offsets":["x",',
                        b"kernal",
                        b"[[]]",
                        b"",
                        b"1e400",
                        b"null",
                    ]
                )
            )
            text = text.replace(old, new, 1)
            data = bytearray(struct.pack("<Q", len(text)) + text + bytes(data[8 + header_len :]))
            header_len = len(text)
    return bytes(data)


@fuzz_settings(300)
@given(st.one_of(corrupted_weights(), st.binary(max_size=256)))
def test_weights_file_mutations(blob):
    """A broken weights file is a WeightsFileError (naming the tensor when one is at fault)."""
    CASES["weights: mutated safetensors"] += 1
    with time_bound():
        try:
            tensors, _ = loads(blob)
        except WeightsFileError as exc:
            assert_clear(exc)
            return
    for name, array in tensors.items():
        assert np.isfinite(array).all(), name


# ---- the report ---------------------------------------------------------------------------------


def test_zz_report_case_counts():
    """Print how many cases each entry point ran (this test runs last in the module; see it
    with ``-s`` or ``-rA``)."""
    total = sum(CASES.values())
    print(f"\nfuzz cases run: {total}")
    for k, n in sorted(CASES.items()):
        print(f"  {n:6d}  {k}")
    if len(CASES) >= 10:  # the whole module ran, not a -k selection
        assert total >= 3000
