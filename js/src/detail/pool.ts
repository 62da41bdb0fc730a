// Pooling neuron: the window slides over the input map with the layer's stride; the values under
// it and their max (or mean) give the output value.

import { channelMap, getLayer, getValues, inputName, poolAt, fmt } from "../math";
import type { LayerSpec } from "../payload";
import { el, figure, MapView, NumberGrid, Stepper, type Pad } from "./dom";
import { clamp } from "./conv";
import type { DetailContext, KindView, ViewEnv } from "./types";

export class PoolView implements KindView {
  readonly root: HTMLElement;
  private readonly layer: LayerSpec;
  private readonly index: number;
  private readonly input: MapView;
  private readonly output: MapView;
  private readonly grid: NumberGrid;
  private readonly result: HTMLElement;
  private readonly detail: HTMLElement;
  private readonly stepper: Stepper;
  private readonly posLabel: HTMLElement;
  private ctx: DetailContext;
  private y = 0;
  private x = 0;
  private seq = -1;
  private scale = "";

  constructor(ctx: DetailContext, private env: ViewEnv) {
    this.ctx = ctx;
    this.layer = getLayer(ctx.network, ctx.selection.layer);
    this.index = ctx.selection.index;
    const layer = this.layer;
    const [h, w] = layer.input_shape;
    const [oh, ow] = layer.output_shape;
    const [kh, kw] = layer.kernel_size!;
    const [sh, sw] = layer.stride!;
    const pad = layer.padding as Pad;
    const src = inputName(ctx.network, layer.name);
    const op = layer.function === "avg" ? "avg" : "max";
    this.input = new MapView({ h, w, pad, size: 192, label: `${src} neuron ${this.index}, the input; arrow keys move the window` });
    this.output = new MapView({ h: oh, w: ow, size: 192, label: `${layer.name} neuron ${this.index}, the output; arrow keys move the window` });
    this.grid = new NumberGrid(kh, kw, "values under the window", "cnnx-num");
    this.result = el("span", { class: "cnnx-val cnnx-pool-out" });
    this.detail = el("div", { class: "cnnx-pool-detail" });
    this.posLabel = el("span", { class: "cnnx-pos", "aria-live": "polite" });
    this.stepper = new Stepper({ rows: oh, cols: ow, label: "pooling window", autoplay: false, onMove: (y, x, s) => this.setPos(y, x, s === "step") });
    const toOut = (iy: number, ix: number): [number, number] => [
      clamp(Math.floor((iy + pad[0][0]) / sh), 0, oh - 1),
      clamp(Math.floor((ix + pad[1][0]) / sw), 0, ow - 1),
    ];
    for (const [m, f] of [
      [this.input, toOut],
      [this.output, (y: number, x: number): [number, number] => [clamp(y, 0, oh - 1), clamp(x, 0, ow - 1)]],
    ] as const) {
      m.root.tabIndex = 0;
      m.root.addEventListener("pointermove", (e) => {
        this.stepper.pause();
        const [y, x] = f(...m.cellAt(e));
        if (y !== this.y || x !== this.x) this.setPos(y, x, false);
      });
      m.root.addEventListener("click", (e) => {
        this.stepper.pause();
        this.setPos(...f(...m.cellAt(e)), true);
      });
    }
    const what =
      op === "max"
        ? "the largest value under the window"
        : `the mean of the values under the window${layer.options.count_include_pad === false ? " (padded cells are not counted)" : " (padded cells count as zeros)"}`;
    this.root = el(
      "div",
      { class: "cnnx-pool" },
      el("p", { class: "cnnx-facts" }, `${op === "max" ? "Max" : "Average"} pooling: a ${kh}×${kw} window moves with stride ${sh === sw ? sh : `${sh}×${sw}`}; each output is ${what}. Output ${oh} = ⌊(${h} + ${pad[0][0] + pad[0][1]} − ${kh}) / ${sh}⌋ + 1.`),
      el("div", { class: "cnnx-toolbar" }, this.stepper.root, this.posLabel),
      el(
        "div",
        { class: "cnnx-row" },
        figure(`input: ${src} neuron ${this.index} (${h}×${w})`, this.input.root),
        el("div", { class: "cnnx-pool-mid" }, el("div", { class: "cnnx-math-row" }, el("span", { class: "cnnx-op" }, `${op}(`), this.grid.root, el("span", { class: "cnnx-op" }, ") ="), this.result), this.detail),
        figure(`output: ${layer.name} neuron ${this.index} (${oh}×${ow})`, this.output.root),
      ),
    );
    this.update(ctx);
    this.stepper.maybeAutoplay();
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

  update(ctx: DetailContext): void {
    this.ctx = ctx;
    const { activations, network, selection } = ctx;
    if (activations.seq !== this.seq || ctx.colorScale !== this.scale) {
      this.seq = activations.seq;
      this.scale = ctx.colorScale;
      const src = inputName(network, this.layer.name);
      this.input.draw(channelMap(getValues(activations, src), this.index), "diverging", this.env.extent(ctx, src, this.index));
      this.output.draw(channelMap(getValues(activations, this.layer.name), this.index), "diverging", this.env.extent(ctx, this.layer.name, this.index));
    }
    if (selection.y !== undefined && (selection.y !== this.y || selection.x !== this.x)) this.stepper.pause();
    const [oh, ow] = this.layer.output_shape;
    this.y = clamp(selection.y ?? this.y, 0, oh - 1);
    this.x = clamp(selection.x ?? this.x, 0, ow - 1);
    this.render();
  }

  private render(): void {
    const m = poolAt(this.ctx.network, this.ctx.activations, this.layer.name, this.index, this.y, this.x);
    this.stepper.y = this.y;
    this.stepper.x = this.x;
    const p = m.place;
    this.input.setBox(p.top, p.left, p.kh, p.kw);
    this.output.setBox(this.y, this.x, 1, 1);
    const extent = this.env.extent(this.ctx, inputName(this.ctx.network, this.layer.name), this.index);
    this.grid.set(m.window, 4, { padded: m.padded, highlight: m.op === "max" ? m.argmax : undefined, colorExtent: extent });
    this.result.textContent = fmt(m.result, 4);
    this.result.dataset.value = String(m.result);
    this.result.title = String(m.result);
    this.posLabel.textContent = `output (y ${this.y}, x ${this.x}) ← window rows ${p.top}…${p.top + p.kh - 1}, columns ${p.left}…${p.left + p.kw - 1}`;
    const nPad = m.padded.filter(Boolean).length;
    if (m.op === "max") {
      this.detail.textContent = nPad ? `${nPad} padded cell${nPad > 1 ? "s are" : " is"} ignored; the max is taken over the other ${m.count}.` : "The highlighted cell is the largest.";
    } else {
      this.detail.textContent = `mean = (sum of the ${nPad ? `${m.window.length - nPad} real cells` : `${m.count} values`}) / ${m.count} = ${fmt(m.sum, 4)} / ${m.count} = ${fmt(m.result, 4)}${nPad ? (m.countIncludePad ? `; the ${nPad} padded cell${nPad > 1 ? "s count" : " counts"} as zero` : `; the ${nPad} padded cell${nPad > 1 ? "s are" : " is"} not counted`) : ""}`;
    }
  }

  destroy(): void {
    this.stepper.destroy();
  }
}
