// Output (dense) neuron: how the flattened maps of the previous layer and this class's weights
// make its logit (Σ flatten[i]·W[k, i] + b[k], flatten in (h, w, c) order), the top
// contributions, and then the softmax: each class's logit, exp, their sum and its probability.

import { paintMap, safeExtent } from "../colors";
import { denseAt, dims, flattenIndex, getLayer, getValues, inputName, roundToSum, softmax, topContributions, fmt, channelMap, type DenseMath } from "../math";
import type { LayerSpec, Network } from "../payload";
import { el, figure, MapView } from "./dom";
import type { DetailContext, KindView, ViewEnv } from "./types";

const DIGITS = 4;
const TOP = 10;

/** A row-major strip of a flattened vector: one row per image row h, (w, c) across. */
class Strip {
  readonly root: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  readonly rows: number;
  readonly cols: number;
  private readonly marker: HTMLDivElement;
  private readonly cell: number;

  constructor(n: number, cols: number, label: string) {
    this.cols = cols;
    this.rows = Math.ceil(n / cols);
    this.cell = Math.max(1, Math.min(8, Math.floor(600 / cols)));
    this.canvas = el("canvas", { class: "cnnx-canvas", width: cols, height: this.rows, "aria-hidden": "true" });
    this.canvas.style.width = `${cols * this.cell}px`;
    this.canvas.style.height = `${this.rows * Math.max(this.cell, 3)}px`;
    this.marker = el("div", { class: "cnnx-window", "aria-hidden": "true" });
    this.marker.style.display = "none";
    this.root = el("div", { class: "cnnx-map cnnx-strip", role: "img", "aria-label": label }, this.canvas, this.marker);
  }

  draw(values: ArrayLike<number>, extent: number): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const img = ctx.createImageData(this.cols, this.rows);
    const tmp = new Uint8ClampedArray(values.length * 4);
    paintMap(values, tmp, "diverging", safeExtent(extent));
    img.data.set(tmp.subarray(0, Math.min(tmp.length, img.data.length)));
    ctx.putImageData(img, 0, 0);
  }

  indexAt(e: MouseEvent, n: number): number {
    const r = this.canvas.getBoundingClientRect();
    const y = Math.floor(((e.clientY - r.top) / r.height) * this.rows);
    const x = Math.floor(((e.clientX - r.left) / r.width) * this.cols);
    const i = y * this.cols + x;
    return i >= 0 && i < n && x >= 0 && x < this.cols ? i : -1;
  }

  mark(i: number): void {
    if (i < 0) {
      this.marker.style.display = "none";
      return;
    }
    const r = this.canvas.getBoundingClientRect();
    const cw = r.width / this.cols || this.cell;
    const ch = r.height / this.rows || this.cell;
    const s = this.marker.style;
    s.display = "block";
    s.left = `${(i % this.cols) * cw}px`;
    s.top = `${Math.floor(i / this.cols) * ch}px`;
    s.width = `${cw}px`;
    s.height = `${ch}px`;
  }
}

export class DenseView implements KindView {
  readonly root: HTMLElement;
  private readonly layer: LayerSpec;
  private readonly index: number;
  private readonly src: string;
  private readonly spatial: boolean;
  private readonly maps: MapView[] = [];
  private readonly strips: Strip[];
  private readonly info: HTMLElement;
  private readonly table: HTMLTableSectionElement;
  private readonly softBox: HTMLElement | null;
  private readonly softTable: HTMLTableSectionElement | null = null;
  private readonly softFormula: HTMLElement | null = null;
  private ctx: DetailContext;
  private math: DenseMath | null = null;
  private seq = -1;
  private scale = "";

  constructor(ctx: DetailContext, private env: ViewEnv) {
    this.ctx = ctx;
    const { network } = ctx;
    this.layer = getLayer(network, ctx.selection.layer);
    this.index = ctx.selection.index;
    this.src = inputName(network, this.layer.name);
    const srcVals = getValues(ctx.activations, this.src);
    this.spatial = srcVals.shape.length === 3;
    const d = dims(srcVals);
    const n = this.layer.input_shape[0];
    const isOutput = isOutputLayer(network, this.layer.name);
    const label = isOutput ? `“${network.classes[this.index] ?? this.index}”` : `neuron ${this.index}`;

    const mapsRow = el("div", { class: "cnnx-flat-maps" });
    if (this.spatial) {
      for (let c = 0; c < d.c; c++) {
        const m = new MapView({ h: d.h, w: d.w, size: 52, label: `${this.src} neuron ${c}` });
        this.maps.push(m);
        mapsRow.append(figure(`${c}`, m.root));
      }
    }
    const cols = this.spatial ? d.w * d.c : Math.min(n, 64);
    const what = this.spatial ? `row h of the maps is one row here: (w, c) across, channels fastest, so i = (h·${d.w} + w)·${d.c} + c` : "the previous layer's values";
    this.strips = [
      new Strip(n, cols, `flattened input, ${n} values; ${what}`),
      new Strip(n, cols, `weights of ${label}`),
      new Strip(n, cols, `products input × weight`),
    ];
    this.info = el("div", { class: "cnnx-flat-info", "aria-live": "polite" }, "Hover the strips to see where a value comes from.");
    for (const s of this.strips) {
      s.root.addEventListener("pointermove", (e) => this.hover(s.indexAt(e, n)));
      s.root.addEventListener("pointerleave", () => this.hover(-1));
    }
    const tableEl = el("table", { class: "cnnx-table" });
    tableEl.append(el("thead", {}, el("tr", {}, ...["i", "from", "input", "× weight", "= product"].map((t) => el("th", { scope: "col" }, t)))));
    this.table = el("tbody");
    tableEl.append(this.table);

    if (isOutput) {
      const soft = el("table", { class: "cnnx-table cnnx-soft" });
      soft.append(el("thead", {}, el("tr", {}, ...["class", "logit", "exp(logit)", "probability", ""].map((t) => el("th", { scope: "col" }, t)))));
      this.softTable = el("tbody");
      soft.append(this.softTable);
      this.softFormula = el("div", { class: "cnnx-formula cnnx-soft-formula", "aria-live": "polite" });
      this.softBox = el(
        "section",
        { class: "cnnx-section" },
        el("h4", {}, "2. Softmax: logits to probabilities"),
        el("p", { class: "cnnx-note" }, "p(class) = exp(logit) / Σ exp(all logits). Click a class to explain it."),
        this.softFormula,
        soft,
      );
    } else {
      this.softBox = null;
    }

    this.root = el(
      "div",
      { class: "cnnx-dense" },
      el(
        "section",
        { class: "cnnx-section" },
        el("h4", {}, `1. ${isOutput ? "Logit" : "Value"} of ${label}: Σ input[i] · W[i] + bias`),
        el("p", { class: "cnnx-note" }, this.spatial ? `The ${d.c} maps of ${this.src} (${d.h}×${d.w}) are flattened into ${n} values, in (h, w, c) order: ${what}.` : `${n} inputs from ${this.src}.`),
        mapsRow,
        el("div", { class: "cnnx-strips" }, figure("flattened input", this.strips[0].root), figure(`weights of ${label}`, this.strips[1].root), figure("input × weight", this.strips[2].root)),
        this.info,
        el("h5", {}, `Top ${Math.min(TOP, n)} contributions (largest |input × weight|)`),
        tableEl,
      ),
      this.softBox,
    );
    this.update(ctx);
  }

  update(ctx: DetailContext): void {
    this.ctx = ctx;
    if (ctx.activations.seq === this.seq && ctx.colorScale === this.scale && this.math) return;
    this.seq = ctx.activations.seq;
    this.scale = ctx.colorScale;
    const { network, activations } = ctx;
    const m = denseAt(network, activations, this.layer.name, this.index);
    this.math = m;
    const srcVals = getValues(activations, this.src);
    if (this.spatial) this.maps.forEach((mv, c) => mv.draw(channelMap(srcVals, c), "diverging", this.env.extent(ctx, this.src, c)));
    const absMax = (a: ArrayLike<number>) => {
      let x = 0;
      for (let i = 0; i < a.length; i++) x = Math.max(x, Math.abs(a[i]));
      return x;
    };
    this.strips[0].draw(m.inputs, absMax(m.inputs));
    this.strips[1].draw(m.weights, absMax(m.weights));
    this.strips[2].draw(m.products, absMax(m.products));

    const top = topContributions(m.products, TOP);
    let rest = 0;
    const inTop = new Set(top);
    for (let i = 0; i < m.products.length; i++) if (!inTop.has(i)) rest += m.products[i];
    const shown = roundToSum([...top.map((i) => m.products[i]), rest, m.bias], m.total, DIGITS);
    const d = dims(srcVals);
    const rows: HTMLElement[] = top.map((i, r) => {
      const from = this.spatial ? (() => { const p = flattenIndex(i, d); return `${this.src}[${p.c}] (h ${p.h}, w ${p.w})`; })() : `${this.src}[${i}]`;
      return el(
        "tr",
        { tabindex: 0, "aria-label": `input ${i} from ${from}` },
        el("td", {}, String(i)),
        el("td", {}, from),
        el("td", { title: String(m.inputs[i]) }, fmt(m.inputs[i], DIGITS)),
        el("td", { title: String(m.weights[i]) }, fmt(m.weights[i], DIGITS)),
        el("td", { title: String(m.products[i]), class: m.products[i] >= 0 ? "cnnx-pos-val" : "cnnx-neg-val" }, fmt(shown.parts[r], DIGITS)),
      );
    });
    rows.forEach((row, r) => {
      row.addEventListener("pointerenter", () => this.hover(top[r]));
      row.addEventListener("focus", () => this.hover(top[r]));
    });
    rows.push(
      el("tr", { class: "cnnx-rest" }, el("td", {}, "…"), el("td", { colspan: 3 }, `the other ${m.products.length - top.length} products, summed`), el("td", { title: String(rest) }, fmt(shown.parts[top.length], DIGITS))),
      el("tr", { class: "cnnx-rest" }, el("td", {}, ""), el("td", { colspan: 3 }, "bias"), el("td", { title: String(m.bias) }, fmt(shown.parts[top.length + 1], DIGITS))),
      el(
        "tr",
        { class: "cnnx-total" },
        el("td", {}, ""),
        el("td", { colspan: 3 }, isOutputLayer(network, this.layer.name) ? "logit (the sum of all the above)" : "value (the sum of all the above)"),
        el("td", { class: "cnnx-math-output", "data-value": String(m.total), "data-index": String(this.index), title: String(m.total) }, fmt(shown.total, DIGITS)),
      ),
    );
    this.table.replaceChildren(...rows);
    this.renderSoftmax();
  }

  private hover(i: number): void {
    for (const s of this.strips) s.mark(i);
    this.maps.forEach((mv) => mv.hideBox());
    if (i < 0 || !this.math) return;
    const m = this.math;
    let from = `${this.src}[${i}]`;
    if (this.spatial) {
      const d = dims(getValues(this.ctx.activations, this.src));
      const p = flattenIndex(i, d);
      from = `${this.src} neuron ${p.c} at (h ${p.h}, w ${p.w})`;
      this.maps[p.c]?.setBox(p.h, p.w, 1, 1);
    }
    this.info.textContent = `i = ${i}: ${from}; input ${fmt(m.inputs[i], DIGITS)} × weight ${fmt(m.weights[i], DIGITS)} = ${fmt(m.products[i], DIGITS)}`;
  }

  private renderSoftmax(): void {
    if (!this.softTable || !this.softFormula) return;
    const { network, activations } = this.ctx;
    const logits = getValues(activations, this.layer.name).values;
    const s = softmax(logits);
    const exps = roundToSum(s.exps, s.sum, DIGITS);
    const probs = roundToSum(s.probabilities, 1, DIGITS);
    const k = this.index;
    const shiftNote = s.shift ? ` (exp of logit − ${fmt(s.shift, 2)}, to stay finite)` : "";
    const rows = s.logits.map((l, j) => {
      const name = network.classes[j] ?? `class ${j}`;
      const btn = el("button", { type: "button", class: "cnnx-linkbtn", "aria-label": `explain output neuron ${j} (${name})`, "aria-pressed": j === k ? "true" : "false" }, name);
      btn.addEventListener("click", () => this.env.selectNeuron(this.layer.name, j));
      const bar = el("span", { class: "cnnx-bar" });
      bar.style.width = `${(s.probabilities[j] * 100).toFixed(1)}%`;
      return el(
        "tr",
        { class: j === k ? "cnnx-chosen" : "" },
        el("td", {}, btn),
        el("td", { title: String(l) }, fmt(l, DIGITS)),
        el("td", { title: String(s.exps[j]) }, fmt(exps.parts[j], DIGITS)),
        el("td", { title: String(s.probabilities[j]) }, fmt(probs.parts[j], DIGITS)),
        el("td", { class: "cnnx-barcell" }, bar),
      );
    });
    rows.push(el("tr", { class: "cnnx-total" }, el("td", {}, "sum"), el("td", {}, ""), el("td", { title: String(s.sum) }, fmt(exps.total, DIGITS)), el("td", {}, fmt(probs.total, DIGITS)), el("td", {})));
    this.softTable.replaceChildren(...rows);
    const name = network.classes[k] ?? `class ${k}`;
    this.softFormula.replaceChildren(
      el("span", {}, `p(${name}) = `),
      el("span", { class: "cnnx-frac" }, el("span", {}, `exp(${fmt(s.logits[k], DIGITS)})`), el("span", {}, `Σ exp(logits)${shiftNote}`)),
      el("span", {}, " = "),
      el("span", { class: "cnnx-frac" }, el("span", {}, fmt(exps.parts[k], DIGITS)), el("span", {}, fmt(exps.total, DIGITS))),
      el("span", {}, " = "),
      el("span", { class: "cnnx-val cnnx-prob", "data-value": String(s.probabilities[k]), title: String(s.probabilities[k]) }, fmt(s.probabilities[k], DIGITS)),
    );
  }

  move(dy: number, dx: number): boolean {
    const n = this.layer.output_shape[0];
    const j = this.index + (dy || dx);
    if (j >= 0 && j < n) this.env.selectNeuron(this.layer.name, j);
    return true;
  }

  destroy(): void {}
}

export function isOutputLayer(network: Network, name: string): boolean {
  const i = network.layers.findIndex((l) => l.name === name);
  let last = -1;
  network.layers.forEach((l, j) => {
    if (l.kind === "dense") last = j;
  });
  return i === last;
}
