"""The widget follows JupyterLab's theme: switched to JupyterLab Dark from the Settings menu, the
overview and an open detail view turn dark with light text (readable contrast), and switching
back to JupyterLab Light restores the light colours.

All waits are on DOM hooks (the widget's, and JupyterLab's ``data-jp-theme-name`` on ``body``).
"""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `chromium` fixture fails every test with the reason
    expect = None

from .cnnx_lab import ARTIFACTS, element_screenshot, wait_for

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
LIGHT, DARK = "JupyterLab Light", "JupyterLab Dark"

#: Computed text colour of the first element matching each selector inside ``root``, and the
#: background it is drawn on (the first non-transparent background among it and its ancestors).
COLOURS_JS = """(root, selectors) => {
  // rgb()/rgba() give 0-255; colours mixed with color-mix() come as color(srgb r g b / a), 0-1
  const rgba = (s) => { const m = s.match(/[\\d.]+/g) || []; const v = m.map(Number);
                        const k = s.startsWith('color(') ? 255 : 1;
                        return [(v[0] ?? 0) * k, (v[1] ?? 0) * k, (v[2] ?? 0) * k,
                                v.length > 3 ? v[3] : 1]; };
  const out = {};
  for (const sel of selectors) {
    const el = sel === ':root' ? root : root.querySelector(sel);
    if (!el) { out[sel] = null; continue; }
    let bg = null;
    for (let e = el; e && !bg; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0.5) bg = c;
    }
    out[sel] = {color: rgba(getComputedStyle(el).color), bg: bg || [255, 255, 255, 1]};
  }
  return out;
}"""

OVERVIEW_PARTS = [":root", ".cnnx-ov-col-name", ".cnnx-ov-col-shape", ".cnnx-legend-ticks"]
DETAIL_PARTS = [".cnnx-detail", ".cnnx-detail h4", ".cnnx-math-output", ".cnnx-facts"]


def luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 components)."""

    def lin(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg, bg) -> float:
    """WCAG contrast ratio of text ``fg`` (rgba, alpha blended over ``bg``) on ``bg``."""
    a = fg[3]
    text = [fg[i] * a + bg[i] * (1 - a) for i in range(3)]
    hi, lo = sorted((luminance(text), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def theme_name(page) -> str:
    return page.evaluate("document.body.dataset.jpThemeName || ''")


def set_theme(page, name: str) -> None:
    """Pick ``name`` in JupyterLab's Settings → Theme menu, as a user does."""
    if theme_name(page) == name:
        return
    page.locator(".lm-MenuBar-item", has_text="Settings").click()
    item = ".lm-Menu-item:has(> .lm-Menu-itemLabel:text-is('{}'))"
    page.locator(item.format("Theme")).click()  # opens the submenu
    page.locator(item.format(name)).click()
    wait_for(lambda: theme_name(page) == name, 20, what=f"theme {name}")
    # JupyterLab covers the page with its splash while it swaps the theme's CSS
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=WAIT_MS)
    light = "true" if name == LIGHT else "false"
    wait_for(
        lambda: page.evaluate("document.body.dataset.jpThemeLight") == light,
        20,
        what=f"theme {name} applied",
    )


def colours(root, parts):
    got = root.evaluate(COLOURS_JS, parts)
    missing = [p for p, v in got.items() if v is None]
    assert not missing, f"no element for {missing}"
    return got


def assert_theme(got, dark: bool, min_contrast: dict[str, float]) -> None:
    for part, c in got.items():
        bg, fg = luminance(c["bg"]), luminance(c["color"])
        if dark:
            assert bg < 0.1 and fg > 0.3, (part, c)
        else:
            assert bg > 0.6 and fg < 0.2, (part, c)
        ratio = contrast(c["color"], c["bg"])
        assert ratio >= min_contrast.get(part, 4.5), (part, round(ratio, 2), c)


#: Secondary text (shapes, legend numbers) may be dimmer; WCAG's large/secondary threshold.
SECONDARY = {".cnnx-ov-col-shape": 3.0, ".cnnx-legend-ticks": 3.0, ".cnnx-facts": 3.0}


def test_widget_follows_jupyterlab_dark_theme(view):
    k, root, page = view.kernel, view.root, view.page
    assert theme_name(page) == LIGHT
    light = colours(root, OVERVIEW_PARTS)
    assert_theme(light, dark=False, min_contrast=SECONDARY)
    try:
        set_theme(page, DARK)
        wait_for(
            lambda: luminance(colours(root, [":root"])[":root"]["bg"]) < 0.05,
            10,
            what="the widget's background to turn dark",
        )
        dark = colours(root, OVERVIEW_PARTS)
        assert_theme(dark, dark=True, min_contrast=SECONDARY)
        element_screenshot(page, root, ARTIFACTS / "theme-dark-overview.png")

        k.run("w.selected = {'layer': 'conv_1_1', 'index': 2, 'y': 5, 'x': 5}")
        detail = root.locator('.cnnx-detail[data-layer="conv_1_1"]')
        expect(detail).to_be_visible(timeout=WAIT_MS)
        expect(detail.locator(".cnnx-math-output")).to_have_attribute("data-x", "5")
        assert_theme(colours(root, DETAIL_PARTS), dark=True, min_contrast=SECONDARY)
        element_screenshot(page, detail, ARTIFACTS / "theme-dark-detail.png")
        k.run("w.selected = None")
        expect(root).to_have_attribute("data-detail", "", timeout=WAIT_MS)
    finally:
        set_theme(page, LIGHT)  # the rest of the suite expects the light theme
    wait_for(lambda: colours(root, OVERVIEW_PARTS) == light, 10, what="the light colours to return")
