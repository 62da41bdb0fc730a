"""Update latency of the overview in a real browser (JupyterLab + Debian Chromium), run by hand.

    python bench/update_latency.py [--n 50] [--cold 3]

What is measured
----------------
1. **Python → redrawn overview.** The widget is shown in JupyterLab; a second kernel client on the
   same kernel runs ``_t0 = time.time(); w.image = <path>; _t1 = time.time()`` alternating two
   default images (espresso, koala) ``--n`` times after 3 uncounted warm-ups. Before each
   assignment a ``MutationObserver`` is installed in the page; it records
   ``performance.timeOrigin + performance.now()`` (epoch ms) the moment the root's ``data-seq``
   becomes the new sequence number (the front end sets it once that image is drawn), and again
   after the next animation frame (``requestAnimationFrame`` + a task: that frame is painted).
   Kernel and page read the same system clock (the offset is measured anyway, from the tightest of
   15 ``evaluate`` round trips, and subtracted), so no Playwright round trip is inside the figure.
   Reported: total (``data-seq`` seen − ``_t0``), the kernel part (``_t1 − _t0``: forward pass,
   encoding, send), the rest (transport, decode, draw) and to the painted frame.
2. **Bytes per update**, from the page's websocket frames (Playwright ``framereceived``): the frame
   carrying the ``_activations`` update (the largest), and all frames the page received for the
   update (iopub status/execute_input of the assignment included).
3. **Cold start.** ``--cold`` times: a new notebook is opened in a new page, which starts a fresh
   kernel (the kernel's start is not counted); once it is idle, the cell
   ``from cnn_explainer_widget import CNNExplainer; w = CNNExplainer(); w`` is run from the UI
   (Shift+Enter). Measured in the page from the Shift+Enter keydown to
   ``.cnnx-root[data-ready="1"]`` (import, weights, JIT compile, first forward pass, comm open,
   bundle load, decode, draw); the kernel is shut down after each run. The server's
   ``XDG_CACHE_HOME`` is a fresh temporary folder: the first kernel (step 1's) writes the
   package's compilation cache there, so these runs are what a user meets from the second
   kernel on; ``CNN_EXPLAINER_WIDGET_CACHE=off python bench/update_latency.py`` gives the
   very first kernel's figure (everything compiled).

4. **Large layers** (issue 10, ``--networks``): the same update measurement for VGG-style networks
   on 224×224×3 with 64 channels per conv (``tests/large_networks.py``: ``vgg``, ``vgg_no_pool``,
   ``vgg_gelu``), each in its own notebook and kernel, Tiny VGG (``tiny``) first as the baseline
   of the same run. Added per network: the page's own message → drawn time (``data-draw-ms``:
   from the ``_activations`` change event to the overview repainted, decode included), and the
   page's JS heap after each update (``Runtime.getHeapUsage`` over the Chrome DevTools Protocol:
   V8's used heap plus the ArrayBuffers' backing storage, where typed arrays live; the whole
   JupyterLab page: JupyterLab, the widget and its data).

Results are printed as a table and saved to ``bench/results/update_latency.json`` (git-ignored).
Run ``PYTHONPATH=<checkout> python bench/update_latency.py`` to measure another checkout's
package with this script (e.g. main before a change).
"""

from __future__ import annotations

import argparse
import ast
import platform
import tempfile
import time
from pathlib import Path

from _common import print_table, save, summary
from cnnx_lab import (
    IMAGES,
    WATCH_JS,
    WIDGET_CELL,
    BenchLab,
    page_clock_offset_ms,
    wait_for,
    watched,
)

ACTIVATION_BYTES = 101_348 * 4  # input, conv maps and output; ReLU and pool maps are recipes
TESTS = Path(__file__).resolve().parents[1] / "tests"
#: The large networks' cells (the widget is `w`, as in WIDGET_CELL).
LARGE_CELL = (
    f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
    "import large_networks as _ln\n"
    "from cnn_explainer_widget import CNNExplainer\n"
    "w = CNNExplainer(model=_ln.{name}(), classes=_ln.CLASSES, input_shape=_ln.SHAPE)\n"
    "w"
)
NETWORKS = {"tiny": WIDGET_CELL} | {
    name: LARGE_CELL.format(name=name) for name in ("vgg", "vgg_no_pool", "vgg_gelu")
}
KEY_JS = """() => { window.__cnnxKey = null; document.addEventListener('keydown', e => {
  if (e.key === 'Enter' && e.shiftKey && window.__cnnxKey === null)
    window.__cnnxKey = performance.timeOrigin + performance.now(); }, {capture: true}); }"""


def update_runs(
    lab: BenchLab, n: int, warmup: int = 3, nb: str = "update.ipynb"
) -> dict[str, list[float]]:
    wp = lab.widget_page(nb)
    wp.show_widget()
    k = wp.kernel
    assert k is not None
    cdp = wp.page.context.new_cdp_session(wp.page)
    offset = page_clock_offset_ms(wp.page)
    k.run("import time as _bench_time")
    images = [str(IMAGES / "espresso_1.jpeg"), str(IMAGES / "koala_1.jpeg")]
    out: dict[str, list[float]] = {
        k_: []
        for k_ in (
            *("total_ms", "kernel_ms", "rest_ms", "painted_ms", "update_bytes", "ws_bytes"),
            *("draw_ms", "heap_mb"),
        )
    }
    out["clock_offset_ms"] = [offset]
    for i in range(warmup + n):
        seq = k.eval_json("w._activations['seq']") + 1
        wp.page.evaluate(WATCH_JS, [".cnnx-root", "data-seq", str(seq)])
        n_frames = len(wp.frames)
        reply = k.kc.execute_interactive(
            f"_t0 = _bench_time.time(); w.image = {images[i % 2]!r}; _t1 = _bench_time.time()",
            user_expressions={"t": "(_t0, _t1)"},
            timeout=60,
            output_hook=lambda m: None,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        t0, t1 = ast.literal_eval(reply["content"]["user_expressions"]["t"]["data"]["text/plain"])
        seen = watched(wp.page, "__cnnxSeen") - offset
        painted = watched(wp.page, "__cnnxFrame") - offset

        def update_frames(start=n_frames):
            got = [len(p) for _, d, p in wp.frames[start:] if d == "in"]
            return got if max(got, default=0) >= ACTIVATION_BYTES else None

        frames = wait_for(update_frames, 10, 0.01, "the update's websocket frame")
        # the page has drawn this update (its data-seq): its own hooks are this update's
        assert wp.root.get_attribute("data-seq") == str(seq)
        if i < warmup:
            continue
        out["total_ms"].append(seen - t0 * 1e3)
        out["kernel_ms"].append((t1 - t0) * 1e3)
        out["rest_ms"].append(seen - t1 * 1e3)
        out["painted_ms"].append(painted - t0 * 1e3)
        out["update_bytes"].append(float(max(frames)))
        out["ws_bytes"].append(float(sum(frames)))
        out["draw_ms"].append(float(wp.root.get_attribute("data-draw-ms") or "nan"))
        heap = cdp.send("Runtime.getHeapUsage")  # V8's heap and the ArrayBuffers' storage
        out["heap_mb"].append((heap["usedSize"] + heap.get("backingStorageSize", 0)) / 1e6)
    wp.close()
    wp.page.close()
    lab.server.api(f"sessions/{_session_id(lab, nb)}", "DELETE")
    return out


def _session_id(lab: BenchLab, nb: str) -> str:
    return next(s["id"] for s in lab.server.api("sessions") if s["path"] == nb)


def cold_runs(lab: BenchLab, count: int) -> list[float]:
    times = []
    for i in range(count):
        nb = f"cold-{i}.ipynb"
        wp = lab.widget_page(nb)
        wp.open()
        wp.page.evaluate(KEY_JS)
        wp.page.evaluate(WATCH_JS, [".cnnx-root[data-ready='1']", None, None])
        wp.run_cell(0)
        ready = watched(wp.page, "__cnnxSeen", 120)
        start = wp.page.evaluate("window.__cnnxKey")
        assert start is not None, "the Shift+Enter keydown was not seen"
        times.append((ready - start) / 1e3)
        wp.page.close()
        lab.server.api(f"sessions/{_session_id(lab, nb)}", "DELETE")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50, help="timed image changes (default 50)")
    parser.add_argument("--cold", type=int, default=3, help="fresh kernels (default 3)")
    parser.add_argument(
        "--networks",
        nargs="+",
        default=["tiny"],
        choices=list(NETWORKS),
        help="networks whose updates are measured, each in its own kernel (default: tiny)",
    )
    args = parser.parse_args()
    notebooks = {f"update-{name}.ipynb": [NETWORKS[name]] for name in args.networks}
    notebooks.update({f"cold-{i}.ipynb": [WIDGET_CELL] for i in range(args.cold)})
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, BenchLab(Path(tmp), notebooks) as lab:
        upd = {name: update_runs(lab, args.n, nb=f"update-{name}.ipynb") for name in args.networks}
        cold = cold_runs(lab, args.cold) if args.cold else []
    rows = []
    for name, u in upd.items():
        rows += [
            (f"[{name}] update: w.image = x -> data-seq drawn (ms)", summary(u["total_ms"]), ".1f"),
            ("  kernel: forward + encode + send (ms)", summary(u["kernel_ms"]), ".1f"),
            ("  browser: transport + decode + draw (ms)", summary(u["rest_ms"]), ".1f"),
            ("  page: message -> drawn, data-draw-ms (ms)", summary(u["draw_ms"]), ".1f"),
            ("update: w.image = x -> next painted frame (ms)", summary(u["painted_ms"]), ".1f"),
            ("bytes per update: the update's ws frame", summary(u["update_bytes"]), ".0f"),
            ("bytes per update: all ws frames received", summary(u["ws_bytes"]), ".0f"),
            ("page JS heap after the update (MB)", summary(u["heap_mb"]), ".1f"),
        ]
    if cold:
        rows.append(("cold: CNNExplainer() cell -> data-ready (s)", summary(cold), ".2f"))
    first = next(iter(upd.values()))
    print(f"\n{platform.node()}  {platform.machine()}  python {platform.python_version()}")
    print(f"page clock - python clock: {first['clock_offset_ms'][0]:+.2f} ms (subtracted)\n")
    print_table(rows)
    if "tiny" in upd and len(upd) > 1:
        base = upd["tiny"]
        print("\nratios to Tiny VGG in this run (medians):")
        for name, u in upd.items():
            if name != "tiny":
                ratios = ", ".join(
                    f"{key} ×{summary(u[key])['median'] / summary(base[key])['median']:.1f}"
                    for key in ("update_bytes", "kernel_ms", "draw_ms", "heap_mb")
                )
                print(f"  {name}: {ratios}")
    print(f"\n(whole run {time.perf_counter() - t_start:.0f}s)")
    raw = {"update": upd, "cold_s": cold}
    path = save("update_latency", raw)
    print(f"raw numbers: {path}")


if __name__ == "__main__":
    main()
