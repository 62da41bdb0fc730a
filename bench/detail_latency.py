"""Elastic-view latency in a real browser (JupyterLab + Debian Chromium, headless), run by hand.

    python bench/detail_latency.py [--n 20]

What is measured
----------------
The widget is shown in JupyterLab at 1400×900. ``--n`` times (after 2 uncounted warm-ups), with
the overview showing, Playwright clicks a neuron, cycling through ``conv_1_1``, ``relu_1_2``,
``max_pool_1``, ``conv_2_1``, ``output`` and ``input`` (different channels), then presses Esc and
waits for the overview to settle. Before each click a capture-phase ``click`` listener on
``document`` records ``performance.now()`` when the browser dispatches the click (Playwright's
own round trips are excluded). The widget writes on its root, when a transition ends:
``data-t-first`` (``performance.now()`` of the transition's first animation frame),
``data-t-settled`` (when its last frame was applied) and ``data-frame-times`` (the time between
consecutive animation frames).

Reported, each over ``--n`` clicks:

* click → first frame of the transition;
* click → settled (the transition's last frame; goal ≤ 600 ms; the original CNN Explainer takes
  1,033 ms to its complete expanded view on this kind of machine);
* frame time during the transitions (every interval between two animation frames of the
  measured transitions, opening and closing; goal median ≤ 16.7 ms, 95th percentile ≤ 33 ms);
* the script time the animator spends on each frame (``data-frame-work``), which separates the
  widget's own cost from a loaded machine's scheduling;
* baseline, measured in the same run after each click: the frame intervals of an empty
  ``requestAnimationFrame`` loop in the same page for 500 ms (what the machine gives a page that
  does nothing; on a loaded machine frames are late whatever the page does);
* the same clicks under ``prefers-reduced-motion: reduce``: click → settled (goal ≤ 100 ms),
  which is also this run's baseline: the cost of building the view without the animation.

Results are printed and saved to ``bench/results/detail_latency.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _common import print_table, save, summary
from cnnx_lab import WIDGET_CELL, BenchLab
from playwright.sync_api import expect

CLICK_JS = """() => {
  window.__cnnxClick = null;
  document.addEventListener('click', () => { window.__cnnxClick ??= performance.now(); },
                            {capture: true, once: true});
}"""
#: An empty requestAnimationFrame loop for 500 ms in the same page: the frame intervals the
#: machine gives a page that does nothing (the baseline for the transitions' frame times).
IDLE_FRAMES_JS = """() => new Promise(resolve => {
  const out = []; const t0 = performance.now(); let last = t0;
  const tick = now => { out.push(now - last); last = now;
    if (now - t0 < 500) requestAnimationFrame(tick); else resolve(out.slice(1)); };
  requestAnimationFrame(tick);
})"""
TARGETS = [("conv_1_1", 3), ("relu_1_2", 5), ("max_pool_1", 7), ("conv_2_1", 2), ("output", 6),
           ("input", 1)]  # fmt: skip


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(wp, root, n: int, warmup: int, rows: dict[str, list[float]], reduced: bool) -> None:
    page = wp.page
    page.emulate_media(reduced_motion="reduce" if reduced else "no-preference")
    tag = "reduced" if reduced else "animated"
    for i in range(warmup + n):
        layer, index = TARGETS[i % len(TARGETS)]
        index = (index + i) % (3 if layer == "input" else 10)
        expect(root).to_have_attribute("data-detail", "")
        expect(root).to_have_attribute("data-settled", "1")
        page.evaluate(CLICK_JS)
        root.locator(f'.cnnx-neuron[data-layer="{layer}"][data-index="{index}"]').first.click()
        expect(root).to_have_attribute("data-detail", layer)
        expect(root).to_have_attribute("data-settled", "1", timeout=20_000)
        click, first, settled, frames, work = page.evaluate(
            """r => [window.__cnnxClick, +r.dataset.tFirst || null, +r.dataset.tSettled,
                     r.dataset.frameTimes, r.dataset.frameWork]""",
            root.element_handle(),
        )
        page.mouse.move(0, 0)
        page.keyboard.press("Escape")
        expect(root).to_have_attribute("data-detail", "")
        expect(root).to_have_attribute("data-settled", "1", timeout=20_000)
        closing = root.get_attribute("data-frame-times")
        idle = page.evaluate(IDLE_FRAMES_JS)
        if i < warmup:
            continue
        rows[f"{tag}_idle"].extend(idle)
        rows[f"{tag}_settled"].append(settled - click)
        if first is not None:
            rows[f"{tag}_first"].append(first - click)
        for series in (frames, closing):
            # the first entry is the wait for the first frame, not a frame interval
            rows[f"{tag}_frame"].extend(float(t) for t in (series or "").split(",")[1:] if t)
        rows[f"{tag}_work"].extend(float(t) for t in (work or "").split(",") if t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="timed clicks per mode (default 20)")
    args = parser.parse_args()
    keys = ["animated_first", "animated_settled", "animated_frame", "animated_work",
            "reduced_settled", "reduced_first", "reduced_frame", "reduced_work", "animated_idle",
            "reduced_idle"]  # fmt: skip
    rows: dict[str, list[float]] = {k: [] for k in keys}
    t_start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        BenchLab(Path(tmp), {"d.ipynb": [WIDGET_CELL]}) as lab,
    ):
        wp = lab.widget_page("d.ipynb")
        wp.page.set_viewport_size({"width": 1400, "height": 900})
        root = wp.show_widget()
        measure(wp, root, args.n, 2, rows, reduced=False)
        measure(wp, root, args.n, 2, rows, reduced=True)
        wp.close()
    anim = rows["animated_settled"]
    base = rows["reduced_settled"]
    frames = rows["animated_frame"]
    print(f"\n{platform.node()}  {platform.machine()}  python {platform.python_version()}\n")
    print_table([
        ("click -> first transition frame (ms)", summary(rows["animated_first"]), ".1f"),
        ("click -> settled, animated (ms)", summary(anim), ".1f"),
        ("frame time during transitions (ms)", summary(frames), ".1f"),
        ("  script work per frame (ms)", summary(rows["animated_work"]), ".2f"),
        ("  baseline: frame time of an idle page (ms)", summary(rows["animated_idle"]), ".1f"),
        ("click -> settled, reduced motion (ms)", summary(base), ".1f"),
    ])  # fmt: skip
    idle = rows["animated_idle"]
    print(
        f"\nframe time p95 {p95(frames):.1f} ms over {len(frames)} frames "
        f"(idle page: p95 {p95(idle):.1f} ms, median ratio "
        f"{statistics.median(frames) / statistics.median(idle):.2f}x); "
        f"animated / reduced-motion settle (medians): "
        f"{statistics.median(anim) / statistics.median(base):.1f}x"
    )
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"(whole run {time.perf_counter() - t_start:.0f}s)")
    print(f"raw numbers: {save('detail_latency', rows)}")


if __name__ == "__main__":
    main()
