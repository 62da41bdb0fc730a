// The elastic explanation view: what the overview draws in place around the selected neuron,
// on top of the overview's own neurons (which the animator has moved to the layout's places).
// It adds the parts of the computation (kernels, intermediate maps, ⊕ and bias, the flattened
// column and its weights, logit marks, softmax), the sliding window on every map in sync,
// legends with numbers, annotations, and opens the formula card next to what it explains.

import { type ColorScale, divergingCss, formatValue, legendTicks, paintMap, safeExtent, weightCss } from "../colors";
import { type DetailKind, type Formula, detailKind, formulaFor } from "../detail/index";
import { prefersReducedMotion } from "../detail/dom";
import { Sweep } from "../detail/sweep";
import { biasOf, channelMap, concatSource, convIntermediate, denseAt, dims, getLayer, getValues, globalPoolAt, groupChannels, inputName, kernelSlice, softmax, windowAt } from "../math";
import type { Activations, LayerSpec, Network } from "../payload";
import { channelName } from "../names";
import { h, svg } from "../ui/dom";
import { type LegendKind, LegendView } from "../ui/legend";
import type { Column } from "./columns";
import type { ElasticLayout } from "./elastic-layout";
import type { Rect } from "./layout";
import "./elastic.css";

export interface ElasticContext {
  network: Network;
  acts: Activations;
  scale: ColorScale;
  /** Colour extent of a hidden neuron's map under the colour scale (as the overview paints it). */
  extent(layer: string, index: number): number;
}

export interface ElasticHost {
  /** The shown position: sent to Python on a click or key (`now`); a hover stays in the page. */
  report(y: number, x: number, now: boolean): void;
  /** Another neuron chosen inside the view (a logit mark, a softmax term). */
  select(layer: string, index: number): void;
  /** Step back one level (the card's back button). */
  back(): void;
  /** Close everything (the × button). */
  close(): void;
  /** Show another page of source channels. */
  page(p: number): void;
  /** The formula card was opened or closed (the host records the level). */
  level(formula: boolean): void;
}

/** A window outline over a map drawn at `r` (a (mh, mw) map; the box in map cells). */
function cellBox(r: Rect, mh: number, mw: number, top: number, left: number, kh: number, kw: number): Rect {
  const cw = r.w / mw;
  const ch = r.h / mh;
  return { x: r.x + left * cw, y: r.y + top * ch, w: kw * cw, h: kh * ch };
}

function place(el: HTMLElement, r: Rect): void {
  const s = el.style;
  s.left = `${Math.round(r.x)}px`;
  s.top = `${Math.round(r.y)}px`;
  s.width = `${Math.round(r.w)}px`;
  s.height = `${Math.round(r.h)}px`;
}

function absMax(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    if (v > m) m = v;
  }
  return m;
}

/** A canvas at native resolution (one pixel per value), scaled by CSS. */
function mapCanvas(values: ArrayLike<number>, hh: number, ww: number, kind: "grey" | "diverging", extent: number, cls: string): HTMLCanvasElement {
  const c = h("canvas", { class: cls, width: ww, height: hh, "aria-hidden": "true" });
  const ctx = c.getContext("2d");
  if (ctx) {
    const img = ctx.createImageData(ww, hh);
    paintMap(values, img.data, kind, extent);
    ctx.putImageData(img, 0, 0);
  }
  return c;
}

function repaint(c: HTMLCanvasElement, values: ArrayLike<number>, kind: "grey" | "diverging", extent: number): void {
  const ctx = c.getContext("2d");
  if (!ctx) return;
  const img = ctx.createImageData(c.width, c.height);
  paintMap(values, img.data, kind, extent);
  ctx.putImageData(img, 0, 0);
}

/** Every kernel weight of conv neuron `index` (every input channel it reads). */
function weightsOf(net: Network, layer: LayerSpec, index: number): number[] {
  const out: number[] = [];
  for (const c of groupChannels(layer, index)) out.push(...kernelSlice(net, layer, index, c));
  return out;
}

interface Hit {
  el: HTMLElement;
  /** Output position for a map cell. */
  toOut(y: number, x: number): [number, number];
  mh: number;
  mw: number;
  /** Channel the formula card opens on (-1: keep). */
  channel: number;
}

export class ElasticView {
  readonly root: HTMLDivElement;
  readonly kind: DetailKind;
  private readonly layer: LayerSpec | null;
  private readonly svgEl: SVGSVGElement;
  private readonly boxes: { el: HTMLDivElement; at(y: number, x: number): Rect; taps?: (y: number, x: number) => Rect[] }[] = [];
  private readonly readout: HTMLDivElement;
  private readonly legends: HTMLDivElement;
  private readonly controls: HTMLDivElement;
  private readonly sweep: Sweep | null = null;
  private card: HTMLElement | null = null;
  private formula: Formula | null = null;
  private channel = 0;
  private readonly redraws: (() => void)[] = [];
  private readonly oh: number = 1;
  private readonly ow: number = 1;
  private marks: HTMLElement[] = [];
  private settled = false;
  private denseReadout: (() => void) | null = null;

  constructor(
    parent: HTMLElement,
    private L: ElasticLayout,
    private readonly cols: readonly Column[],
    private ctx: ElasticContext,
    private readonly host: ElasticHost,
    pos: { y?: number; x?: number },
  ) {
    const col = cols[L.sel];
    this.kind = detailKind(ctx.network, col.layer) ?? "conv";
    this.layer = col.layer === "input" ? null : getLayer(ctx.network, col.layer);
    this.root = h("div", {
      class: `cnnx-detail cnnx-el cnnx-el-${L.kind}`,
      tabindex: -1,
      role: "region",
      "aria-label": `how ${col.layer} neuron ${L.index} is computed; Esc goes back`,
      "data-layer": col.layer,
      "data-index": String(L.index),
      "data-kind": this.kind,
      "data-level": "elastic",
      "data-settled": "0",
    });
    this.root.style.width = `${L.width}px`;
    this.root.style.height = `${L.height}px`;
    this.svgEl = svg("svg", { class: "cnnx-el-svg", width: L.width, height: L.height, viewBox: `0 0 ${L.width} ${L.height}`, "aria-hidden": "true" });
    this.readout = h("div", { class: "cnnx-el-readout", "aria-live": "off" });
    this.legends = h("div", { class: "cnnx-el-legends" });
    this.legends.style.top = `${L.legendTop}px`;
    this.controls = h("div", { class: "cnnx-el-controls" });
    this.root.append(this.svgEl);
    parent.append(this.root);

    const spatialOut = col.shape.length === 3 && L.kind !== "dense" && L.kind !== "output";
    if (spatialOut) {
      [this.oh, this.ow] = col.shape;
      this.sweep = new Sweep({
        rows: this.oh,
        cols: this.ow,
        label: L.kind === "input" ? "pixel readout" : "sliding window",
        onMove: (y, x, source) => this.moved(y, x, source === "step"),
      });
      this.controls.append(this.sweep.root);
      this.sweep.set(pos.y ?? 0, pos.x ?? 0);
    }
    if (L.pages > 1) this.controls.append(this.pager());
    const close = h("button", { type: "button", class: "cnnx-btn cnnx-detail-close", "aria-label": "close the explanation (Esc steps back)", title: "back to the overview" }, "×");
    close.addEventListener("click", () => host.close());
    this.controls.append(close);

    if (L.kind === "conv") this.buildConv();
    else if (L.kind === "pair") this.buildPair();
    else if (L.kind === "input") this.buildInput();
    else this.buildDense();
    // Where other modules may say something about the explained neuron (e.g. "switched off").
    const notes = h("div", { class: "cnnx-detail-host cnnx-el-notes" });
    this.root.append(this.readout, this.legends, this.controls, notes);
    this.drawNotes();
    this.root.addEventListener("keydown", this.onKey);
    this.show();
  }

  // ---- building ------------------------------------------------------------------------------

  private line(d: string, cls: string): SVGPathElement {
    const p = svg("path", { d, class: cls });
    this.svgEl.append(p);
    return p;
  }

  private plusNode(r: Rect): void {
    const cx = r.x + r.w / 2;
    const cy = r.y + r.h / 2;
    const g = svg("g", { class: "cnnx-el-plus" });
    g.append(
      svg("circle", { cx, cy, r: r.w / 2 }),
      svg("path", { d: `M${cx - r.w / 4} ${cy}H${cx + r.w / 4}M${cx} ${cy - r.h / 4}V${cy + r.h / 4}` }),
    );
    this.svgEl.append(g);
  }

  /** A window outline that follows the position; `taps`: the cells it reads, when it has holes (dilation). */
  private windowBox(at: (y: number, x: number) => Rect, taps?: (y: number, x: number) => Rect[]): void {
    const el = h("div", { class: `cnnx-el-window${taps ? " cnnx-el-window-dilated" : ""}`, "aria-hidden": "true" });
    this.root.append(el);
    this.boxes.push({ el, at, taps });
  }

  /** A transparent target over a map: hover moves the window, click opens the numbers. */
  private hit(r: Rect, label: string, hit: Omit<Hit, "el">): HTMLElement {
    const el = h("div", { class: "cnnx-el-hit", tabindex: 0, role: "button", "aria-label": `${label}; Enter shows the numbers, arrow keys move the window` });
    place(el, r);
    const at = (e: MouseEvent): [number, number] => {
      const b = el.getBoundingClientRect();
      const y = Math.floor(((e.clientY - b.top) / Math.max(1, b.height)) * hit.mh);
      const x = Math.floor(((e.clientX - b.left) / Math.max(1, b.width)) * hit.mw);
      return hit.toOut(Math.max(0, Math.min(hit.mh - 1, y)), Math.max(0, Math.min(hit.mw - 1, x)));
    };
    el.addEventListener("pointermove", (e) => {
      if (!this.sweep) return;
      this.sweep.pause();
      const [y, x] = at(e);
      if (y !== this.sweep.y || x !== this.sweep.x) this.setPos(y, x, false);
    });
    el.addEventListener("click", (e) => {
      e.stopPropagation();
      if (this.sweep) {
        this.sweep.pause();
        const [y, x] = at(e);
        this.setPos(y, x, true);
      }
      this.openFormula(hit.channel);
    });
    el.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        e.stopPropagation();
        this.sweep?.pause();
        this.openFormula(hit.channel);
      }
    });
    this.root.append(el);
    return el;
  }

  private note(x: number, y: number, w: number, text: string, align: "left" | "center" | "right", cls = ""): HTMLElement {
    const el = h("div", { class: `cnnx-el-note ${cls}` }, text);
    el.style.left = `${Math.round(align === "center" ? x - w / 2 : align === "right" ? x - w : x)}px`;
    el.style.top = `${Math.round(y)}px`;
    el.style.width = `${Math.round(w)}px`;
    el.style.textAlign = align;
    this.root.append(el);
    return el;
  }

  private drawNotes(): void {
    for (const n of this.L.notes) this.note(n.x, n.y, n.w, n.text, n.align, n.head ? "cnnx-el-head" : "");
  }

  /**
   * A legend (the shared component): colour bar with numeric ticks, the true range of the values
   * it covers marked on the bar and written under it with what it is.
   */
  private legend(title: string, kind: LegendKind, ticks: number[], range: [number, number] | null = null): void {
    const caption = range ? `${title}: ${formatValue(range[0])} … ${formatValue(range[1])}` : title;
    const lg = new LegendView({ kind, ticks, marks: range ?? undefined, caption, title: caption }, "cnnx-el-legend");
    lg.el.setAttribute("role", "img");
    lg.el.setAttribute("aria-label", `${caption}; colour scale ${formatValue(ticks[0])} to ${formatValue(ticks[ticks.length - 1])}`);
    this.legends.append(lg.el);
    lg.fit(170);
  }

  private divLegend(title: string, extent: number, lo: number, hi: number): void {
    this.legend(title, "activations", legendTicks(safeExtent(extent), 3), [lo, hi]);
  }

  private pager(): HTMLElement {
    const { page, pages, rows } = this.L;
    const prev = h("button", { type: "button", class: "cnnx-btn", "aria-label": "previous input channels", disabled: page === 0 }, "‹");
    const next = h("button", { type: "button", class: "cnnx-btn", "aria-label": "next input channels", disabled: page >= pages - 1 }, "›");
    prev.addEventListener("click", () => this.host.page(page - 1));
    next.addEventListener("click", () => this.host.page(page + 1));
    return h("span", { class: "cnnx-el-pager" }, prev, h("span", {}, `channels ${rows[0]}–${rows[rows.length - 1]} of ${this.cols[this.L.src].count}`), next);
  }

  private buildConv(): void {
    const { L, ctx } = this;
    const layer = this.layer!;
    const net = ctx.network;
    const srcName = inputName(net, layer.name);
    const input = getValues(ctx.acts, srcName);
    const { h: ih, w: iw } = dims(input);
    const [kh, kw] = layer.kernel_size!;
    const [sh, sw] = layer.stride!;
    const pad = layer.padding!;
    const [dy, dx] = layer.dilation ? layer.dilation : [1, 1];
    const dilated = dy > 1 || dx > 1;
    const oh = this.oh;
    const ow = this.ow;
    const toOut = (y: number, x: number): [number, number] => [
      Math.max(0, Math.min(oh - 1, Math.round((y + pad[0][0] - (kh - 1) / 2) / sh))),
      Math.max(0, Math.min(ow - 1, Math.round((x + pad[1][0] - (kw - 1) / 2) / sw))),
    ];
    const same = (y: number, x: number): [number, number] => [y, x];
    const inters: HTMLCanvasElement[] = [];
    const kernels: HTMLCanvasElement[] = [];
    const plus = L.plus!;
    const px = plus.x;
    const py = plus.y + plus.h / 2;
    let edges = "";
    L.rows.forEach((c, k) => {
      const ri = L.inputs[k];
      const rk = L.kernels[k];
      const rm = L.inters[k];
      const cy = ri.y + ri.h / 2;
      edges += `M${ri.x + ri.w} ${cy}H${rk.x}M${rk.x + rk.w} ${cy}H${rm.x}`;
      const mx = rm.x + rm.w;
      const my = rm.y + rm.h / 2;
      const xm = (mx + px) / 2;
      edges += `M${mx} ${my}C${xm} ${my} ${xm} ${py} ${px} ${py}`;
      const inter = mapCanvas(new Float64Array(oh * ow), oh, ow, "diverging", 1, "cnnx-el-map");
      place(inter, rm);
      inters.push(inter);
      const kc = h("canvas", { class: "cnnx-el-kernel", width: kw, height: kh, tabindex: 0, role: "img" });
      place(kc, rk);
      kernels.push(kc);
      const tip = h("div", { class: "cnnx-el-kernel-tip", role: "tooltip" });
      const showTip = () => {
        const k = kernelSlice(net, layer, L.index, c);
        // The glyphs' scale: every weight of this neuron and its bias.
        const e = Math.max(absMax(weightsOf(net, layer, L.index)), Math.abs(biasOf(net, layer, L.index)));
        tip.replaceChildren(
          h("div", { class: "cnnx-el-tip-title" }, `kernel for ${channelName(net, srcName, c)}`),
          (() => {
            const g = h("div", { class: "cnnx-el-tip-grid" });
            g.style.gridTemplateColumns = `repeat(${kw}, auto)`;
            for (const v of k) {
              const cell = h("span", { title: String(v) }, formatValue(v));
              cell.style.background = weightCss(v, e);
              cell.style.color = Math.abs(v) > 0.6 * e ? "#fff" : "#111";
              g.append(cell);
            }
            return g;
          })(),
        );
        tip.hidden = false;
        tip.style.left = `${Math.round(rk.x)}px`;
        tip.style.top = `${Math.round(rk.y + rk.h + 4)}px`;
      };
      tip.hidden = true;
      kc.addEventListener("pointerenter", showTip);
      kc.addEventListener("focus", showTip);
      kc.addEventListener("pointerleave", () => (tip.hidden = true));
      kc.addEventListener("blur", () => (tip.hidden = true));
      this.root.append(inter, kc, tip);
      const cname = channelName(net, srcName, c);
      kc.setAttribute("aria-label", `${kh}×${kw} kernel for ${cname}${dilated ? `, taps ${dy === dx ? dy : `${dy}×${dx}`} apart (dilation)` : ""}; focus or hover shows its weights`);
      this.hit(ri, `input ${cname}`, { toOut, mh: ih, mw: iw, channel: c });
      this.hit(rm, `intermediate map of ${cname}: ${cname} ∗ its kernel, before the bias`, { toOut: same, mh: oh, mw: ow, channel: c });
      this.windowBox(
        (y, x) => {
          const p = windowAt(layer, y, x);
          return cellBox(ri, ih, iw, p.top, p.left, (p.kh - 1) * dy + 1, (p.kw - 1) * dx + 1);
        },
        dilated
          ? (y, x) => {
              // The cells the kernel's taps read: the window with holes.
              const p = windowAt(layer, y, x);
              const out: Rect[] = [];
              for (let i = 0; i < p.kh; i++) for (let j = 0; j < p.kw; j++) out.push(cellBox(ri, ih, iw, p.top + i * dy, p.left + j * dx, 1, 1));
              return out;
            }
          : undefined,
      );
      this.windowBox((y, x) => cellBox(rm, oh, ow, y, x, 1, 1));
    });
    const hero = L.hero;
    const hy = hero.y + hero.h / 2;
    edges += `M${px + plus.w} ${py}H${hero.x}`;
    edges += `M${hero.x + hero.w} ${hy}h14`;
    this.line(edges, "cnnx-el-edge");
    this.line(`M${px + plus.w / 2} ${L.bias!.y}V${plus.y + plus.h}`, "cnnx-el-edge");
    this.plusNode(plus);
    const bias = h("div", { class: "cnnx-el-bias", tabindex: 0, role: "img" });
    place(bias, L.bias!);
    this.root.append(bias);
    this.hit(hero, `${layer.name} neuron ${L.index}`, { toOut: same, mh: oh, mw: ow, channel: -1 });
    this.windowBox((y, x) => cellBox(hero, oh, ow, y, x, 1, 1));
    const paint = () => {
      // One range for every channel's intermediate map (all of them, not only this page).
      const reads = groupChannels(layer, L.index);
      const all = new Map(reads.map((c) => [c, convIntermediate(net, ctx.acts, layer.name, L.index, c)]));
      let e = 0;
      let lo = Infinity;
      let hi = -Infinity;
      for (const m of all.values()) {
        for (const v of m) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
      e = Math.max(Math.abs(lo), Math.abs(hi));
      L.rows.forEach((c, k) => repaint(inters[k], all.get(c)!, "diverging", e));
      let ke = 0;
      for (const c of reads) ke = Math.max(ke, absMax(kernelSlice(net, layer, L.index, c)));
      const b = biasOf(net, layer, L.index);
      ke = Math.max(ke, Math.abs(b)); // weights and the bias share one scale
      for (let k = 0; k < L.rows.length; k++) {
        const kctx = kernels[k].getContext("2d");
        if (!kctx) continue;
        const img = kctx.createImageData(kw, kh);
        paintMap(kernelSlice(net, layer, L.index, L.rows[k]), img.data, "weights", ke);
        kctx.putImageData(img, 0, 0);
      }
      bias.style.background = weightCss(b, ke);
      bias.setAttribute("aria-label", `bias ${formatValue(b)}`);
      bias.title = `bias ${b}`;
      this.legends.replaceChildren();
      const inv = getValues(ctx.acts, srcName);
      if (srcName === "input") this.legend("input", "grey", [0, 0.5, 1], [Math.min(...inv.min), Math.max(...inv.max)]);
      else this.divLegend(`${srcName}`, Math.max(...L.rows.map((c) => ctx.extent(srcName, c))), Math.min(...L.rows.map((c) => inv.min[c])), Math.max(...L.rows.map((c) => inv.max[c])));
      const we = safeExtent(Math.max(ke, Math.abs(b)));
      this.legend("weights & bias", "weights", legendTicks(we, 3), [Math.min(b, ...weightsOf(net, layer, L.index)), Math.max(b, ...weightsOf(net, layer, L.index))]);
      this.divLegend("intermediate", e, lo, hi);
      const out = getValues(ctx.acts, layer.name);
      this.divLegend(`${layer.name} ${L.index}`, ctx.extent(layer.name, L.index), out.min[L.index], out.max[L.index]);
    };
    paint();
    this.redraws.push(paint);
    this.readout.style.left = `${Math.round(hero.x)}px`;
    this.readout.style.top = `${Math.round(hero.y - 22)}px`;
  }

  /** What a pair's operation box says (two lines). */
  private opText(layer: LayerSpec): [string, string] {
    const fn = layer.function ?? "";
    const net = this.ctx.network;
    switch (layer.kind) {
      case "pool":
        return [`${fn === "avg" ? "mean" : "max"} of ${layer.kernel_size!.join("×")}`, `stride ${layer.stride![0] === layer.stride![1] ? layer.stride![0] : layer.stride!.join("×")}`];
      case "batchnorm":
        return ["(x − μ)/σ·γ + β", "batch norm"];
      case "add":
        return ["+", `sum of ${this.L.srcs.length}`];
      case "concat": {
        const s = concatSource(net, layer.name, this.L.index);
        return ["copy", `ch ${s.channel} of ${s.layer}`];
      }
      case "global_pool":
        return [fn === "max" ? "max of all" : "mean of all", `${layer.input_shape[0]}×${layer.input_shape[1]} values`];
      default:
        return [fn, fn === "relu" ? "max(0, x)" : "each value"];
    }
  }

  private buildPair(): void {
    const { L, ctx } = this;
    const layer = this.layer!;
    const srcs = L.srcs.map(([ci, j]) => ({ name: this.cols[ci].layer, j }));
    const ho = L.hero;
    const op = L.op!;
    const oy = op.y + op.h / 2;
    let d = "";
    L.heroSrcs.forEach((hs) => {
      const y = hs.y + hs.h / 2;
      const xm = (hs.x + hs.w + op.x) / 2;
      d += `M${hs.x + hs.w} ${y}C${xm} ${y} ${xm} ${oy} ${op.x} ${oy}`;
    });
    d += `M${op.x + op.w} ${oy}H${ho.x}`;
    this.line(d, "cnnx-el-edge cnnx-el-edge-strong");
    const opText = this.opText(layer);
    const opEl = h("div", { class: `cnnx-el-op${layer.kind === "add" ? " cnnx-el-op-add" : ""}` }, h("div", { class: "cnnx-el-op-main" }, opText[0]), h("div", {}, opText[1]));
    place(opEl, { x: op.x, y: oy - 24, w: op.w, h: 48 });
    this.root.append(opEl);
    const first = getValues(ctx.acts, srcs[0].name);
    const spatial = first.shape.length === 3;
    const { h: ih, w: iw } = dims(first);
    if (layer.kind === "global_pool") {
      // The whole map is read: one outline around it; the result is one number.
      const hs = L.heroSrcs[0];
      this.hit(hs, `input: ${srcs[0].name} neuron ${srcs[0].j}, all ${ih}×${iw} values`, { toOut: () => [0, 0], mh: ih, mw: iw, channel: -1 });
      this.windowBox(() => cellBox(hs, ih, iw, 0, 0, ih, iw));
      if (layer.function === "max") {
        // Where the maximum is: the one value the map is reduced to.
        this.windowBox(() => {
          const m = globalPoolAt(ctx.network, ctx.acts, layer.name, L.index);
          return cellBox(hs, ih, iw, m.argY, m.argX, 1, 1);
        });
      }
      const hit = this.hit(ho, `${layer.name} neuron ${L.index}: one number`, { toOut: () => [0, 0], mh: 1, mw: 1, channel: -1 });
      hit.classList.add("cnnx-el-hit-vector");
    } else if (spatial) {
      const pool = layer.kind === "pool";
      const oh = this.oh;
      const ow = this.ow;
      const toOut = pool
        ? (y: number, x: number): [number, number] => [
            Math.max(0, Math.min(oh - 1, Math.floor((y + layer.padding![0][0]) / layer.stride![0]))),
            Math.max(0, Math.min(ow - 1, Math.floor((x + layer.padding![1][0]) / layer.stride![1]))),
          ]
        : (y: number, x: number): [number, number] => [y, x];
      L.heroSrcs.forEach((hs, k) => {
        const what = layer.kind === "add" ? `summand ${k + 1}` : "input";
        this.hit(hs, `${what}: ${srcs[k].name} neuron ${srcs[k].j}`, { toOut, mh: ih, mw: iw, channel: -1 });
        this.windowBox((y, x) => {
          if (!pool) return cellBox(hs, ih, iw, y, x, 1, 1);
          const p = windowAt(layer, y, x);
          return cellBox(hs, ih, iw, p.top, p.left, p.kh, p.kw);
        });
      });
      this.hit(ho, `output: ${layer.name} neuron ${L.index}`, { toOut: (y, x) => [y, x], mh: oh, mw: ow, channel: -1 });
      this.windowBox((y, x) => cellBox(ho, oh, ow, y, x, 1, 1));
    } else {
      const hit = this.hit(ho, `${layer.name} neuron ${L.index}`, { toOut: () => [0, 0], mh: 1, mw: 1, channel: -1 });
      hit.classList.add("cnnx-el-hit-vector");
    }
    const paint = () => {
      this.legends.replaceChildren();
      const out = getValues(ctx.acts, layer.name);
      for (const s of srcs) {
        const v = getValues(ctx.acts, s.name);
        const i = v.min.length > s.j ? s.j : 0;
        this.divLegend(`${s.name} ${s.j}`, ctx.extent(s.name, s.j), v.min[i], v.max[i]);
      }
      const i = out.min.length > L.index ? L.index : 0;
      this.divLegend(`${layer.name} ${L.index}`, ctx.extent(layer.name, L.index), out.min[i], out.max[i]);
    };
    paint();
    this.redraws.push(paint);
    this.readout.style.left = `${Math.round(ho.x)}px`;
    this.readout.style.top = `${Math.round(ho.y - 22)}px`;
  }

  private buildInput(): void {
    const { L, ctx } = this;
    const v = getValues(ctx.acts, "input");
    const { c: C, h: ih, w: iw } = dims(v);
    const img = h("canvas", { class: "cnnx-el-map cnnx-el-image", width: iw, height: ih, role: "img", "aria-label": "the input image" });
    place(img, L.image!);
    this.root.append(img);
    const ix = L.image!.x;
    const iy = L.image!.y + L.image!.h / 2;
    let d = "";
    L.inputs.forEach((r, k) => {
      const x1 = r.x + r.w;
      const y1 = r.y + r.h / 2;
      const xm = (x1 + ix) / 2;
      d += `M${x1} ${y1}C${xm} ${y1} ${xm} ${iy} ${ix} ${iy}`;
      const name = channelName(ctx.network, "input", k);
      this.hit(r, `input ${name}`, { toOut: (y, x) => [y, x], mh: ih, mw: iw, channel: k });
      this.windowBox((y, x) => cellBox(r, ih, iw, y, x, 1, 1));
      this.note(r.x - 4, r.y + r.h / 2 - 8, 60, name, "right", `cnnx-el-chan cnnx-el-chan-${C === 3 ? k : "x"}`);
    });
    this.line(d, "cnnx-el-edge");
    this.hit(L.image!, "the input image", { toOut: (y, x) => [y, x], mh: ih, mw: iw, channel: -1 });
    this.windowBox((y, x) => cellBox(L.image!, ih, iw, y, x, 1, 1));
    const paint = () => {
      const c2d = img.getContext("2d");
      const vv = getValues(ctx.acts, "input");
      if (c2d) {
        const data = c2d.createImageData(iw, ih);
        for (let p = 0; p < ih * iw; p++) {
          for (let k = 0; k < 3; k++) data.data[p * 4 + k] = Math.round(Math.min(1, Math.max(0, vv.values[(C === 3 ? k : 0) * ih * iw + p])) * 255);
          data.data[p * 4 + 3] = 255;
        }
        c2d.putImageData(data, 0, 0);
      }
      this.legends.replaceChildren();
      this.legend("each channel", "grey", [0, 0.5, 1], [Math.min(...vv.min), Math.max(...vv.max)]);
    };
    paint();
    this.redraws.push(paint);
    this.readout.style.left = `${Math.round(L.image!.x)}px`;
    this.readout.style.top = `${Math.round(L.image!.y - 22)}px`;
  }

  private buildDense(): void {
    const { L, ctx, cols } = this;
    const layer = this.layer!;
    const net = ctx.network;
    const srcName = inputName(net, layer.name);
    const src = getValues(ctx.acts, srcName);
    const spatial = src.shape.length === 3;
    const plus = L.plus!;
    const canvas = h("canvas", { class: "cnnx-el-weights", "aria-hidden": "true" });
    place(canvas, { x: L.weights!.x, y: L.weights!.y - 12, w: L.weights!.w + 2, h: L.weights!.h + 24 });
    this.root.append(canvas);
    let flat: HTMLCanvasElement | null = null;
    const { c: C, h: sh, w: sw } = dims(src);
    const n = spatial ? C * sh * sw : src.shape[0];
    if (L.flatten) {
      flat = h("canvas", { class: "cnnx-el-flatten", width: 1, height: n, role: "img", "aria-label": `the ${C} maps of ${srcName} flattened into ${n} values, drawn one channel after another` });
      place(flat, L.flatten);
      this.root.append(flat);
      // One band per channel: a fan from each map to its part of the column.
      let d = "";
      const f = L.flatten;
      for (let c = 0; c < C; c++) {
        const key = `${L.src}:${c}`;
        const r = this.mapRect(key);
        if (!r) continue;
        const y0 = f.y + (f.h * c) / C;
        const y1 = f.y + (f.h * (c + 1)) / C;
        const x1 = r.x + r.w;
        const xm = (x1 + f.x) / 2;
        d += `M${x1} ${r.y}C${xm} ${r.y} ${xm} ${y0} ${f.x} ${y0}L${f.x} ${y1}C${xm} ${y1} ${xm} ${r.y + r.h} ${x1} ${r.y + r.h}Z`;
      }
      this.line(d, "cnnx-el-fan");
    }
    const mark = L.marks[L.index];
    const mx = mark.x;
    const my = mark.y + mark.h / 2;
    this.line(`M${plus.x + plus.w} ${plus.y + plus.h / 2}H${mx}M${plus.x + plus.w / 2} ${L.bias!.y + L.bias!.h}V${plus.y}`, "cnnx-el-edge cnnx-el-edge-strong");
    this.plusNode(plus);
    const bias = h("div", { class: "cnnx-el-bias" });
    place(bias, L.bias!);
    this.root.append(bias);
    const plusHit = h("div", { class: "cnnx-el-hit cnnx-el-hit-round", tabindex: 0, role: "button", "aria-label": `${layer.name} neuron ${L.index}: Σ input × weight + bias; Enter shows the numbers` });
    place(plusHit, { x: plus.x - 4, y: plus.y - 4, w: plus.w + 8, h: plus.h + 8 });
    const openF = (e: Event) => {
      e.stopPropagation();
      this.openFormula(-1);
    };
    plusHit.addEventListener("click", openF);
    plusHit.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        openF(e);
      }
    });
    this.root.append(plusHit);
    const output = L.kind === "output";
    // Logit marks: one per neuron of this layer shown.
    this.marks = L.marks.map((r, i) => {
      const el = h("div", { class: `cnnx-el-mark${i === L.index ? " cnnx-el-mark-sel" : ""}`, tabindex: r.w ? 0 : -1, role: "button", "data-index": String(i) });
      place(el, r);
      if (!r.w) el.hidden = true;
      el.addEventListener("pointerenter", () => this.highlight(i));
      el.addEventListener("pointerleave", () => this.highlight(null));
      el.addEventListener("focus", () => this.highlight(i));
      el.addEventListener("blur", () => this.highlight(null));
      el.addEventListener("click", (e) => {
        e.stopPropagation();
        if (i === L.index) this.openFormula(-1);
        else this.host.select(layer.name, i);
      });
      this.root.append(el);
      return el;
    });
    if (output && L.softmax) {
      const s = L.softmax;
      let d = "";
      for (const r of L.marks) {
        if (!r.w) continue;
        const y = r.y + r.h / 2;
        const xm = (r.x + r.w + s.x) / 2;
        d += `M${r.x + r.w} ${y}C${xm} ${y} ${xm} ${s.y + s.h / 2} ${s.x} ${s.y + s.h / 2}`;
      }
      const outCol = L.sel;
      for (let i = 0; i < cols[outCol].count; i++) {
        const r = L.neurons.get(`${outCol}:${i}`);
        if (!r) continue;
        const y = r.y + r.h / 2;
        const xm = (s.x + s.w + r.x) / 2;
        d += `M${s.x + s.w} ${s.y + s.h / 2}C${xm} ${s.y + s.h / 2} ${xm} ${y} ${r.x} ${y}`;
      }
      this.line(d, "cnnx-el-edge");
      const box = h("button", { type: "button", class: "cnnx-el-softmax", "aria-label": "softmax: open the formula" }, "softmax");
      place(box, s);
      box.addEventListener("click", openF);
      this.root.append(box);
    }
    const paint = () => {
      const m = denseAt(net, ctx.acts, layer.name, L.index);
      const xe = absMax(m.inputs);
      const we = Math.max(absMax(m.weights), Math.abs(m.bias));
      // Flattened values drawn channel after channel (their (h, w, c) order interleaves channels).
      if (flat) {
        const byChannel = new Float64Array(n);
        for (let c = 0, k = 0; c < C; c++) for (let p = 0; p < sh * sw; p++) byChannel[k++] = src.values[c * sh * sw + p];
        repaint(flat, byChannel, "diverging", safeExtent(xe));
      }
      this.drawWeights(canvas, m.weights, we, n, spatial ? { C, h: sh, w: sw } : null);
      bias.style.background = weightCss(m.bias, we);
      bias.title = `bias ${m.bias}`;
      const vals = getValues(ctx.acts, layer.name).values;
      const le = absMax(vals);
      this.marks.forEach((el, i) => {
        el.style.background = divergingCss(vals[i], safeExtent(le));
        el.setAttribute("aria-label", `${output ? `logit of ${net.classes[i] ?? i}` : `${layer.name} neuron ${i}`}: ${formatValue(vals[i])}${i === L.index ? "; Enter shows the numbers" : ""}`);
        el.title = `${output ? (net.classes[i] ?? i) : `neuron ${i}`}: ${vals[i]}`;
      });
      const what = output ? `logit of “${net.classes[L.index] ?? L.index}”` : `${layer.name} ${L.index}`;
      this.denseReadout = () => this.setReadout(`${what} = `, m.total, vals[L.index], 0, 0);
      if (!this.formula) this.denseReadout();
      this.legends.replaceChildren();
      this.divLegend(spatial ? "flattened values" : `${srcName}`, xe, Math.min(...src.min), Math.max(...src.max));
      let wlo = m.bias;
      let whi = m.bias;
      for (const v of m.weights) {
        if (v < wlo) wlo = v;
        if (v > whi) whi = v;
      }
      this.legend("weights & bias", "weights", legendTicks(safeExtent(we), 3), [wlo, whi]);
      this.divLegend(output ? "logits" : layer.name, le, Math.min(...vals), Math.max(...vals));
      if (output) {
        const s = softmax(vals);
        this.legend("probability", "probability", [0, 0.5, 1], [Math.min(...s.probabilities), Math.max(...s.probabilities)]);
      }
    };
    paint();
    this.redraws.push(paint);
    this.readout.style.left = `${Math.round(plus.x - 90)}px`;
    this.readout.style.top = `${Math.round(plus.y + plus.h + 40)}px`;
  }

  private mapRect(key: string): Rect | undefined {
    return this.L.neurons.get(key);
  }

  /** Every input's weight as an edge into ⊕ (weakest first, so strong ones lie on top). */
  private drawWeights(canvas: HTMLCanvasElement, weights: ArrayLike<number>, extent: number, n: number, spatial: { C: number; h: number; w: number } | null): void {
    const L = this.L;
    const r = L.weights!;
    const dpr = Math.min(2, window.devicePixelRatio || 1);
    const W = Math.round(r.w + 2);
    const H = Math.round(r.h + 24);
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    const g = canvas.getContext("2d");
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const plus = L.plus!;
    const tx = plus.x - r.x;
    const ty = plus.y + plus.h / 2 - (r.y - 12);
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => Math.abs(weights[a]) - Math.abs(weights[b]));
    const e = safeExtent(extent);
    g.lineWidth = 0.6;
    for (const i of order) {
      let y: number;
      if (spatial) {
        // Weight i multiplies flatten[i] = map c at (h, w); in the column it sits in channel c's band.
        const c = i % spatial.C;
        const p = (i - c) / spatial.C;
        const k = c * spatial.h * spatial.w + p;
        y = 12 + (r.h * (k + 0.5)) / n;
      } else {
        const src = L.neurons.get(`${L.src}:${i}`);
        if (!src) continue;
        y = src.y + src.h / 2 - (r.y - 12);
      }
      const w = weights[i];
      g.strokeStyle = weightCss(w, e);
      g.globalAlpha = Math.min(1, 0.15 + 0.85 * (Math.abs(w) / e));
      g.beginPath();
      g.moveTo(0, y);
      g.bezierCurveTo(tx * 0.5, y, tx * 0.5, ty, tx, ty);
      g.stroke();
    }
    g.globalAlpha = 1;
  }

  /**
   * Write the readout "label value" in place: text nodes change, the elements stay, so a frame
   * of the sliding window causes no childList mutation (other modules observe those).
   */
  private setReadout(label: string, shown: number, own: number, y: number, x: number): void {
    let lab = this.readout.firstChild as HTMLSpanElement | null;
    let val = this.readout.lastChild as HTMLSpanElement | null;
    if (!lab || !val || lab === val) {
      lab = h("span", {}, " ");
      val = this.valueSpan(shown, own, y, x);
      this.readout.replaceChildren(lab, val);
    }
    (lab.firstChild as Text).nodeValue = label;
    if (!val.firstChild) val.append(" ");
    (val.firstChild as Text).nodeValue = formatValue(shown);
    val.dataset.value = String(own);
    val.dataset.y = String(y);
    val.dataset.x = String(x);
    val.title = String(own);
  }

  private valueSpan(shown: number, own: number, y: number, x: number): HTMLElement {
    return h("span", { class: "cnnx-math-output cnnx-el-value", "data-value": String(own), "data-y": String(y), "data-x": String(x), title: String(own) }, formatValue(shown));
  }

  // ---- position ------------------------------------------------------------------------------

  private moved(y: number, x: number, now: boolean): void {
    this.show();
    if (!this.sweep?.playing) this.host.report(y, x, now);
  }

  private setPos(y: number, x: number, now: boolean): void {
    if (!this.sweep) return;
    this.sweep.set(y, x);
    this.moved(this.sweep.y, this.sweep.x, now);
  }

  /** The position from Python (or a re-open): pauses the clock there. */
  setPosition(y: number | undefined, x: number | undefined): void {
    if (!this.sweep || y === undefined || x === undefined) return;
    if (y === this.sweep.y && x === this.sweep.x) return;
    this.sweep.pause();
    this.sweep.set(y, x);
    this.show();
  }

  /** Draw the window and the numbers at the current position. */
  private show(): void {
    const y = this.sweep?.y ?? 0;
    const x = this.sweep?.x ?? 0;
    for (const b of this.boxes) {
      const r = b.at(y, x);
      const s = b.el.style;
      const w = Math.max(6, r.w + 4);
      const hh = Math.max(6, r.h + 4);
      const left = r.x + r.w / 2 - w / 2;
      const top = r.y + r.h / 2 - hh / 2;
      s.left = `${left.toFixed(1)}px`;
      s.top = `${top.toFixed(1)}px`;
      s.width = `${w.toFixed(1)}px`;
      s.height = `${hh.toFixed(1)}px`;
      if (b.taps) {
        const taps = b.taps(y, x);
        while (b.el.children.length < taps.length) b.el.append(h("span", { class: "cnnx-el-tap" }));
        taps.forEach((t, k) => {
          const ts = (b.el.children[k] as HTMLElement).style;
          // relative to the box's padding edge (inside its 1 px dashed border)
          ts.left = `${(t.x - left - 1).toFixed(1)}px`;
          ts.top = `${(t.y - top - 1).toFixed(1)}px`;
          ts.width = `${Math.max(2, t.w).toFixed(1)}px`;
          ts.height = `${Math.max(2, t.h).toFixed(1)}px`;
        });
      }
    }
    // At the formula level the card shows the output: one `cnnx-math-output` at a time.
    this.readout.hidden = this.formula !== null;
    if (this.readout.hidden) {
      if (this.readout.firstChild) this.readout.replaceChildren();
    }
    else if (this.L.kind === "dense" || this.L.kind === "output") this.denseReadout?.();
    else {
      const name = this.cols[this.L.sel].layer;
      const v = getValues(this.ctx.acts, name);
      const { h: mh, w: mw } = dims(v);
      const own = v.values[(this.L.index * mh + y) * mw + x];
      if (v.shape.length === 3) this.setReadout(`(${y}, ${x}) = `, own, own, y, x);
      else {
        const layer = this.layer;
        if (layer?.kind === "global_pool") {
          this.setReadout(`${layer.function === "max" ? "max" : "mean"} of ${inputName(this.ctx.network, name)} ${this.L.index} = `, own, own, 0, 0);
        } else if (layer?.kind === "activation") {
          // A 1-D activation: one value in, one out.
          const src = getValues(this.ctx.acts, inputName(this.ctx.network, name)).values[this.L.index];
          this.setReadout(`${layer.function ?? ""}(${formatValue(src)}) = `, own, own, 0, 0);
        } else this.setReadout(`${name} ${this.L.index} = `, own, own, 0, 0);
      }
    }
    this.formula?.show(y, x);
  }

  // ---- formula card ----------------------------------------------------------------------------

  get formulaOpen(): boolean {
    return this.formula !== null;
  }

  openFormula(channel = -1): void {
    if (channel >= 0) this.channel = channel;
    if (this.formula) {
      if (channel >= 0) this.formula.focus?.(channel);
      return;
    }
    const L = this.L;
    const back = h("button", { type: "button", class: "cnnx-btn cnnx-card-back", "aria-label": "close the numbers (Esc)", title: "back (Esc)" }, "×");
    back.addEventListener("click", (e) => {
      e.stopPropagation();
      this.closeFormula();
    });
    const card = h("section", { class: "cnnx-formula-card", role: "group", "aria-label": "the numbers" });
    place(card, { ...L.card, h: 0 });
    card.style.height = "";
    card.style.maxHeight = `${Math.round(L.card.h)}px`;
    card.addEventListener("click", (e) => e.stopPropagation());
    this.formula = formulaFor(this.kind, this.ctx.network, this.ctx.acts, {
      layer: this.cols[L.sel].layer,
      index: L.index,
      channel: this.channel,
      maxHeight: L.card.h,
      width: L.card.w,
      extent: (layer, i) => this.ctx.extent(layer, i),
      hover: (i) => this.highlight(i),
      select: (layer, i) => this.host.select(layer, i),
    });
    card.append(back, this.formula.root);
    this.card = card;
    this.root.append(card);
    this.root.dataset.level = "formula";
    this.show();
    // Page rather than overflow: fewer channels until the card fits its room.
    while (card.scrollHeight > card.clientHeight + 1 && this.formula.shrink?.()) this.show();
    this.host.level(true);
  }

  closeFormula(): void {
    if (!this.formula) return;
    this.formula.destroy();
    this.formula = null;
    this.card?.remove();
    this.card = null;
    this.root.dataset.level = "elastic";
    this.show();
    this.root.focus({ preventScroll: true });
    this.host.level(false);
  }

  /** Highlight logit mark `i` and its softmax term (null: none). */
  private highlight(i: number | null): void {
    this.marks.forEach((m, k) => m.classList.toggle("cnnx-el-mark-hot", k === i));
    this.formula?.highlight?.(i);
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** The transition has ended: start the window (unless reduced motion or a set position). */
  settle(autoplay: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.root.dataset.settled = "1";
    if (autoplay && !prefersReducedMotion()) this.sweep?.play();
  }

  /** Start the window at once (the view opens with the clock running). */
  start(): void {
    if (!prefersReducedMotion()) this.sweep?.play();
  }

  /** New activations or colour scale: repaint in place. */
  update(ctx: ElasticContext): void {
    this.ctx = ctx;
    for (const r of this.redraws) r();
    this.formula?.update(ctx.network, ctx.acts);
    this.show();
  }

  private onKey = (e: KeyboardEvent) => {
    const t = e.target as HTMLElement | null;
    const tag = t?.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || t?.closest(".cnnx-hyper")) return;
    const d: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (d[e.key] && this.sweep) {
      e.preventDefault();
      e.stopPropagation();
      this.sweep.pause();
      this.setPos(this.sweep.y + d[e.key][0], this.sweep.x + d[e.key][1], true);
    } else if ((e.key === " " || e.key === "k") && tag !== "BUTTON" && this.sweep && !t?.classList.contains("cnnx-el-hit")) {
      e.preventDefault();
      e.stopPropagation();
      this.sweep.toggle();
    }
  };

  destroy(): void {
    this.sweep?.destroy();
    this.formula?.destroy();
    this.root.removeEventListener("keydown", this.onKey);
    this.root.remove();
  }
}
