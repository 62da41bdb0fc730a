"""Detail-view latency in a real browser (JupyterLab + Debian Chromium), run by hand.

    python bench/detail_latency.py [--n 20]

What is measured
----------------
The widget is shown in JupyterLab. ``--n`` times (after 2 uncounted warm-ups), with no detail
view open, Playwright clicks a conv neuron in the overview, cycling through
``conv_1_1``/``conv_1_2``/``conv_2_1``/``conv_2_2`` and their channels. Before each click two
things are installed in the page:

* capture-phase ``pointerdown`` and ``click`` listeners on ``document`` that record
  ``performance.now()`` when the browser dispatches those events (so Playwright's own round trips
  before the click are excluded);
* a ``MutationObserver`` on the notebook panel that records the time the detail view is complete:
  ``.cnnx-detail[data-layer=<layer>] .cnnx-math-output`` exists (the conv math view's output,
  which the front end writes last), then the time after the next animation frame
  (``requestAnimationFrame`` + a task: that frame has been painted) = the first complete frame.

Reported: ``click`` → DOM complete, ``click`` → first complete painted frame, and the same from
``pointerdown``. The detail view is computed from data the page already holds; no kernel round
trip is involved (the click also sends ``selected`` to Python, which is not waited for). Between
clicks the view is closed with its close button and ``data-detail`` is awaited to be ``""``.

Results are printed and saved to ``bench/results/detail_latency.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from _common import print_table, save, summary
from cnnx_lab import WATCH_JS, WIDGET_CELL, BenchLab, watched
from playwright.sync_api import expect

CLICK_JS = """() => {
  window.__cnnxDown = null; window.__cnnxClick = null;
  const now = () => performance.timeOrigin + performance.now();
  document.addEventListener('pointerdown', () => { window.__cnnxDown ??= now(); },
                            {capture: true, once: true});
  document.addEventListener('click', () => { window.__cnnxClick ??= now(); },
                            {capture: true, once: true});
}"""
LAYERS = ["conv_1_1", "conv_1_2", "conv_2_1", "conv_2_2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="timed clicks (default 20)")
    args = parser.parse_args()
    warmup = 2
    rows: dict[str, list[float]] = {"click_dom": [], "click_frame": [], "down_dom": [],
                                    "down_frame": []}  # fmt: skip
    t_start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        BenchLab(Path(tmp), {"d.ipynb": [WIDGET_CELL]}) as lab,
    ):
        wp = lab.widget_page("d.ipynb")
        root = wp.show_widget()
        for i in range(warmup + args.n):
            layer, index = LAYERS[i % len(LAYERS)], (3 * i) % 10
            if root.get_attribute("data-detail"):
                root.locator(".cnnx-detail-close").first.click()
                expect(root).to_have_attribute("data-detail", "")
            wp.page.evaluate(CLICK_JS)
            wp.page.evaluate(
                WATCH_JS, [f'.cnnx-detail[data-layer="{layer}"] .cnnx-math-output', None, None]
            )
            root.locator(f'[data-layer="{layer}"][data-index="{index}"]').first.click()
            dom = watched(wp.page, "__cnnxSeen")
            frame = watched(wp.page, "__cnnxFrame")
            down, click = wp.page.evaluate("[window.__cnnxDown, window.__cnnxClick]")
            if i < warmup:
                continue
            rows["click_dom"].append(dom - click)
            rows["click_frame"].append(frame - click)
            rows["down_dom"].append(dom - down)
            rows["down_frame"].append(frame - down)
        wp.close()
    print(f"\n{platform.node()}  {platform.machine()}  python {platform.python_version()}\n")
    print_table([
        ("conv neuron click -> detail DOM complete (ms)", summary(rows["click_dom"]), ".1f"),
        ("conv neuron click -> first complete frame (ms)", summary(rows["click_frame"]), ".1f"),
        ("pointerdown -> detail DOM complete (ms)", summary(rows["down_dom"]), ".1f"),
        ("pointerdown -> first complete frame (ms)", summary(rows["down_frame"]), ".1f"),
    ])  # fmt: skip
    print(f"\n(whole run {time.perf_counter() - t_start:.0f}s)")
    print(f"raw numbers: {save('detail_latency', rows)}")


if __name__ == "__main__":
    main()
