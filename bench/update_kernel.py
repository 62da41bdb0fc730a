"""`w.image = x` in a real Jupyter kernel, without a browser: where an update's time goes.

    python bench/update_kernel.py [--n 300] [--cold 3]

A kernel (ipykernel, started with jupyter_client) makes a `CNNExplainer` and displays it, so
its comm is open and every update is a real ``comm_msg`` on the kernel's iopub socket; this
script is the client and reads every message. In the kernel, alternating two default images
(espresso, koala), ``--n`` times each after warm-ups:

- ``w.image = <path>`` and ``w.image = <array>``, timed around the assignment (what
  `bench/update_latency.py` reports as "kernel: forward + encode + send", without a browser
  reading the socket);
- the stages of one update, each timed alone (``--gap`` ms idle before each call: at a user's
  pace caches are cold and the thread pool asleep, which costs more than the work on a loaded
  machine): decoding the file (``load_image_with_info``),
  the forward pass (``Network.activations``), the payload (``encode_activations``), and the
  traits and message (``_update``: traitlets, ipywidgets' buffer split, the comm's send).

``--cold`` rounds of two fresh kernels, one with the package's compilation cache (as a user
meets it from the second kernel on) and one with ``CNN_EXPLAINER_WIDGET_CACHE=off`` (the
first compile): from sending ``from cnn_explainer_widget import CNNExplainer;
w = CNNExplainer(); display(w)`` to the kernel's reply, and in the kernel the import and the
widget's construction (``time.perf_counter``); the page's own part (bundle, decode, draw) is
measured by `bench/update_latency.py`.

Medians; the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parents[1]

SETUP = """
import time, statistics, json
import numpy as np
from cnn_explainer_widget import CNNExplainer, load_image
from cnn_explainer_widget.images import default_image_path, load_image_with_info
from cnn_explainer_widget._protocol import encode_activations
w = CNNExplainer()
display(w)
_paths = [str(default_image_path(n)) for n in ("espresso_1.jpeg", "koala_1.jpeg")]
_arrays = [load_image(p) for p in _paths]

def _median(fn, n):
    for i in range(20):
        fn(i)
    times = []
    for i in range(n):
        time.sleep(_GAP)
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3

def _stages(n, gap):
    global _GAP
    _GAP = gap
    net = w.network
    acts = [net.activations(a) for a in _arrays]
    infos = [load_image_with_info(p) for p in _paths]
    payloads = [encode_activations(net, a, 0, "x", "python") for a in acts]
    def update(i):
        j = i % 2
        w._update(_arrays[j], infos[j][1], acts[j], "n%d" % j, dict(payloads[j], seq=i), {}, "")
    return {
        "w.image = path": _median(lambda i: setattr(w, "image", _paths[i % 2]), n),
        "w.image = array": _median(lambda i: setattr(w, "image", _arrays[i % 2]), n),
        "  decode + preprocess (load_image_with_info)": _median(
            lambda i: load_image_with_info(_paths[i % 2]), n),
        "  forward (Network.activations)": _median(lambda i: net.activations(_arrays[i % 2]), n),
        "  payload (encode_activations)": _median(
            lambda i: encode_activations(net, acts[i % 2], i, "x", "python"), n),
        "  traits + comm send (_update)": _median(update, n),
    }
"""

COLD = """
import time as _t
_t0 = _t.perf_counter()
from cnn_explainer_widget import CNNExplainer
_t1 = _t.perf_counter()
w = CNNExplainer()
display(w)
_t2 = _t.perf_counter()
_cold = (_t2 - _t0, _t1 - _t0, _t2 - _t1)
"""


def execute(kc, code: str, expr: str | None = None, timeout: float = 600) -> str | None:
    """Run ``code`` in the kernel; read every iopub message until it is idle; ``expr``'s repr."""
    msg_id = kc.execute(code, user_expressions={"r": expr} if expr else None)
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    if expr:
        return reply["content"]["user_expressions"]["r"]["data"]["text/plain"]
    return None


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="timed updates per measure")
    parser.add_argument("--cold", type=int, default=3, help="fresh kernels for the cold start")
    parser.add_argument(
        "--gap", type=float, default=0, help="idle ms before each timed call (a user's pace)"
    )
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"load average at the start: {load()}")
    if args.cold:
        runs: dict[str, list[tuple[float, ...]]] = {"cache on": [], "cache off": []}
        for _ in range(args.cold):
            for label in runs:  # alternated, so both see the same machine
                cache = {"CNN_EXPLAINER_WIDGET_CACHE": "off"} if label == "cache off" else {}
                km, kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT), env=env | cache)
                try:
                    t = time.perf_counter()
                    inner = execute(kc, COLD, "_cold")
                    runs[label].append((time.perf_counter() - t, *ast.literal_eval(inner or "")))
                finally:
                    kc.stop_channels()
                    km.shutdown_kernel(now=True)
        print(f"cold: the CNNExplainer() cell in a fresh kernel, median of {args.cold} (s)")
        print(f"{'':12}{'to reply':>10}{'in kernel':>11}{'import':>9}{'widget':>9}")
        for label, values in runs.items():
            cols = [statistics.median(v[i] for v in values) for i in range(4)]
            widths = (10, 11, 9, 9)
            cells = "".join(f"{c:>{w}.3f}" for c, w in zip(cols, widths, strict=True))
            print(f"{label:12}{cells}")
    if args.n:
        km, kc = start_new_kernel(kernel_name="python3", cwd=str(ROOT), env=env)
        try:
            execute(kc, SETUP)
            result = json.loads(
                execute(kc, "", f"json.dumps(_stages({args.n}, {args.gap / 1e3}))").strip("'")  # type: ignore[union-attr]
            )
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        print(f"\nin the kernel, median of {args.n}, {args.gap:g} ms idle before each (ms)")
        for name, value in result.items():
            print(f"{name:<48}{value:>8.3f}")
    print(f"\nload average at the end: {load()}")


if __name__ == "__main__":
    main()
