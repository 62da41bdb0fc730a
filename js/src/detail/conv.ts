// Convolution neuron: every input channel, its kernel slice and the intermediate map of the two
// convolved (before bias); their sum plus the bias is the neuron's map (after bias). A kh×kw
// window slides over the inputs; the math view shows the window's numbers, the kernel's, their
// products, each channel's sum, the bias and the total, rounded so the shown numbers add up.

import { channelMap, convAt, convIntermediate, dims, getLayer, getValues, inputName, kernelSlice, roundToSum, fmt, type ConvMath } from "../math";
import type { LayerSpec } from "../payload";
import { el, figure, isUnitRange, MapView, NumberGrid, Stepper, type Pad } from "./dom";
import { HyperExplorer } from "./hyper";
import type { DetailContext, KindView, ViewEnv } from "./types";

const DIGITS = 4;

interface ChannelRow {
  input: MapView;
  kernelMini: NumberGrid;
  kernelFull: NumberGrid;
  inter: MapView;
  math: {
    block: HTMLElement;
    window: NumberGrid;
    kernel: NumberGrid;
    products: NumberGrid;
    sum: HTMLElement;
  };
}

export class ConvView implements KindView {
  readonly root: HTMLElement;
  private layer: LayerSpec;
  private readonly index: number;
  private readonly rows: ChannelRow[] = [];
  private readonly output: MapView;
  private readonly stepper: Stepper;
  private readonly sumLine: HTMLElement;
  private readonly outputEl: HTMLElement;
  private readonly posLabel: HTMLElement;
  private readonly biasEl: HTMLElement;
  private hyper: HyperExplorer | null = null;
  private ctx: DetailContext;
  private y = 0;
  private x = 0;
  private seq = -1;
  private scale = "";

  constructor(ctx: DetailContext, private env: ViewEnv) {
    this.ctx = ctx;
    const { network, selection } = ctx;
    this.layer = getLayer(network, selection.layer);
    this.index = selection.index;
    const layer = this.layer;
    const [h, w, cin] = layer.input_shape;
    const [oh, ow] = layer.output_shape;
    const [kh, kw] = layer.kernel_size!;
    const pad = layer.padding as Pad;
    const src = inputName(network, layer.name);
    const mapSize = cin <= 3 ? 112 : 80;

    const flow = el("div", { class: "cnnx-conv-flow", role: "group", "aria-label": "input channels, kernels and intermediate results" });
    flow.append(
      el("div", { class: "cnnx-flow-head" }, src === "input" ? "input channels" : `input: ${src}`),
      el("div", { class: "cnnx-flow-head" }, "kernel"),
      el("div", { class: "cnnx-flow-head" }, "intermediate (before bias)"),
    );
    for (let c = 0; c < cin; c++) {
      const input = new MapView({ h, w, pad, size: mapSize, label: `${src} channel ${c}${hasPad(pad) ? " with its zero padding" : ""}; arrow keys move the window` });
      const kernelMini = new NumberGrid(kh, kw, `kernel for input channel ${c}`, "cnnx-kernel-mini");
      const kernelFull = new NumberGrid(kh, kw, `kernel weights for input channel ${c}`, "cnnx-kernel-full");
      const kernelBox = el("div", { class: "cnnx-kernel", tabindex: 0, "aria-label": `kernel for input channel ${c}, ${kh}×${kw}; focus or hover to see its weights` }, kernelMini.root, kernelFull.root);
      const inter = new MapView({ h: oh, w: ow, size: mapSize, label: `intermediate result of channel ${c}: channel ${c} convolved with its kernel, before the bias` });
      for (const m of [input, inter]) m.root.tabIndex = 0;
      flow.append(
        figure(`channel ${c}`, input.root),
        el("div", { class: "cnnx-flow-op" }, el("span", { class: "cnnx-op" }, "∗"), kernelBox, el("span", { class: "cnnx-op" }, "→")),
        figure(`ch ${c} ∗ kernel`, inter.root),
      );
      const mw = new NumberGrid(kh, kw, `input window, channel ${c}`, "cnnx-num");
      const mk = new NumberGrid(kh, kw, `kernel, channel ${c}`, "cnnx-num");
      const mp = new NumberGrid(kh, kw, `products, channel ${c}`, "cnnx-num");
      const sum = el("span", { class: "cnnx-sum" });
      const block = el(
        "div",
        { class: "cnnx-math-channel", role: "group", "aria-label": `math for input channel ${c}` },
        el("div", { class: "cnnx-math-label" }, `channel ${c}`),
        el("div", { class: "cnnx-math-row" }, labelled("window", mw.root), el("span", { class: "cnnx-op" }, "×"), labelled("kernel", mk.root), el("span", { class: "cnnx-op" }, "="), labelled("products", mp.root), el("span", { class: "cnnx-op" }, "Σ ="), sum),
      );
      this.rows.push({ input, kernelMini, kernelFull, inter, math: { block, window: mw, kernel: mk, products: mp, sum } });
    }

    this.output = new MapView({ h: oh, w: ow, size: 176, label: `${layer.name} neuron ${this.index} map (after bias); arrow keys move the position` });
    this.output.root.tabIndex = 0;
    this.biasEl = el("span", { class: "cnnx-bias" });
    const outFig = el(
      "div",
      { class: "cnnx-conv-out" },
      el("div", { class: "cnnx-sumnode" }, el("span", { class: "cnnx-sumsym", "aria-hidden": "true" }, "Σ"), el("span", {}, `add up the ${cin} intermediate result${cin > 1 ? "s" : ""}, then add the bias`, el("br"), this.biasEl)),
      figure(`${layer.name} neuron ${this.index}: the sum plus bias (after bias) ${oh}×${ow}`, this.output.root),
    );

    this.posLabel = el("span", { class: "cnnx-pos", "aria-live": "polite" });
    this.stepper = new Stepper({
      rows: oh,
      cols: ow,
      label: "sliding window",
      // No autoplay: numbers a reader (or a test) is reading must not move under them.
      autoplay: false,
      onMove: (y, x, source) => this.setPos(y, x, source === "step"),
    });

    this.sumLine = el("div", { class: "cnnx-math-total", role: "group", "aria-label": "channel sums plus bias equal the output" });
    this.outputEl = el("span", { class: "cnnx-math-output" });
    const math = el(
      "section",
      { class: "cnnx-math", "aria-label": "the math at the current position" },
      el("h4", {}, "The math at this position"),
      el("p", { class: "cnnx-note" }, `Each number is rounded to ${DIGITS} decimals so that the shown products add up to the shown sums and the sums plus the bias to the shown output; hover a number for its full value.`),
      el("div", { class: "cnnx-math-channels", tabindex: 0, "aria-label": "per-channel math, scrollable" }, ...this.rows.map((r) => r.math.block)),
      this.sumLine,
    );

    // Built when first opened (it is not part of the first frame).
    const hyperBox = el("details", { class: "cnnx-hyper-box" }, el("summary", {}, "Hyperparameter explorer: input size, padding, kernel size, stride"));
    hyperBox.addEventListener("toggle", () => {
      if (!hyperBox.open || this.hyper) return;
      this.hyper = new HyperExplorer();
      hyperBox.append(this.hyper.root);
      this.setHyperSource();
    });

    const stride = layer.stride!;
    const facts = el(
      "p",
      { class: "cnnx-facts" },
      `${kh}×${kw} kernel, stride ${stride[0] === stride[1] ? stride[0] : stride.join("×")}, padding ${padText(pad)}; `,
      `output ${oh} = ⌊(${h} + ${pad[0][0] + pad[0][1]} − ${kh}) / ${stride[0]}⌋ + 1. `,
      "Slide the window: hover or click a map, use the arrow keys, or press Play.",
    );

    this.root = el(
      "div",
      { class: "cnnx-conv" },
      facts,
      el("div", { class: "cnnx-toolbar" }, this.stepper.root, this.posLabel),
      el("div", { class: "cnnx-conv-main" }, el("div", { class: "cnnx-flow-scroll", tabindex: -1 }, flow), outFig, math),
      hyperBox,
    );

    // Pointer: input maps centre the window on the hovered cell; intermediate and output maps
    // give the output position directly.
    const toOut = (iy: number, ix: number): [number, number] => [
      clamp(Math.round((iy + pad[0][0] - (kh - 1) / 2) / stride[0]), 0, oh - 1),
      clamp(Math.round((ix + pad[1][0] - (kw - 1) / 2) / stride[1]), 0, ow - 1),
    ];
    for (const r of this.rows) {
      this.pointer(r.input, toOut);
      this.pointer(r.inter, (y, x) => [clamp(y, 0, oh - 1), clamp(x, 0, ow - 1)]);
    }
    this.pointer(this.output, (y, x) => [clamp(y, 0, oh - 1), clamp(x, 0, ow - 1)]);

    this.update(ctx);
    this.stepper.maybeAutoplay();
  }

  private pointer(m: MapView, toOut: (y: number, x: number) => [number, number]): void {
    m.root.addEventListener("pointermove", (e) => {
      this.stepper.pause();
      const [y, x] = toOut(...m.cellAt(e));
      if (y !== this.y || x !== this.x) this.setPos(y, x, false);
    });
    m.root.addEventListener("click", (e) => {
      this.stepper.pause();
      const [y, x] = toOut(...m.cellAt(e));
      this.setPos(y, x, true);
    });
  }

  update(ctx: DetailContext): void {
    this.ctx = ctx;
    const { network, activations, selection } = ctx;
    this.layer = getLayer(network, selection.layer);
    if (activations.seq !== this.seq || ctx.colorScale !== this.scale) {
      this.seq = activations.seq;
      this.scale = ctx.colorScale;
      this.drawMaps();
    }
    if (selection.y !== undefined && selection.x !== undefined && (selection.y !== this.y || selection.x !== this.x)) {
      this.stepper.pause();
    }
    const [oh, ow] = this.layer.output_shape;
    this.y = clamp(selection.y ?? this.y, 0, oh - 1);
    this.x = clamp(selection.x ?? this.x, 0, ow - 1);
    this.render();
  }

  private drawMaps(): void {
    const { network, activations } = this.ctx;
    const layer = this.layer;
    const src = inputName(network, layer.name);
    const input = getValues(activations, src);
    const grey = src === "input" && isUnitRange(input.min, input.max);
    const cin = dims(input).c;
    const inters: Float64Array[] = [];
    let interExtent = 0;
    for (let c = 0; c < cin; c++) {
      const m = convIntermediate(network, activations, layer.name, this.index, c);
      for (const v of m) interExtent = Math.max(interExtent, Math.abs(v));
      inters.push(m);
    }
    let kExtent = 0;
    for (let c = 0; c < cin; c++) for (const v of kernelSlice(network, layer, this.index, c)) kExtent = Math.max(kExtent, Math.abs(v));
    this.rows.forEach((r, c) => {
      r.input.draw(channelMap(input, c), grey ? "grey" : "diverging", grey ? 1 : this.env.extent(this.ctx, src, c));
      r.inter.draw(inters[c], "diverging", interExtent);
      const k = kernelSlice(network, layer, this.index, c);
      r.kernelMini.set(k, 2, { colorExtent: kExtent });
      r.kernelFull.set(k, 3, { colorExtent: kExtent });
    });
    this.output.draw(channelMap(getValues(activations, layer.name), this.index), "diverging", this.env.extent(this.ctx, layer.name, this.index));
    this.setHyperSource();
  }

  private setHyperSource(): void {
    if (!this.hyper) return;
    const src = inputName(this.ctx.network, this.layer.name);
    const input = getValues(this.ctx.activations, src);
    const grey = src === "input" && isUnitRange(input.min, input.max);
    this.hyper.setSource(channelMap(input, 0), dims(input).h, dims(input).w, grey, `${src} channel 0`);
  }

  private setPos(y: number, x: number, now: boolean): void {
    this.y = y;
    this.x = x;
    this.render();
    if (!this.stepper.playing) this.env.report(y, x, now);
  }

  move(dy: number, dx: number): boolean {
    this.stepper.pause();
    const [oh, ow] = this.layer.output_shape;
    this.setPos(clamp(this.y + dy, 0, oh - 1), clamp(this.x + dx, 0, ow - 1), true);
    return true;
  }

  toggle(): boolean {
    if (this.stepper.playing) this.stepper.pause();
    else this.stepper.play();
    return true;
  }

  private render(): void {
    const { network, activations } = this.ctx;
    const m: ConvMath = convAt(network, activations, this.layer.name, this.index, this.y, this.x);
    this.stepper.y = this.y;
    this.stepper.x = this.x;
    const p = m.place;
    for (const r of this.rows) {
      r.input.setBox(p.top, p.left, p.kh, p.kw);
      r.inter.setBox(this.y, this.x, 1, 1);
    }
    this.output.setBox(this.y, this.x, 1, 1);
    this.posLabel.textContent = `position (y ${this.y}, x ${this.x}); window rows ${p.top}…${p.top + p.kh - 1}, columns ${p.left}…${p.left + p.kw - 1}${m.channels[0].padded.some(Boolean) ? " (partly in the padding)" : ""}`;

    const top = roundToSum([...m.channels.map((c) => c.sum), m.bias], m.total, DIGITS);
    let kExtent = 0;
    let pExtent = 0;
    for (const c of m.channels) {
      for (const v of c.kernel) kExtent = Math.max(kExtent, Math.abs(v));
      for (const v of c.products) pExtent = Math.max(pExtent, Math.abs(v));
    }
    m.channels.forEach((c, i) => {
      const r = this.rows[i].math;
      const shown = roundToSum(c.products, top.parts[i], DIGITS);
      r.window.set(c.window, DIGITS, { padded: c.padded });
      r.kernel.set(c.kernel, DIGITS, { colorExtent: kExtent });
      r.products.set(shown.parts, DIGITS, { full: c.products, colorExtent: pExtent, padded: c.padded.map((pd) => pd) });
      r.sum.textContent = fmt(top.parts[i], DIGITS);
      r.sum.title = String(c.sum);
    });
    this.biasEl.textContent = `b = ${fmt(m.bias, DIGITS)}`;
    this.biasEl.title = String(m.bias);

    const terms: (Node | string)[] = [];
    m.channels.forEach((c, i) => {
      if (i > 0) terms.push(el("span", { class: "cnnx-op" }, "+"));
      terms.push(el("span", { class: "cnnx-term", title: `channel ${i}: ${c.sum}` }, el("small", {}, `ch ${i}`), fmt(top.parts[i], DIGITS)));
    });
    terms.push(el("span", { class: "cnnx-op" }, "+"), el("span", { class: "cnnx-term cnnx-term-bias", title: `bias: ${m.bias}` }, el("small", {}, "bias"), fmt(top.parts[m.channels.length], DIGITS)));
    this.outputEl.textContent = fmt(top.total, DIGITS);
    this.outputEl.dataset.value = String(m.total);
    this.outputEl.dataset.y = String(this.y);
    this.outputEl.dataset.x = String(this.x);
    this.outputEl.title = `${this.layer.name}[${this.index}] at (${this.y}, ${this.x}) = ${m.total}`;
    const out = el("span", { class: "cnnx-term cnnx-term-out" }, el("small", {}, `output (${this.y}, ${this.x})`), this.outputEl);
    this.sumLine.replaceChildren(...terms, el("span", { class: "cnnx-op" }, "="), out);
  }

  destroy(): void {
    this.stepper.destroy();
    this.hyper?.destroy();
  }
}

function labelled(label: string, node: Node): HTMLElement {
  return el("div", { class: "cnnx-labelled" }, el("div", { class: "cnnx-grid-label" }, label), node);
}

function hasPad(p: Pad): boolean {
  return p[0][0] + p[0][1] + p[1][0] + p[1][1] > 0;
}

function padText(p: Pad): string {
  if (!hasPad(p)) return "none";
  const [[t, b], [l, r]] = p;
  if (t === b && l === r && t === l) return `${t} on every side`;
  return `top ${t}, bottom ${b}, left ${l}, right ${r}`;
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
