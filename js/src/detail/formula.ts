// The formula cards, one per kind of neuron. Numbers are rounded so that the shown parts add up
// to the shown totals (`roundToSum`); hovering a number shows its full value; the element with
// class `cnnx-math-output` carries the exact value and position in data attributes.

import { divergingCss, formatValue, safeExtent, textColorOn, weightCss } from "../colors";
import {
  activationAt,
  activationFunction,
  convAt,
  denseAt,
  dilationOf,
  dims,
  flattenIndex,
  fmt,
  getLayer,
  getValues,
  groupChannels,
  inputName,
  poolAt,
  roundToSum,
  softmax,
  topContributions,
} from "../math";
import type { Activations, LayerSpec, Network } from "../payload";
import { channelName } from "../names";
import { h, svg } from "../ui/dom";
import type { Formula, FormulaOptions } from "./index";

function head(title: string, facts: string): HTMLElement[] {
  return [h("h4", { class: "cnnx-card-title" }, title), h("p", { class: "cnnx-facts" }, facts)];
}

function tint(el: HTMLElement, css: string): void {
  el.style.background = css;
  el.style.color = textColorOn(css);
}

function padText(p: [[number, number], [number, number]]): string {
  const [[t, b], [l, r]] = p;
  if (t + b + l + r === 0) return "no padding";
  if (t === b && l === r && t === l) return `padding ${t}`;
  return `padding ${t}/${b}/${l}/${r} (top/bottom/left/right)`;
}


// ---- convolution -------------------------------------------------------------------------------

interface Block {
  root: HTMLElement;
  cells: HTMLElement[];
  sum: HTMLElement;
}

export class ConvFormula implements Formula {
  readonly root: HTMLElement;
  private readonly layer: LayerSpec;
  private readonly src: string;
  /** The input channels this neuron reads (all, or its group's). */
  private readonly chans: number[];
  private readonly cin: number;
  private per: number;
  private page = 0;
  private readonly blocksEl: HTMLElement;
  private readonly pagerText: HTMLElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private blocks: Block[] = [];
  private readonly total: HTMLElement;
  private readonly pos: HTMLElement;
  private y = 0;
  private x = 0;

  constructor(
    private network: Network,
    private acts: Activations,
    private readonly o: FormulaOptions,
  ) {
    this.layer = getLayer(network, o.layer);
    this.src = inputName(network, o.layer);
    this.chans = groupChannels(this.layer, o.index);
    this.cin = this.chans.length;
    const [kh, kw] = this.layer.kernel_size!;
    const [sh, sw] = this.layer.stride!;
    const [dy, dx] = dilationOf(this.layer);
    const groups = this.layer.groups ?? 1;
    const extra =
      (dy > 1 || dx > 1 ? `, dilation ${dy === dx ? dy : `${dy}×${dx}`} (the kernel's taps are ${dy === dx ? dy : `${dy}×${dx}`} apart)` : "") +
      (groups > 1
        ? `; ${groups} groups: this neuron reads only ${this.cin === 1 ? `input channel ${this.chans[0]}` : `input channels ${this.chans[0]}–${this.chans[this.cin - 1]}`}${this.cin === 1 ? " (depthwise)" : ""}`
        : "");
    // A block is a kh-row grid of 3-line cells (~40 px a row) plus its label.
    const blockH = kh * 40 + 24;
    const across = Math.max(1, Math.floor((o.width - 24) / (kw * 48 + 110)));
    this.per = Math.max(1, Math.min(this.cin, Math.floor((o.maxHeight - 200) / blockH) * across));
    const local = this.chans.indexOf(o.channel);
    this.page = local >= 0 ? Math.floor(local / this.per) : 0;
    this.blocksEl = h("div", { class: "cnnx-card-blocks" });
    this.pagerText = h("span", {});
    this.prev = h("button", { type: "button", class: "cnnx-btn", "aria-label": "previous channels" }, "‹");
    this.next = h("button", { type: "button", class: "cnnx-btn", "aria-label": "next channels" }, "›");
    this.prev.addEventListener("click", () => this.turn(-1));
    this.next.addEventListener("click", () => this.turn(1));
    this.total = h("div", { class: "cnnx-math-total", role: "group", "aria-label": "channel sums plus bias equal the output" });
    this.pos = h("span", { class: "cnnx-pos" });
    // The explorer lives in the toolbar (it would not fit in this card): a link to it.
    const hyperLink = h("button", { type: "button", class: "cnnx-linkbtn cnnx-card-hyper", "aria-label": "open the hyperparameter explorer in the toolbar" }, "hyperparameters: padding, kernel size, stride ↑");
    hyperLink.addEventListener("click", (e) => {
      const btn = (e.currentTarget as HTMLElement).closest(".cnnx-root")?.querySelector<HTMLButtonElement>("button.cnnx-hyper-btn");
      if (btn && btn.getAttribute("aria-expanded") !== "true") btn.click();
      btn?.scrollIntoView?.({ block: "nearest" });
    });
    this.root = h(
      "div",
      { class: "cnnx-card cnnx-card-conv" },
      ...head(
        `${o.layer} neuron ${o.index}`,
        `${kh}×${kw} kernel, stride ${sh === sw ? sh : `${sh}×${sw}`}, ${padText(this.layer.padding!)}${extra}. Each input channel: window × kernel, summed.`,
      ),
      this.pos,
      this.cin > this.per ? h("div", { class: "cnnx-card-pager" }, this.prev, this.pagerText, this.next) : null,
      this.blocksEl,
      this.total,
      hyperLink,
    );
    this.build();
  }

  /** Fewer channels per page (the card did not fit); false when already one. */
  shrink(): boolean {
    if (this.per <= 1) return false;
    const first = this.page * this.per;
    this.per -= 1;
    this.page = Math.floor(first / this.per);
    this.build();
    this.show(this.y, this.x);
    return true;
  }

  private turn(d: number): void {
    const pages = Math.ceil(this.cin / this.per);
    const p = Math.max(0, Math.min(pages - 1, this.page + d));
    if (p === this.page) return;
    this.page = p;
    this.build();
    this.show(this.y, this.x);
  }

  focus(channel: number): void {
    const c = this.chans.indexOf(channel);
    if (c < 0) return;
    const p = Math.floor(c / this.per);
    if (p !== this.page) {
      this.page = p;
      this.build();
      this.show(this.y, this.x);
    }
    this.blocks.forEach((b, k) => b.root.classList.toggle("cnnx-focus", this.page * this.per + k === c));
  }

  private build(): void {
    const [kh, kw] = this.layer.kernel_size!;
    const a = this.page * this.per;
    const b = Math.min(this.cin, a + this.per);
    const ch = this.chans;
    this.pagerText.textContent = this.cin === this.layer.input_shape[2] ? `channels ${a}–${b - 1} of ${this.cin}` : `channels ${ch[a]}–${ch[b - 1]} (${b - a} of the group's ${this.cin})`;
    this.prev.disabled = this.page === 0;
    this.next.disabled = b >= this.cin;
    this.blocks = [];
    for (let k = a; k < b; k++) {
      const c = ch[k];
      const grid = h("div", { class: "cnnx-kgrid", role: "table", "aria-label": `window × kernel of ${channelName(this.network, this.src, c)}` });
      grid.style.gridTemplateColumns = `repeat(${kw}, auto)`;
      const cells: HTMLElement[] = [];
      for (let i = 0; i < kh * kw; i++) {
        const cell = h("span", { class: "cnnx-kcell", role: "cell" });
        cells.push(cell);
        grid.append(cell);
      }
      const sum = h("span", { class: "cnnx-sum" });
      const root = h(
        "div",
        { class: `cnnx-card-block${c === this.o.channel ? " cnnx-focus" : ""}`, "data-channel": String(c) },
        h("div", { class: "cnnx-math-label" }, channelName(this.network, this.src, c)),
        h("div", { class: "cnnx-math-row" }, h("span", { class: "cnnx-kkey", "aria-hidden": "true" }, h("span", {}, "w"), h("span", {}, "× x"), h("span", {}, "=")), grid, h("span", { class: "cnnx-op" }, "Σ ="), sum),
      );
      this.blocks.push({ root, cells, sum });
    }
    this.blocksEl.replaceChildren(...this.blocks.map((bl) => bl.root));
  }

  show(y: number, x: number): void {
    this.y = y;
    this.x = x;
    const m = convAt(this.network, this.acts, this.o.layer, this.o.index, y, x);
    const D = 3;
    const top = roundToSum([...m.channels.map((c) => c.sum), m.bias], m.total, D);
    let ke = 0;
    for (const c of m.channels) for (const v of c.kernel) ke = Math.max(ke, Math.abs(v));
    const p = m.place;
    const dy = p.dy ?? 1;
    const dx = p.dx ?? 1;
    const rows = dy > 1 ? `rows ${p.top}, ${p.top + dy}, … ${p.top + (p.kh - 1) * dy}` : `rows ${p.top}…${p.top + p.kh - 1}`;
    const columns = dx > 1 ? `columns ${p.left}, ${p.left + dx}, … ${p.left + (p.kw - 1) * dx}` : `columns ${p.left}…${p.left + p.kw - 1}`;
    this.pos.textContent = `output (${y}, ${x}) ← window ${rows}, ${columns}${m.channels[0].padded.some(Boolean) ? " (partly padding: 0)" : ""}`;
    const a = this.page * this.per;
    this.blocks.forEach((bl, k) => {
      const c = m.channels[a + k];
      const shown = roundToSum(c.products, top.parts[a + k], D);
      c.window.forEach((v, i) => {
        const cell = bl.cells[i];
        const w = h("span", { class: "cnnx-kw" }, fmt(c.kernel[i], D));
        tint(w, weightCss(c.kernel[i], safeExtent(ke)));
        cell.replaceChildren(w, h("span", { class: "cnnx-kx" }, c.padded[i] ? "pad 0" : fmt(v, D)), h("span", { class: "cnnx-kp" }, fmt(shown.parts[i], D)));
        cell.title = `weight ${c.kernel[i]} × input ${c.padded[i] ? "0 (padding)" : v} = ${c.products[i]}`;
        cell.classList.toggle("cnnx-pad", c.padded[i]);
      });
      bl.sum.textContent = fmt(top.parts[a + k], D);
      bl.sum.title = String(c.sum);
    });
    const terms: (Node | string)[] = [];
    m.channels.forEach((c, i) => {
      if (i > 0) terms.push(h("span", { class: "cnnx-op" }, "+"));
      const ci = c.channel;
      terms.push(h("span", { class: `cnnx-term${i >= a && i < a + this.per ? " cnnx-term-shown" : ""}`, title: `${channelName(this.network, this.src, ci)}: ${c.sum}` }, h("small", {}, this.src === "input" ? channelName(this.network, "input", ci) : `ch ${ci}`), fmt(top.parts[i], D)));
    });
    terms.push(h("span", { class: "cnnx-op" }, "+"), h("span", { class: "cnnx-term cnnx-term-bias", title: `bias: ${m.bias}` }, h("small", {}, "bias"), fmt(top.parts[m.channels.length], D)));
    const out = h(
      "span",
      { class: "cnnx-term cnnx-term-out" },
      h("small", {}, `output`),
      h("span", { class: "cnnx-math-output", "data-value": String(m.total), "data-y": String(y), "data-x": String(x), title: `${this.o.layer}[${this.o.index}] at (${y}, ${x}) = ${m.total}` }, fmt(top.total, D)),
    );
    this.total.replaceChildren(...terms, h("span", { class: "cnnx-op" }, "="), out);
  }

  update(network: Network, acts: Activations): void {
    this.network = network;
    this.acts = acts;
    this.show(this.y, this.x);
  }

  destroy(): void {}
}

// ---- activation --------------------------------------------------------------------------------

export class ActivationFormula implements Formula {
  readonly root: HTMLElement;
  private readonly layer: LayerSpec;
  private readonly eq: HTMLElement;
  private readonly plot: SVGSVGElement;
  private readonly curve: SVGPathElement;
  private readonly axes: SVGPathElement;
  private readonly dot: SVGCircleElement;
  private range: [number, number] = [-1, 1];
  private y = 0;
  private x = 0;

  constructor(
    private network: Network,
    private acts: Activations,
    private readonly o: FormulaOptions,
  ) {
    this.layer = getLayer(network, o.layer);
    this.eq = h("div", { class: "cnnx-formula cnnx-act-eq" });
    this.plot = svg("svg", { class: "cnnx-plot", viewBox: "0 0 200 120", role: "img", "aria-label": `plot of ${this.layer.function} over this map's input range` });
    this.axes = svg("path", { class: "cnnx-plot-axes" });
    this.curve = svg("path", { class: "cnnx-plot-curve" });
    this.dot = svg("circle", { r: 4, class: "cnnx-plot-dot" });
    this.plot.append(this.axes, this.curve, this.dot);
    this.root = h(
      "div",
      { class: "cnnx-card cnnx-card-act" },
      ...head(`${o.layer} neuron ${o.index}`, `${this.layer.function} is applied to each value on its own.`),
      h("div", { class: "cnnx-row" }, this.eq, this.plot),
    );
    this.drawCurve();
  }

  private drawCurve(): void {
    const src = getValues(this.acts, inputName(this.network, this.o.layer));
    const i = src.min.length > this.o.index ? this.o.index : 0;
    let lo = src.min[i] ?? -1;
    let hi = src.max[i] ?? 1;
    if (!(hi > lo)) [lo, hi] = [lo - 1, hi + 1];
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    this.range = [Math.min(lo, -0.25 * m), Math.max(hi, 0.25 * m)];
    const f = activationFunction(this.layer.function!, this.layer.options);
    const [ylo, yhi] = this.yRange();
    let d = "";
    for (let k = 0; k <= 100; k++) {
      const v = this.range[0] + ((this.range[1] - this.range[0]) * k) / 100;
      d += `${k ? "L" : "M"}${this.sx(v).toFixed(1)},${this.sy(f(v), ylo, yhi).toFixed(1)}`;
    }
    this.curve.setAttribute("d", d);
    this.axes.setAttribute("d", `M10,${this.sy(0, ylo, yhi)}H190M${this.sx(0)},8V112`);
  }

  private yRange(): [number, number] {
    const f = activationFunction(this.layer.function!, this.layer.options);
    let lo = 0;
    let hi = 0;
    for (let k = 0; k <= 100; k++) {
      const v = f(this.range[0] + ((this.range[1] - this.range[0]) * k) / 100);
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
  }

  private sx(v: number): number {
    return 10 + ((v - this.range[0]) / (this.range[1] - this.range[0])) * 180;
  }

  private sy(v: number, lo: number, hi: number): number {
    return 112 - ((v - lo) / (hi - lo)) * 104;
  }

  show(y: number, x: number): void {
    this.y = y;
    this.x = x;
    const spatial = this.layer.output_shape.length === 3;
    const m = spatial ? activationAt(this.network, this.acts, this.o.layer, this.o.index, y, x) : null;
    const input = m ? m.input : getValues(this.acts, inputName(this.network, this.o.layer)).values[this.o.index];
    const f = activationFunction(this.layer.function!, this.layer.options);
    const output = m ? m.output : f(input);
    const [lo, hi] = this.yRange();
    this.dot.setAttribute("cx", String(this.sx(input)));
    this.dot.setAttribute("cy", String(this.sy(output, lo, hi)));
    const name = this.layer.function!;
    this.eq.replaceChildren(
      h("div", { class: "cnnx-eq-def" }, m ? `${name}(x) = ${m.formula}` : name),
      h("div", { class: "cnnx-eq-pos" }, spatial ? `at (${y}, ${x}):` : ""),
      h(
        "div",
        { class: "cnnx-eq-val" },
        `${name}(`,
        h("span", { class: "cnnx-val", title: String(input) }, fmt(input, 4)),
        ")",
        name === "relu" ? ` = max(0, ${fmt(input, 4)})` : "",
        " = ",
        h("span", { class: "cnnx-val cnnx-act-out cnnx-math-output", "data-value": String(output), "data-y": String(y), "data-x": String(x), title: String(output) }, fmt(output, 4)),
      ),
    );
  }

  update(network: Network, acts: Activations): void {
    this.network = network;
    this.acts = acts;
    this.drawCurve();
    this.show(this.y, this.x);
  }

  destroy(): void {}
}

// ---- pooling -----------------------------------------------------------------------------------

export class PoolFormula implements Formula {
  readonly root: HTMLElement;
  private readonly layer: LayerSpec;
  private readonly grid: HTMLElement;
  private readonly cells: HTMLElement[] = [];
  private readonly result: HTMLElement;
  private readonly detail: HTMLElement;
  private readonly pos: HTMLElement;
  private y = 0;
  private x = 0;

  constructor(
    private network: Network,
    private acts: Activations,
    private readonly o: FormulaOptions,
  ) {
    this.layer = getLayer(network, o.layer);
    const [kh, kw] = this.layer.kernel_size!;
    const [sh, sw] = this.layer.stride!;
    this.grid = h("div", { class: "cnnx-grid", role: "table", "aria-label": "values under the window" });
    this.grid.style.gridTemplateColumns = `repeat(${kw}, auto)`;
    for (let i = 0; i < kh * kw; i++) {
      const c = h("span", { class: "cnnx-cell", role: "cell" });
      this.cells.push(c);
      this.grid.append(c);
    }
    this.result = h("span", { class: "cnnx-pool-out cnnx-math-output" });
    this.detail = h("p", { class: "cnnx-pool-detail" });
    this.pos = h("span", { class: "cnnx-pos" });
    const op = this.layer.function === "avg" ? "mean" : "max";
    this.root = h(
      "div",
      { class: "cnnx-card cnnx-card-pool" },
      ...head(`${o.layer} neuron ${o.index}`, `${op === "max" ? "Max" : "Average"} pooling: a ${kh}×${kw} window, stride ${sh === sw ? sh : `${sh}×${sw}`}, ${padText(this.layer.padding!)}.`),
      this.pos,
      h("div", { class: "cnnx-math-row" }, h("span", { class: "cnnx-op" }, `${op}(`), this.grid, h("span", { class: "cnnx-op" }, ") ="), this.result),
      this.detail,
    );
  }

  show(y: number, x: number): void {
    this.y = y;
    this.x = x;
    const m = poolAt(this.network, this.acts, this.o.layer, this.o.index, y, x);
    const e = safeExtent(this.o.extent(inputName(this.network, this.o.layer), this.o.index));
    m.window.forEach((v, i) => {
      const c = this.cells[i];
      c.textContent = m.padded[i] ? "pad" : fmt(v, 3);
      c.title = m.padded[i] ? "padding (not counted)" : String(v);
      c.classList.toggle("cnnx-pad", m.padded[i]);
      c.classList.toggle("cnnx-hl", m.argmax === i);
      if (!m.padded[i]) tint(c, divergingCss(v, e));
      else c.style.background = c.style.color = "";
    });
    this.result.textContent = fmt(m.result, 4);
    Object.assign(this.result.dataset, { value: String(m.result), y: String(y), x: String(x) });
    this.result.title = String(m.result);
    const p = m.place;
    this.pos.textContent = `output (${y}, ${x}) ← window rows ${p.top}…${p.top + p.kh - 1}, columns ${p.left}…${p.left + p.kw - 1}`;
    const nPad = m.padded.filter(Boolean).length;
    this.detail.textContent =
      m.op === "max"
        ? nPad
          ? `${nPad} padded cell${nPad > 1 ? "s are" : " is"} ignored; the max of the other ${m.count}.`
          : "The outlined cell is the largest."
        : `mean = ${fmt(m.sum, 4)} / ${m.count} = ${fmt(m.result, 4)}${nPad ? (m.countIncludePad ? ` (${nPad} padded cells count as 0)` : ` (${nPad} padded cells not counted)`) : ""}`;
  }

  update(network: Network, acts: Activations): void {
    this.network = network;
    this.acts = acts;
    this.show(this.y, this.x);
  }

  destroy(): void {}
}

// ---- input -------------------------------------------------------------------------------------

export class InputFormula implements Formula {
  readonly root: HTMLElement;
  private readonly info: HTMLElement;
  private readonly swatch: HTMLElement;

  constructor(
    private network: Network,
    private acts: Activations,
    private readonly o: FormulaOptions,
  ) {
    const C = network.inputShape[2];
    this.info = h("div", { class: "cnnx-input-info" });
    this.swatch = h("span", { class: "cnnx-swatch", "aria-hidden": "true" });
    this.root = h(
      "div",
      { class: "cnnx-card cnnx-card-input" },
      ...head(`input: ${channelName(network, "input", o.index)}`, `Each pixel has ${C === 3 ? "a Red, a Green and a Blue value" : "one value"} in [0, 1] (0 black, 1 full ${C === 3 ? "colour" : "white"}).`),
      h("div", { class: "cnnx-row" }, this.swatch, this.info),
    );
  }

  show(y: number, x: number): void {
    const v = getValues(this.acts, "input");
    const d = dims(v);
    const vals = Array.from({ length: d.c }, (_, c) => v.values[(c * d.h + y) * d.w + x]);
    const b = (t: number) => Math.round(Math.min(1, Math.max(0, t)) * 255);
    const rgb = d.c === 3 ? vals.map(b) : [b(vals[0]), b(vals[0]), b(vals[0])];
    this.swatch.style.background = `rgb(${rgb.join(",")})`;
    const own = vals[this.o.index];
    this.info.replaceChildren(
      h("div", {}, `pixel (${y}, ${x})`),
      h("div", {}, `${d.c === 3 ? channelName(this.network, "input", this.o.index) : "value"} = `, h("span", { class: "cnnx-val cnnx-input-value cnnx-math-output", "data-value": String(own), "data-y": String(y), "data-x": String(x), title: String(own) }, fmt(own, 4))),
      h("div", {}, d.c === 3 ? `RGB = (${vals.map((t) => fmt(t, 3)).join(", ")}) = (${rgb.join(", ")}) / 255` : ""),
    );
  }

  update(network: Network, acts: Activations): void {
    this.network = network;
    this.acts = acts;
  }

  destroy(): void {}
}

// ---- dense and output --------------------------------------------------------------------------

export class DenseFormula implements Formula {
  readonly root: HTMLElement;
  private readonly layer: LayerSpec;
  private readonly src: string;
  private readonly table: HTMLTableSectionElement;
  private readonly soft: HTMLElement | null;
  private terms: HTMLElement[] = [];
  private top: number;

  constructor(
    private network: Network,
    private acts: Activations,
    private readonly o: FormulaOptions,
    private readonly output: boolean,
  ) {
    this.layer = getLayer(network, o.layer);
    this.src = inputName(network, o.layer);
    const n = this.layer.input_shape[0];
    const name = output ? `“${network.classes[o.index] ?? o.index}”` : `neuron ${o.index}`;
    // Rows of the contributions table that fit beside the softmax formula.
    this.top = Math.max(3, Math.min(8, Math.floor((o.maxHeight - (output ? 330 : 170)) / 22)));
    const t = h("table", { class: "cnnx-table" });
    t.append(h("thead", {}, h("tr", {}, ...["from", "input", "× weight", "= product"].map((s) => h("th", { scope: "col" }, s)))));
    this.table = h("tbody");
    t.append(this.table);
    this.soft = output ? h("div", { class: "cnnx-soft-formula", role: "group", "aria-label": "softmax" }) : null;
    this.root = h(
      "div",
      { class: "cnnx-card cnnx-card-dense" },
      ...head(`${output ? "logit" : "value"} of ${name}`, `Σ of ${n} inputs × their weights, + bias; the largest |products| first.`),
      t,
      output ? h("h4", { class: "cnnx-card-title" }, "softmax: logits to probabilities") : null,
      this.soft,
    );
    this.render();
  }

  private render(): void {
    const m = denseAt(this.network, this.acts, this.o.layer, this.o.index);
    const D = 4;
    const top = topContributions(m.products, this.top);
    const inTop = new Set(top);
    let rest = 0;
    for (let i = 0; i < m.products.length; i++) if (!inTop.has(i)) rest += m.products[i];
    const shown = roundToSum([...top.map((i) => m.products[i]), rest, m.bias], m.total, D);
    const srcV = getValues(this.acts, this.src);
    const spatial = srcV.shape.length === 3;
    const d = dims(srcV);
    const we = Math.max(...Array.from(m.weights, Math.abs));
    const rows: HTMLElement[] = top.map((i, r) => {
      const p = spatial ? flattenIndex(i, d) : null;
      const w = h("td", { title: String(m.weights[i]) }, fmt(m.weights[i], D));
      tint(w, weightCss(m.weights[i], safeExtent(we)));
      return h(
        "tr",
        {},
        h("td", { title: `flatten[${i}]` }, p ? `ch ${p.c} (${p.h}, ${p.w})` : `${this.src}[${i}]`),
        h("td", { title: String(m.inputs[i]) }, fmt(m.inputs[i], D)),
        w,
        h("td", { title: String(m.products[i]) }, fmt(shown.parts[r], D)),
      );
    });
    rows.push(
      h("tr", { class: "cnnx-rest" }, h("td", { colspan: 3 }, `the other ${m.products.length - top.length}, summed`), h("td", { title: String(rest) }, fmt(shown.parts[top.length], D))),
      h("tr", { class: "cnnx-rest" }, h("td", { colspan: 3 }, "bias"), h("td", { title: String(m.bias) }, fmt(shown.parts[top.length + 1], D))),
      h(
        "tr",
        { class: "cnnx-total" },
        h("td", { colspan: 3 }, this.output ? "logit" : "value"),
        h("td", { class: "cnnx-math-output", "data-value": String(m.total), "data-index": String(this.o.index), title: String(m.total) }, fmt(shown.total, D)),
      ),
    );
    this.table.replaceChildren(...rows);
    if (this.soft) this.renderSoftmax();
  }

  private renderSoftmax(): void {
    const logits = getValues(this.acts, this.o.layer).values;
    const s = softmax(logits);
    const k = this.o.index;
    const le = Math.max(...Array.from(logits, Math.abs));
    const term = (j: number) => {
      const el = h("span", { class: "cnnx-soft-term", tabindex: 0, "data-index": String(j), title: `${this.network.classes[j] ?? j}: logit ${s.logits[j]}` }, "exp(", h("span", { class: "cnnx-soft-logit" }, fmt(s.logits[j], 2)), ")");
      tint(el.querySelector(".cnnx-soft-logit") as HTMLElement, divergingCss(s.logits[j], safeExtent(le)));
      el.addEventListener("pointerenter", () => this.o.hover(j));
      el.addEventListener("pointerleave", () => this.o.hover(null));
      el.addEventListener("focus", () => this.o.hover(j));
      el.addEventListener("blur", () => this.o.hover(null));
      el.addEventListener("click", () => {
        if (j !== k) this.o.select(this.o.layer, j);
      });
      return el;
    };
    this.terms = s.logits.map((_, j) => term(j));
    const numerator = term(k);
    const den = h("span", { class: "cnnx-soft-den" });
    this.terms.forEach((t, j) => {
      if (j > 0) den.append(" + ");
      den.append(t);
    });
    const name = this.network.classes[k] ?? `class ${k}`;
    this.soft!.replaceChildren(
      h("span", {}, `p(${name}) =`),
      h("span", { class: "cnnx-frac" }, numerator, den),
      h("span", {}, "="),
      h("span", { class: "cnnx-val cnnx-prob", "data-value": String(s.probabilities[k]), title: String(s.probabilities[k]) }, fmt(s.probabilities[k], 4)),
      h("small", {}, s.shift ? ` (computed as exp(logit − ${fmt(s.shift, 2)}) to stay finite)` : ""),
    );
    this.terms.push(numerator);
  }

  /** Fewer contribution rows (the card did not fit). */
  shrink(): boolean {
    if (this.top <= 2) return false;
    this.top -= 1;
    this.render();
    return true;
  }

  highlight(i: number | null): void {
    for (const t of this.terms) t.classList.toggle("cnnx-hot", i !== null && t.dataset.index === String(i));
  }

  show(): void {}

  update(network: Network, acts: Activations): void {
    this.network = network;
    this.acts = acts;
    this.render();
  }

  destroy(): void {}
}

export { formatValue };
