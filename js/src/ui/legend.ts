// A colour legend: a gradient bar with numeric ticks under it, for activations (RdBu), weights
// and biases (BrBG), the input's grey scale and probabilities. Reused by the overview and the
// explanation views:
//
//   const lg = new LegendView({ kind: "activations", ticks: [-2, 0, 2] });
//   parent.append(lg.el);
//   lg.update({ kind: "weights", ticks: legendTicks(absMaxOf(kernel), 3), caption: "kernel" });
//   lg.fit(width);  // drop inner ticks whose labels would not fit in `width` px
//
// Tick labels never overlap: the first is left-aligned, the last right-aligned, the inner ones
// centred, and inner ticks are dropped (never the end ones) when their labels would touch.

import { ACTIVATION_PALETTE, WEIGHT_PALETTE, divergingGradientCss, formatValue, greyGradientCss } from "../colors";
import { h } from "./dom";

export type LegendKind = "activations" | "weights" | "grey" | "probability";

export interface LegendSpec {
  kind: LegendKind;
  /** Tick values, ascending; the bar spans ticks[0] … ticks[last]. */
  ticks: number[];
  /** Optional small marks on the bar (e.g. the true min and max when the scale is wider). */
  marks?: number[];
  /** Optional text under the ticks (e.g. "conv_1_1 … max_pool_1"). */
  caption?: string;
  /** Optional tooltip for the whole legend. */
  title?: string;
}

/** Average advance of a digit, sign or point at the legend font (11 px), in px, plus padding. */
const CHAR_PX = 6.4;
const GAP_PX = 6;

function gradientOf(kind: LegendKind): string {
  if (kind === "activations") return divergingGradientCss(ACTIVATION_PALETTE);
  if (kind === "weights") return divergingGradientCss(WEIGHT_PALETTE);
  if (kind === "grey") return greyGradientCss();
  return "";
}

/**
 * Which ticks to show in `width` px: both ends always, inner ones only where their labels
 * (estimated from their length) leave a gap to their shown neighbours.
 */
export function visibleTicks(ticks: number[], labels: string[], width: number): boolean[] {
  const n = ticks.length;
  const show = ticks.map(() => true);
  if (n <= 2 || !(width > 0)) return show;
  const lo = ticks[0];
  const span = ticks[n - 1] - lo || 1;
  const box = (i: number): [number, number] => {
    const w = labels[i].length * CHAR_PX;
    const x = ((ticks[i] - lo) / span) * width;
    if (i === 0) return [x, x + w];
    if (i === n - 1) return [x - w, x];
    return [x - w / 2, x + w / 2];
  };
  const fits = () => {
    let prev: [number, number] | null = null;
    for (let i = 0; i < n; i++) {
      if (!show[i]) continue;
      const b = box(i);
      if (prev && b[0] < prev[1] + GAP_PX) return false;
      prev = b;
    }
    return true;
  };
  // Drop inner ticks in rounds: first every other one (keeping the middle), then all of them.
  const mid = (n - 1) / 2;
  if (!fits()) for (let i = 1; i < n - 1; i++) if (i !== mid) show[i] = false;
  if (!fits()) for (let i = 1; i < n - 1; i++) show[i] = false;
  return show;
}

export class LegendView {
  readonly el: HTMLDivElement;
  private readonly bar: HTMLDivElement;
  private readonly tickRow: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  private spec: LegendSpec;
  private width = 0;

  constructor(spec: LegendSpec, extraClass = "") {
    this.bar = h("div", { class: "cnnx-legend-bar" });
    this.tickRow = h("div", { class: "cnnx-legend-ticks" });
    this.caption = h("div", { class: "cnnx-legend-caption" });
    this.el = h("div", { class: `cnnx-legend ${extraClass}`.trim() }, this.bar, this.tickRow, this.caption);
    this.spec = spec;
    this.update(spec);
  }

  /** Redraw for new numbers (same element). */
  update(spec: LegendSpec): void {
    this.spec = spec;
    const { kind, ticks } = spec;
    this.el.dataset.kind = kind;
    this.el.dataset.palette = kind === "activations" ? ACTIVATION_PALETTE.name : kind === "weights" ? WEIGHT_PALETTE.name : kind;
    this.el.dataset.ticks = JSON.stringify(ticks);
    this.el.title = spec.title ?? "";
    const g = gradientOf(kind);
    this.bar.style.background = g;
    this.bar.classList.toggle("cnnx-legend-bar-prob", kind === "probability");
    const lo = ticks[0] ?? 0;
    const span = (ticks[ticks.length - 1] ?? 1) - lo || 1;
    const pct = (v: number) => `${(Math.max(0, Math.min(1, (v - lo) / span)) * 100).toFixed(3)}%`;
    const marks = (spec.marks ?? []).filter(Number.isFinite).map((m) => {
      const el = h("div", { class: "cnnx-legend-mark" });
      el.style.left = pct(m);
      return el;
    });
    this.bar.replaceChildren(...marks);
    const spans = ticks.map((t, i) => {
      const cls = i === 0 ? "cnnx-legend-tick cnnx-legend-tick-first" : i === ticks.length - 1 ? "cnnx-legend-tick cnnx-legend-tick-last" : "cnnx-legend-tick";
      const el = h("span", { class: cls, "data-value": String(t) }, formatValue(t));
      el.style.left = pct(t);
      return el;
    });
    this.tickRow.replaceChildren(...spans);
    this.caption.textContent = spec.caption ?? "";
    this.caption.hidden = !spec.caption;
    if (this.width) this.fit(this.width);
  }

  /** Narrowest width (px) at which the two end labels still fit side by side. */
  minWidth(): number {
    const t = this.spec.ticks;
    if (t.length < 2) return 0;
    return Math.ceil((formatValue(t[0]).length + formatValue(t[t.length - 1]).length) * CHAR_PX + 2 * GAP_PX);
  }

  /** Fit the ticks to `width` px (the legend's own width): hide inner ones that would touch. */
  fit(width: number): void {
    this.width = width;
    const spans = [...this.tickRow.children] as HTMLElement[];
    const show = visibleTicks(
      this.spec.ticks,
      spans.map((s) => s.textContent ?? ""),
      width,
    );
    spans.forEach((s, i) => {
      s.hidden = !show[i];
    });
  }
}
