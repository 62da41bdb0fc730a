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

Results are printed as a table and saved to ``bench/results/update_latency.json`` (git-ignored).
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
KEY_JS = """() => { window.__cnnxKey = null; document.addEventListener('keydown', e => {
  if (e.key === 'Enter' && e.shiftKey && window.__cnnxKey === null)
    window.__cnnxKey = performance.timeOrigin + performance.now(); }, {capture: true}); }"""


def update_runs(lab: BenchLab, n: int, warmup: int = 3) -> dict[str, list[float]]:
    wp = lab.widget_page("update.ipynb")
    wp.show_widget()
    k = wp.kernel
    assert k is not None
    offset = page_clock_offset_ms(wp.page)
    k.run("import time as _bench_time")
    images = [str(IMAGES / "espresso_1.jpeg"), str(IMAGES / "koala_1.jpeg")]
    out: dict[str, list[float]] = {
        k_: []
        for k_ in ("total_ms", "kernel_ms", "rest_ms", "painted_ms", "update_bytes", "ws_bytes")
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
        if i < warmup:
            continue
        out["total_ms"].append(seen - t0 * 1e3)
        out["kernel_ms"].append((t1 - t0) * 1e3)
        out["rest_ms"].append(seen - t1 * 1e3)
        out["painted_ms"].append(painted - t0 * 1e3)
        out["update_bytes"].append(float(max(frames)))
        out["ws_bytes"].append(float(sum(frames)))
    wp.close()
    wp.page.close()
    lab.server.api(f"sessions/{_session_id(lab, 'update.ipynb')}", "DELETE")
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
    args = parser.parse_args()
    notebooks = {"update.ipynb": [WIDGET_CELL]}
    notebooks.update({f"cold-{i}.ipynb": [WIDGET_CELL] for i in range(args.cold)})
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, BenchLab(Path(tmp), notebooks) as lab:
        upd = update_runs(lab, args.n)
        cold = cold_runs(lab, args.cold) if args.cold else []
    rows = [
        ("update: w.image = x -> data-seq drawn (ms)", summary(upd["total_ms"]), ".1f"),
        ("  kernel: forward + encode + send (ms)", summary(upd["kernel_ms"]), ".1f"),
        ("  browser: transport + decode + draw (ms)", summary(upd["rest_ms"]), ".1f"),
        ("update: w.image = x -> next painted frame (ms)", summary(upd["painted_ms"]), ".1f"),
        ("bytes per update: the update's ws frame", summary(upd["update_bytes"]), ".0f"),
        ("bytes per update: all ws frames received", summary(upd["ws_bytes"]), ".0f"),
    ]
    if cold:
        rows.append(("cold: CNNExplainer() cell -> data-ready (s)", summary(cold), ".2f"))
    print(f"\n{platform.node()}  {platform.machine()}  python {platform.python_version()}")
    print(f"page clock - python clock: {upd['clock_offset_ms'][0]:+.2f} ms (subtracted)\n")
    print_table(rows)
    print(f"\n(whole run {time.perf_counter() - t_start:.0f}s)")
    raw = {"update": upd, "cold_s": cold}
    path = save("update_latency", raw)
    print(f"raw numbers: {path}")


if __name__ == "__main__":
    main()
