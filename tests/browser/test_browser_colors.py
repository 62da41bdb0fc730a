"""Colour ranges and legends as a user sees them: every range policy's legends carry numeric
ticks equal to the true ranges the kernel computed, and "unit" shares one range between a conv
layer and the ReLU and pooling after it. Real JupyterLab + Chromium; waits on DOM hooks.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, IMAGES, element_screenshot, wait_for

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
NUMBER = re.compile(r"[−-]?\d+(?:\.\d+)?(?:e[−+-]?\d+)?")

#: What each policy groups under one legend (Tiny VGG's hidden layers).
EXPECTED_GROUPS = {
    "unit": [
        ["conv_1_1", "relu_1_1"],
        ["conv_1_2", "relu_1_2", "max_pool_1"],
        ["conv_2_1", "relu_2_1"],
        ["conv_2_2", "relu_2_2", "max_pool_2"],
    ],
    "module": [
        ["conv_1_1", "relu_1_1", "conv_1_2", "relu_1_2", "max_pool_1"],
        ["conv_2_1", "relu_2_1", "conv_2_2", "relu_2_2", "max_pool_2"],
    ],
    "global": [
        [
            "conv_1_1",
            "relu_1_1",
            "conv_1_2",
            "relu_1_2",
            "max_pool_1",
            "conv_2_1",
            "relu_2_1",
            "conv_2_2",
            "relu_2_2",
            "max_pool_2",
        ]
    ],
}


def _float(text: str) -> float:
    m = NUMBER.search(text)
    assert m, text
    return float(m.group().replace("−", "-"))


def _close(a: float, b: float) -> bool:
    # the front end shows 3 significant digits
    return abs(a - b) <= max(0.006 * abs(b), 1e-3)


def legends(root) -> list[dict]:
    """Each hidden-layer legend's layers and its visible tick labels, left to right."""
    return root.evaluate(
        """(root) => [...root.querySelectorAll('.cnnx-ov-legend-div')].map((el) => ({
             layers: el.dataset.layers.split(' '),
             ticks: [...el.querySelectorAll('.cnnx-legend-tick')]
                      .filter((t) => !t.hidden).map((t) => t.textContent),
           }))"""
    )


def set_policy(view, policy: str) -> None:
    view.root.locator(f'.cnnx-scale-btn[data-scale="{policy}"]').click()
    expect(view.root).to_have_attribute("data-color-scale", policy, timeout=WAIT_MS)
    wait_for(
        lambda: view.kernel.eval_json("w.color_scale") == policy, 20, what=f"{policy} in Python"
    )


def test_legend_ticks_equal_true_ranges_in_each_policy(view):
    k, root = view.kernel, view.root
    try:
        for name in ["espresso_1.jpeg", "koala_1.jpeg"]:
            k.run(f"w.image = {str(IMAGES / name)!r}")
            seq = str(k.eval_json("w._activations['seq']"))
            expect(root).to_have_attribute("data-seq", seq, timeout=WAIT_MS)
            for policy, groups in EXPECTED_GROUPS.items():
                set_policy(view, policy)
                assert k.eval_json("w.color_scale") == policy
                shown = legends(root)
                assert [lg["layers"] for lg in shown] == groups, (policy, shown)
                for lg in shown:
                    extent = k.eval_json(
                        f"max(float(abs(w.activations[n]).max()) for n in {lg['layers']!r})"
                    )
                    ticks = [_float(t) for t in lg["ticks"]]
                    assert len(ticks) >= 2, (policy, lg)
                    assert _close(ticks[0], -extent) and _close(ticks[-1], extent), (
                        name,
                        policy,
                        lg,
                        extent,
                    )
                    assert ticks == sorted(ticks), lg
                if name == "espresso_1.jpeg":
                    element_screenshot(
                        view.page, root, ARTIFACTS / f"overview-colorscale-{policy}.png"
                    )
    finally:
        set_policy(view, "unit")


def test_unit_range_is_shared_by_conv_relu_and_pool(view):
    k, root = view.kernel, view.root
    set_policy(view, "unit")
    extent = k.eval_json("float(abs(w.activations['conv_1_2']).max())")
    tip = root.locator(".cnnx-ov-tooltip")
    for layer, index in [("conv_1_2", 0), ("relu_1_2", 4), ("max_pool_1", 9)]:
        root.locator(f'[data-layer="{layer}"][data-index="{index}"]').first.hover()
        expect(tip).to_contain_text(layer, timeout=WAIT_MS)
        line = next(t for t in tip.inner_text().splitlines() if t.startswith("colour"))
        assert _close(_float(line), extent), (layer, line, extent)
    # neuron policy: each neuron its own range, and its legend shows the hovered neuron's
    set_policy(view, "neuron")
    try:
        # the weakest neuron that is not all zero: its range differs from its layer's
        per = k.eval_json("[float(v) for v in abs(w.activations['relu_1_2']).max(axis=(0, 1))]")
        index = min((v, i) for i, v in enumerate(per) if v > 0)[1]
        own = per[index]
        assert own < max(per)
        root.locator(f'[data-layer="relu_1_2"][data-index="{index}"]').first.hover()
        legend = root.locator(f'.cnnx-ov-legend-div[data-neuron="relu_1_2/{index}"]')
        expect(legend).to_have_count(1, timeout=WAIT_MS)
        ticks = [_float(t) for t in legend.locator(".cnnx-legend-tick:visible").all_inner_texts()]
        assert _close(ticks[0], -own) and _close(ticks[-1], own), (ticks, own)
    finally:
        view.page.mouse.move(0, 0)
        set_policy(view, "unit")
