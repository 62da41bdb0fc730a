"""The widget's Python API tells the truth: arguments apply or raise, state is observable,
updates are serialised, and Python and the page never disagree (issue 12, defects 3, 4, 6, 7)."""

from __future__ import annotations

import copy
import io
import threading

import numpy as np
import pytest
import traitlets
from flax import nnx
from ipywidgets.widgets.widget import _put_buffers
from jupyter_client.session import json_packer
from PIL import Image

from cnn_explainer_widget import CNNExplainer, Flatten, activations, load_image
from cnn_explainer_widget.images import DEFAULT_IMAGES, default_image_path


def _png(color=(10, 200, 30), size=(80, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _sent_activations(w: CNNExplainer) -> list[dict]:
    """Record every ``_activations`` state sent to the page, serialised as a kernel would."""
    sent: list[dict] = []
    real = w._send

    def send(msg, buffers=None):
        json_packer(msg)  # what the kernel's session does: raises on what cannot be sent
        state = copy.deepcopy(msg.get("state", {}))
        _put_buffers(state, msg.get("buffer_paths", []), buffers or [])
        if "_activations" in state:
            sent.append(state["_activations"])
        real(msg, buffers)

    w._send = send
    return sent


def _payload_input(payload: dict) -> np.ndarray:
    """The input image the page would draw from an ``_activations`` payload, (H, W, C)."""
    entry = next(e for e in payload["layers"] if e["name"] == "input")
    data = np.frombuffer(payload["data"], "<f4")
    chw = data[entry["offset"] : entry["offset"] + int(np.prod(entry["shape"]))]
    return chw.reshape(entry["shape"]).transpose(1, 2, 0)


# ---- defect 3: no silently ignored arguments ------------------------------------------------


def test_unknown_keyword_arguments_raise_type_error():
    with pytest.raises(TypeError, match=r"colour_scale.*did you mean 'color_scale'"):
        CNNExplainer(colour_scale="global")
    with pytest.raises(TypeError, match="unexpected keyword argument 'imgae'"):
        CNNExplainer(imgae="x.png")
    with pytest.raises(TypeError, match="_network"):
        CNNExplainer(_network={})


def test_known_keyword_arguments_apply():
    w = CNNExplainer(color_scale="global", selected={"layer": "conv_1_1", "index": 2})
    assert w.color_scale == "global"
    assert w.selected == {"layer": "conv_1_1", "index": 2}


def test_classes_without_a_model_apply_to_tiny_vgg_or_raise():
    names = [f"thing {i}" for i in range(10)]
    w = CNNExplainer(classes=names)
    assert w.classes == names
    assert set(w.probabilities) == set(names)
    assert w.prediction in names
    with pytest.raises(ValueError, match="3 class names given for 10 network outputs"):
        CNNExplainer(classes=["a", "b", "c"])


def test_input_shape_without_a_model_is_checked():
    assert CNNExplainer(input_shape=(64, 64, 3)).network.input_shape == (64, 64, 3)
    with pytest.raises(ValueError, match=r"input_shape \(32, 32, 3\).*\(64, 64, 3\)"):
        CNNExplainer(input_shape=(32, 32, 3))


def test_classes_and_input_shape_with_a_network_apply_or_raise():
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(
        nnx.Conv(1, 2, kernel_size=(3, 3), padding="VALID", rngs=rngs),
        nnx.relu,
        Flatten(),
        nnx.Linear(6 * 6 * 2, 3, rngs=rngs),
    )
    first = CNNExplainer(np.zeros((8, 8, 1), np.float32), model=model, input_shape=(8, 8, 1))
    renamed = CNNExplainer(
        np.zeros((8, 8, 1), np.float32), model=first.network, classes=["x", "y", "z"]
    )
    assert renamed.classes == ["x", "y", "z"]
    assert first.classes == ["class 0", "class 1", "class 2"]  # the given network is unchanged
    with pytest.raises(ValueError, match="input_shape"):
        CNNExplainer(model=first.network, input_shape=(9, 9, 1))


# ---- defect 4: state a user can observe ------------------------------------------------------


@pytest.mark.parametrize("name", ["image", "image_name", "prediction", "probabilities"])
def test_state_traits_are_read_only_traits(name):
    w = CNNExplainer()
    assert w.has_trait(name)
    assert w.traits()[name].read_only or name == "image"
    if name != "image":
        with pytest.raises(traitlets.TraitError, match="read-only"):
            setattr(w, name, getattr(w, name))


def test_observers_fire_with_consistent_state_on_python_and_page_updates():
    w = CNNExplainer()
    seen: list[tuple[str, str, str, str]] = []

    def record(change):
        # Every observer sees the whole new state, not half of an update.
        seen.append(
            (
                change["name"],
                w.image_name,
                w.prediction,
                max(w.probabilities, key=w.probabilities.get),
            )
        )

    w.observe(record, names=["image", "image_name", "prediction", "probabilities"])
    w.image = default_image_path("koala_1.jpeg")
    assert {s[0] for s in seen} == {"image", "image_name", "prediction", "probabilities"}
    assert all(s[1:] == ("koala_1.jpeg", "koala", "koala") for s in seen)
    seen.clear()
    # An upload from the page fires them too.
    w._handle_custom_msg(
        {"type": "upload", "name": "pizza.jpeg"}, [default_image_path("pizza_1.jpeg").read_bytes()]
    )
    assert ("prediction", "pizza.jpeg", "pizza", "pizza") in seen
    seen.clear()
    w._handle_custom_msg({"type": "choose", "index": 6}, [])
    assert ("image_name", "espresso", "espresso", "espresso") in seen


def test_image_assignment_still_loads_and_values_are_read_only():
    w = CNNExplainer()
    w.image = default_image_path("bus_1.jpeg")
    assert w.prediction == "school bus" and w.image_name == "bus_1.jpeg"
    assert w.image.shape == (64, 64, 3) and not w.image.flags.writeable
    with pytest.raises(ValueError):
        w.image = "no/such/file.png"
    assert w.prediction == "school bus"  # unchanged after a bad image
    with pytest.raises(TypeError):
        w.probabilities["koala"] = 1.0  # a read-only mapping
    assert dict(w.probabilities) == pytest.approx(
        dict(zip(w.classes, w.activations["probabilities"].tolist(), strict=True))
    )


def test_color_scale_is_an_enum():
    trait = CNNExplainer.class_traits()["color_scale"]
    assert isinstance(trait, traitlets.Enum)
    assert tuple(trait.values) == ("unit", "module", "global", "neuron")
    w = CNNExplainer()
    assert w.color_scale == "unit"
    w.color_scale = "neuron"
    with pytest.raises(traitlets.TraitError):
        w.color_scale = "colour"
    assert w.color_scale == "neuron"


def test_repr_says_what_the_widget_shows():
    w = CNNExplainer(default_image_path("espresso_1.jpeg"))
    text = repr(w)
    assert text.startswith("CNNExplainer(")
    assert "Tiny VGG" in text and "espresso_1.jpeg" in text and "prediction='espresso'" in text
    w.selected = {"layer": "conv_2_1", "index": 3}
    assert "conv_2_1" in repr(w)
    assert w._repr_mimebundle_()[0]["text/plain"] == repr(w)


# ---- defect 2: nothing returned aliases data someone else can write -----------------------


def test_activations_do_not_alias_the_callers_image():
    x = load_image(default_image_path("koala_1.jpeg"))
    acts = activations(x)
    assert acts["input"] is not x and not np.shares_memory(acts["input"], x)
    x[:] = 0  # the caller's array changes later: the result does not
    assert acts["input"].max() > 0
    for key, value in acts.items():
        assert not value.flags.writeable, key


def test_widget_returns_nothing_writable():
    w = CNNExplainer(default_image_path("koala_1.jpeg"))
    image = w.image.copy()
    acts = w.activations
    for key, value in acts.items():
        assert not value.flags.writeable, key
        with pytest.raises(ValueError, match="read-only"):
            value[...] = 0
    assert not np.shares_memory(acts["input"], image)
    np.testing.assert_array_equal(w.image, image)
    for name, params in w.network.params.items():
        for value in params.values():
            assert value is None or not value.flags.writeable, name
    n = w.selected_neuron
    w.selected = {"layer": "conv_1_1", "index": 0, "y": 3, "x": 4}
    n = w.selected_neuron
    for field in ("activation", "kernel", "window", "inputs"):
        value = getattr(n, field)
        assert value is None or not np.asarray(value).flags.writeable, field


def test_a_numpy_param_edited_later_changes_neither_kernels_nor_outputs():
    rngs = nnx.Rngs(0)
    conv = nnx.Conv(1, 2, kernel_size=(3, 3), padding="VALID", rngs=rngs)
    conv.kernel = nnx.Param(np.ones((3, 3, 1, 2), np.float32))  # numpy-backed
    model = nnx.Sequential(conv, nnx.relu, Flatten(), nnx.Linear(6 * 6 * 2, 3, rngs=rngs))
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8, 1)
    w = CNNExplainer(x, model=model, input_shape=(8, 8, 1))
    kernel_before = w.network.params["conv_1"]["kernel"].copy()
    probs_before = w.activations["probabilities"].copy()
    conv.kernel[...] *= -3.0  # in place, after the widget was made
    np.testing.assert_array_equal(w.network.params["conv_1"]["kernel"], kernel_before)
    w.image = x  # recomputed: still the weights it shows
    np.testing.assert_array_equal(w.activations["probabilities"], probs_before)


# ---- defect 6: updates are serialised --------------------------------------------------------


def test_concurrent_image_updates_leave_page_and_python_in_agreement():
    w = CNNExplainer()
    sent = _sent_activations(w)
    sources = [default_image_path(f).read_bytes() for f, _ in DEFAULT_IMAGES[:2]]
    disagreements = 0
    for _ in range(100):
        barrier = threading.Barrier(2)

        def put(src, barrier=barrier):
            barrier.wait()
            w.image = src

        threads = [threading.Thread(target=put, args=(s,)) for s in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        last = sent[-1]
        if last["seq"] != w._activations["seq"] or not np.array_equal(
            _payload_input(last), w.image
        ):
            disagreements += 1
    assert disagreements == 0, f"the page ended on another image than Python in {disagreements}/100"


# ---- defect 7: upload names ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ok\ud800.png", "a\x00b\x1b[31m.png", "\udcff" * 3])
def test_upload_names_are_sanitised_and_the_page_is_updated(name):
    w = CNNExplainer()
    sent = _sent_activations(w)
    w._handle_custom_msg({"type": "upload", "name": name}, [_png((200, 30, 30))])
    assert w.error == ""
    assert sent and sent[-1]["seq"] == w._activations["seq"]
    np.testing.assert_array_equal(_payload_input(sent[-1]), w.image)
    assert w.image_name.isprintable() and w.image_name.encode("utf-8")
    assert sent[-1]["image"]["name"] == w.image_name


def test_a_failed_send_leaves_python_on_the_page_s_state():
    w = CNNExplainer()
    before = (w.image_name, w.prediction, w._activations["seq"], w.image.copy())
    real = w._send

    def failing(msg, buffers=None):
        if "_activations" in msg.get("state", {}):
            raise OSError("the comm is gone")
        real(msg, buffers)

    w._send = failing
    with pytest.raises(OSError):
        w.image = default_image_path("koala_1.jpeg")
    assert (w.image_name, w.prediction, w._activations["seq"]) == before[:3]
    np.testing.assert_array_equal(w.image, before[3])
    assert w.prediction != "koala"
