// Activation (ReLU etc.) neuron: the input map, the output map, and f(x) at the chosen position,
// with a plot of the function over this map's input range.

import { activationAt, activationFunction, channelMap, getLayer, getValues, inputName, fmt } from "../math";
import type { LayerSpec } from "../payload";
import { el, figure, MapView } from "./dom";
import { clamp } from "./conv";
import type { DetailContext, KindView, ViewEnv } from "./types";

const SVG = "http://www.w3.org/2000/svg";

export class ActivationView implements KindView {
  readonly root: HTMLElement;
  private readonly layer: LayerSpec;
  private readonly index: number;
  private readonly input: MapView;
  private readonly output: MapView;
  private readonly eq: HTMLElement;
  private readonly plot: SVGSVGElement;
  private readonly curve: SVGPathElement;
  private readonly dot: SVGCircleElement;
  private readonly axes: SVGPathElement;
  private ctx: DetailContext;
  private y = 0;
  private x = 0;
  private seq = -1;
  private scale = "";
  private range: [number, number] = [-1, 1];

  constructor(ctx: DetailContext, private env: ViewEnv) {
    this.ctx = ctx;
    this.layer = getLayer(ctx.network, ctx.selection.layer);
    this.index = ctx.selection.index;
    const [h, w] = this.layer.output_shape;
    const src = inputName(ctx.network, this.layer.name);
    this.input = new MapView({ h, w, size: 176, label: `${src} neuron ${this.index}, the input; arrow keys move the position` });
    this.output = new MapView({ h, w, size: 176, label: `${this.layer.name} neuron ${this.index}, the output; arrow keys move the position` });
    for (const m of [this.input, this.output]) {
      m.root.tabIndex = 0;
      m.root.addEventListener("pointermove", (e) => this.point(m, e, false));
      m.root.addEventListener("click", (e) => this.point(m, e, true));
    }
    this.eq = el("div", { class: "cnnx-formula cnnx-act-eq", "aria-live": "polite" });
    this.plot = document.createElementNS(SVG, "svg");
    this.plot.setAttribute("viewBox", "0 0 200 140");
    this.plot.setAttribute("class", "cnnx-plot");
    this.plot.setAttribute("role", "img");
    this.plot.setAttribute("aria-label", `plot of ${this.layer.function} over this map's input range`);
    this.axes = document.createElementNS(SVG, "path");
    this.axes.setAttribute("class", "cnnx-plot-axes");
    this.curve = document.createElementNS(SVG, "path");
    this.curve.setAttribute("class", "cnnx-plot-curve");
    this.dot = document.createElementNS(SVG, "circle");
    this.dot.setAttribute("r", "4");
    this.dot.setAttribute("class", "cnnx-plot-dot");
    this.plot.append(this.axes, this.curve, this.dot);
    this.root = el(
      "div",
      { class: "cnnx-act" },
      el("p", { class: "cnnx-facts" }, `${this.layer.function} is applied to every value of the map on its own. Hover or click a map, or use the arrow keys.`),
      el(
        "div",
        { class: "cnnx-row" },
        figure(`input: ${src} neuron ${this.index}`, this.input.root),
        el("div", { class: "cnnx-act-mid" }, this.eq, this.plot),
        figure(`output: ${this.layer.name} neuron ${this.index}`, this.output.root),
      ),
    );
    this.update(ctx);
  }

  private point(m: MapView, e: MouseEvent, now: boolean): void {
    const [h, w] = this.layer.output_shape;
    const [y, x] = m.cellAt(e);
    this.setPos(clamp(y, 0, h - 1), clamp(x, 0, w - 1), now);
  }

  private setPos(y: number, x: number, now: boolean): void {
    if (!now && y === this.y && x === this.x) return;
    this.y = y;
    this.x = x;
    this.render();
    this.env.report(y, x, now);
  }

  move(dy: number, dx: number): boolean {
    const [h, w] = this.layer.output_shape;
    this.setPos(clamp(this.y + dy, 0, h - 1), clamp(this.x + dx, 0, w - 1), true);
    return true;
  }

  update(ctx: DetailContext): void {
    this.ctx = ctx;
    const { activations, network, selection } = ctx;
    if (activations.seq !== this.seq || ctx.colorScale !== this.scale) {
      this.seq = activations.seq;
      this.scale = ctx.colorScale;
      const src = inputName(network, this.layer.name);
      const inV = getValues(activations, src);
      this.input.draw(channelMap(inV, this.index), "diverging", this.env.extent(ctx, src, this.index));
      this.output.draw(channelMap(getValues(activations, this.layer.name), this.index), "diverging", this.env.extent(ctx, this.layer.name, this.index));
      let lo = inV.min[this.index] ?? -1;
      let hi = inV.max[this.index] ?? 1;
      if (!(hi > lo)) [lo, hi] = [lo - 1, hi + 1];
      const m = Math.max(Math.abs(lo), Math.abs(hi));
      this.range = [Math.min(lo, -0.25 * m), Math.max(hi, 0.25 * m)];
      this.drawCurve();
    }
    const [h, w] = this.layer.output_shape;
    this.y = clamp(selection.y ?? this.y, 0, h - 1);
    this.x = clamp(selection.x ?? this.x, 0, w - 1);
    this.render();
  }

  private sx(v: number): number {
    const [lo, hi] = this.range;
    return 10 + ((v - lo) / (hi - lo)) * 180;
  }

  private yRange(): [number, number] {
    const f = activationFunction(this.layer.function!, this.layer.options);
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i <= 100; i++) {
      const v = f(this.range[0] + ((this.range[1] - this.range[0]) * i) / 100);
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
    return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
  }

  private sy(v: number, yr: [number, number]): number {
    return 130 - ((v - yr[0]) / (yr[1] - yr[0])) * 120;
  }

  private drawCurve(): void {
    const f = activationFunction(this.layer.function!, this.layer.options);
    const yr = this.yRange();
    let d = "";
    for (let i = 0; i <= 100; i++) {
      const v = this.range[0] + ((this.range[1] - this.range[0]) * i) / 100;
      d += `${i ? "L" : "M"}${this.sx(v).toFixed(1)},${this.sy(f(v), yr).toFixed(1)}`;
    }
    this.curve.setAttribute("d", d);
    const x0 = this.sx(0);
    const y0 = this.sy(0, yr);
    this.axes.setAttribute("d", `M10,${y0}H190M${x0},10V130`);
  }

  private render(): void {
    const m = activationAt(this.ctx.network, this.ctx.activations, this.layer.name, this.index, this.y, this.x);
    const yr = this.yRange();
    this.dot.setAttribute("cx", String(this.sx(m.input)));
    this.dot.setAttribute("cy", String(this.sy(m.output, yr)));
    this.input.setBox(this.y, this.x, 1, 1);
    this.output.setBox(this.y, this.x, 1, 1);
    const name = m.function;
    const body = name === "relu" ? `max(0, ${fmt(m.input, 4)})` : m.formula.replace(/x/g, "x");
    this.eq.replaceChildren(
      el("div", { class: "cnnx-eq-def" }, `${name}(x) = ${m.formula}`),
      el("div", { class: "cnnx-eq-pos" }, `at (y ${this.y}, x ${this.x}):`),
      el(
        "div",
        { class: "cnnx-eq-val" },
        `${name}(`,
        el("span", { class: "cnnx-val", title: String(m.input) }, fmt(m.input, 4)),
        ")",
        name === "relu" ? ` = ${body}` : "",
        " = ",
        el("span", { class: "cnnx-val cnnx-act-out", "data-value": String(m.output), title: String(m.output) }, fmt(m.output, 4)),
      ),
    );
  }

  destroy(): void {}
}
