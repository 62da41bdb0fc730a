// The overview: every layer of the network as a column of neurons, with edges between
// consecutive columns. The DOM is built once per network; an activations update only repaints
// canvases, bars, legends and labels.

import type { Activations, Network } from "../payload";
import { RGB_NAMES } from "../names";
import {
  type ColorRanges,
  type ColorScale,
  type Legend,
  DEFAULT_COLOR_SCALE,
  colorRanges,
  divergingCss,
  formatValue,
  legendTicks,
  safeExtent,
} from "../colors";
import { h, svg } from "../ui/dom";
import { type LegendSpec, LegendView } from "../ui/legend";
import { Tooltip } from "../ui/tooltip";
import { type Column, argmax, buildColumns, pageGroups, probabilities, sourcesFrom } from "./columns";
import { type Layout, type Rect, type Skip, computeLayout, itemRect, pageRange, titleText } from "./layout";
import { Animator, IDENTITY, type State, fit } from "./animator";
import type { ElasticLayout } from "./elastic-layout";
import { paintNeuron } from "./paint";

export interface NeuronRef {
  layer: string;
  index: number;
}

export interface OverviewOptions {
  /** A neuron was clicked or activated with the keyboard. */
  onSelect(sel: NeuronRef): void;
  /** A click on empty space (steps back one level). */
  onBackground?(): void;
}

interface NeuronView {
  el: HTMLDivElement;
  /** Maps: the canvas, sized to what it is painted from (the map or its preview). */
  canvas: HTMLCanvasElement | null;
  /** The paint generation (`Overview.gen`) it shows; older: to paint when it is seen. */
  painted: number;
  /** What the IntersectionObserver last said since it was shown (null: not yet; assume seen). */
  seen: boolean | null;
  bar: HTMLDivElement | null;
  prob: HTMLSpanElement | null;
}

/** A map canvas's starting size: the map's, at most the previews' 56 px (repainting resizes it). */
const CANVAS_START = 56;

const CHANNEL_NAMES = RGB_NAMES;

/** Legends: narrowest width (room for two end labels), gap between two in a row, row pitch. */
const LEGEND_MIN_WIDTH = 64;
const LEGEND_GAP = 6;
const LEGEND_ROW = 34;

export class Overview {
  readonly el: HTMLDivElement;
  private readonly opts: OverviewOptions;
  private readonly edges: SVGSVGElement;
  private readonly tooltip: Tooltip;
  private network: Network | null = null;
  private cols: Column[] = [];
  private layout: Layout | null = null;
  private width = 900;
  /** Current page per page-group leader (see `pageGroups`). */
  private pages: number[] = [];
  private group: number[] = [];
  private neurons: NeuronView[][] = [];
  private rects: (Rect | undefined)[][] = [];
  private titles: HTMLDivElement[] = [];
  private pagers: (HTMLDivElement | null)[] = [];
  private readonly legendLayer: HTMLDivElement;
  private faint: SVGPathElement[] = [];
  /** Per column: its skip connections' edges (drawn stronger, along lanes under the maps). */
  private skipPaths: SVGPathElement[] = [];
  /** ⊕ marks where an add layer's inputs meet. */
  private readonly merges: SVGGElement;
  private readonly hotPath: SVGPathElement;
  private readonly selPath: SVGPathElement;
  private acts: Activations | null = null;
  private policy: ColorScale = DEFAULT_COLOR_SCALE;
  private ranges: ColorRanges | null = null;
  /** The hidden layers' legends by index in `ranges.legends`. */
  private readonly legendViews = new Map<number, LegendView>();
  private extents = new Map<string, Float64Array>();
  private probs: Float32Array = new Float32Array(0);
  private hover: { col: number; index: number } | null = null;
  private selection: NeuronRef | null = null;
  /** Moves neurons, titles and layers between the overview and an elastic layout. */
  readonly animator = new Animator();
  /** Neurons off their column's page drawn by the elastic view (put back by `restore`). */
  private extras = new Map<HTMLElement, string>();
  private elastic = false;
  /**
   * Only what is seen is painted: a repaint (new activations or colour scale) bumps `gen` and
   * paints the maps on their column's page that are on screen; the rest are painted when a
   * page turn, a scroll (IntersectionObserver) or the elastic view shows them.
   */
  private gen = 0;
  private paints = 0;
  private readonly io: IntersectionObserver | null;
  private readonly where = new WeakMap<Element, [number, number]>();
  /** Scratch ImageData per map size, shared by every canvas. */
  private readonly images = new Map<string, ImageData>();

  constructor(parent: HTMLElement, opts: OverviewOptions) {
    this.opts = opts;
    this.el = h("div", { class: "cnnx-overview" });
    this.edges = svg("svg", { class: "cnnx-ov-edges", "aria-hidden": "true" });
    this.hotPath = svg("path", { class: "cnnx-ov-edge-hot" });
    this.selPath = svg("path", { class: "cnnx-ov-edge-sel" });
    this.merges = svg("g", { class: "cnnx-ov-merges" });
    this.legendLayer = h("div", { class: "cnnx-ov-legends" });
    this.el.append(this.edges, this.legendLayer);
    this.tooltip = new Tooltip(this.el);
    parent.append(this.el);
    // While elements move, they get compositor layers (each frame only composites); after, none
    // (so the settled picture is drawn crisp, at its final size).
    this.animator.onMoving = (moving) => this.el.classList.toggle("cnnx-ov-moving", moving);
    this.el.addEventListener("pointerover", this.onPointerOver);
    this.el.addEventListener("pointerleave", this.onPointerLeave);
    this.el.addEventListener("focusin", this.onFocusIn);
    this.el.addEventListener("focusout", this.onFocusOut);
    this.el.addEventListener("click", this.onClick);
    this.el.addEventListener("keydown", this.onKeyDown);
    this.el.addEventListener("cnnx-paint-all", this.onPaintAll);
    this.io = typeof IntersectionObserver === "undefined" ? null : new IntersectionObserver(this.onIntersect);
  }

  /** The columns (for tests and the host). */
  get columns(): readonly Column[] {
    return this.cols;
  }

  /** Build the DOM for `network` (once per network). */
  setNetwork(network: Network): void {
    this.network = network;
    this.acts = null; // the next `paint` brings this network's activations
    this.cols = buildColumns(network);
    this.pages = this.cols.map(() => 0);
    this.group = pageGroups(this.cols);
    for (const col of this.neurons.flat()) col.el.remove();
    this.io?.disconnect();
    for (const t of this.titles) t.remove();
    for (const p of this.pagers) p?.remove();
    this.edges.replaceChildren();
    this.faint = [];
    this.skipPaths = [];
    this.neurons = [];
    this.titles = [];
    this.pagers = [];
    for (const col of this.cols) {
      const path = svg("path", { class: `cnnx-ov-edge cnnx-ov-edge-${col.link}` });
      const skip = svg("path", { class: "cnnx-ov-edge cnnx-ov-edge-skip", "data-to": col.layer });
      this.edges.append(path, skip);
      this.faint.push(path);
      this.skipPaths.push(skip);
      const [name, shape] = titleText(col);
      const title = h(
        "div",
        { class: "cnnx-ov-col-title", title: `${name} ${shape}` },
        h("span", { class: "cnnx-ov-col-name" }, name),
        h("span", { class: "cnnx-ov-col-shape" }, shape),
      );
      this.titles.push(title);
      this.el.append(title);
      const views: NeuronView[] = [];
      for (let i = 0; i < col.count; i++) {
        views.push(this.buildNeuron(col, i));
      }
      this.neurons.push(views);
      this.pagers.push(null);
    }
    this.edges.append(this.merges, this.hotPath, this.selPath);
    this.hover = null;
    this.relayout();
  }

  private buildNeuron(col: Column, i: number): NeuronView {
    const network = this.network!;
    let label = `${col.layer} neuron ${i}`;
    if (col.kind === "output") label += ` (${network.classes[i] ?? i})`;
    else if (col.kind === "input" && col.count === 3) label += ` (${CHANNEL_NAMES[i]} channel)`;
    else if (col.index > 0 && (col.inputs.length !== 1 || col.inputs[0] !== col.index - 1)) {
      // What the edges show, said in words: a graph layer's inputs.
      const reads = sourcesFrom(this.cols, col.index, i);
      const name = (p: number) => this.cols[p].layer;
      if (col.layerKind === "add") label += ` (sum of ${col.inputs.map((p) => `${name(p)} neuron ${i}`).join(" + ")})`;
      else if (col.layerKind === "concat" && reads.length === 1) label += ` (copy of ${name(reads[0][0])} neuron ${reads[0][1]})`;
      else label += ` (reads ${col.inputs.map(name).join(", ")})`;
    }
    const el = h("div", {
      class: `cnnx-neuron cnnx-ov-${col.kind}`,
      "data-layer": col.layer,
      "data-index": String(i),
      "data-column": col.kind,
      tabindex: "0",
      role: "button",
      "aria-label": label,
    });
    const view: NeuronView = { el, canvas: null, painted: 0, seen: null, bar: null, prob: null };
    if (col.kind === "input" || col.kind === "map") {
      const [hh, ww] = col.shape;
      const k = Math.min(1, CANVAS_START / Math.max(hh, ww));
      const canvas = h("canvas", { class: "cnnx-ov-map", width: String(Math.max(1, Math.round(ww * k))), height: String(Math.max(1, Math.round(hh * k))) });
      el.append(canvas);
      view.canvas = canvas;
      this.where.set(el, [col.index, i]);
      this.io?.observe(el);
      if (col.kind === "input" && col.count === 3) {
        el.append(h("span", { class: `cnnx-ov-channel cnnx-ov-channel-${i}` }, CHANNEL_NAMES[i]));
      }
    } else if (col.kind === "output") {
      const prob = h("span", { class: "cnnx-ov-prob" });
      const bar = h("div", { class: "cnnx-ov-bar-fill" });
      el.append(
        h("div", { class: "cnnx-ov-out-line" }, h("span", { class: "cnnx-ov-class-name" }, network.classes[i] ?? `class ${i}`), prob),
        h("div", { class: "cnnx-ov-bar" }, bar),
      );
      view.bar = bar;
      view.prob = prob;
    }
    this.el.append(el);
    return view;
  }

  /** Lay out for a new width (no repaint of the maps). */
  resize(width: number): void {
    if (Math.abs(width - this.width) < 1 && this.layout) return;
    this.width = width;
    this.relayout();
  }

  private relayout(): void {
    if (!this.network) return;
    const L = computeLayout(this.cols, this.width);
    this.layout = L;
    this.el.style.height = `${L.height}px`;
    this.el.style.setProperty("--cnnx-title-font", `${L.titleFont}px`);
    // Small maps: the input's channel names start at the map's left edge instead of centring
    // under it, so they stay inside the cell.
    this.el.classList.toggle("cnnx-ov-small", L.node < 40);
    this.edges.setAttribute("width", String(L.width));
    this.edges.setAttribute("height", String(L.height));
    this.edges.setAttribute("viewBox", `0 0 ${L.width} ${L.height}`);
    const lineH = Math.round(L.titleFont * 1.3);
    this.cols.forEach((_, c) => {
      const cl = L.columns[c];
      const t = this.titles[c];
      t.style.left = `${Math.round(cl.titleLeft)}px`;
      t.style.width = `${Math.floor(cl.titleBoxWidth)}px`;
      t.style.top = `${L.titleTop + cl.titleRow * 2 * lineH}px`;
      this.pages[c] = Math.min(this.pages[c], cl.pages - 1);
    });
    this.cols.forEach((_, c) => {
      this.syncPager(c);
    });
    this.placeAll();
  }

  /** Position every column's neurons for the current pages, then the edges and legends. */
  private placeAll(): void {
    this.rects = this.cols.map((_, c) => this.placeColumn(c));
    this.paintSeen();
    this.drawEdges();
    this.renderLegends();
    this.refreshHighlights();
  }

  private placeColumn(c: number): (Rect | undefined)[] {
    const L = this.layout!;
    const col = this.cols[c];
    const cl = L.columns[c];
    const [a, b] = pageRange(cl, col.count, this.pages[this.group[c]]);
    const rects: (Rect | undefined)[] = [];
    this.neurons[c].forEach((v, i) => {
      if (i < a || i >= b) {
        v.el.style.display = "none";
        rects.push(undefined);
        return;
      }
      const r = itemRect(L, c, i - a, b - a);
      rects.push(r);
      const s = v.el.style;
      if (s.display === "none" && v.canvas) {
        // Just shown: painted now; observed afresh, so the observer reports where it is.
        v.seen = null;
        this.io?.unobserve(v.el);
        this.io?.observe(v.el);
      }
      s.display = "";
      s.left = `${r.x}px`;
      s.top = `${r.y}px`;
      s.width = `${r.w}px`;
      s.height = `${r.h}px`;
    });
    return rects;
  }

  private syncPager(c: number): void {
    const L = this.layout!;
    const cl = L.columns[c];
    const col = this.cols[c];
    let pager = this.pagers[c];
    if (cl.pages <= 1 || this.group[c] !== c) {
      pager?.remove();
      this.pagers[c] = null;
      return;
    }
    if (!pager) {
      const prev = h("button", { class: "cnnx-ov-page-prev", type: "button", "aria-label": `previous ${col.layer} neurons` }, "‹");
      const next = h("button", { class: "cnnx-ov-page-next", type: "button", "aria-label": `next ${col.layer} neurons` }, "›");
      const text = h("span", { class: "cnnx-ov-page-text" });
      pager = h("div", { class: "cnnx-ov-pager", "data-layer": col.layer }, prev, text, next);
      prev.addEventListener("click", () => this.turnPage(c, -1));
      next.addEventListener("click", () => this.turnPage(c, 1));
      this.el.append(pager);
      this.pagers[c] = pager;
    }
    const [a, b] = pageRange(cl, col.count, this.pages[c]);
    const last = L.columns[this.group.lastIndexOf(c)];
    const span = last.x + last.width - cl.x;
    const w = Math.max(span, 64);
    pager.style.left = `${Math.round(Math.max(0, Math.min(L.width - w, cl.x + span / 2 - w / 2)))}px`;
    pager.style.width = `${w}px`;
    pager.style.top = `${L.pagerTop}px`;
    const text = pager.querySelector(".cnnx-ov-page-text")!;
    text.textContent = `${a}–${b - 1}/${col.count}`;
    pager.title = `${col.layer}: neurons ${a}–${b - 1} of ${col.count}`;
    (pager.querySelector(".cnnx-ov-page-prev") as HTMLButtonElement).disabled = this.pages[c] === 0;
    (pager.querySelector(".cnnx-ov-page-next") as HTMLButtonElement).disabled = this.pages[c] >= cl.pages - 1;
  }

  private turnPage(c: number, delta: number): void {
    const cl = this.layout!.columns[c];
    const p = Math.max(0, Math.min(cl.pages - 1, this.pages[c] + delta));
    if (p === this.pages[c]) return;
    this.pages[c] = p;
    this.syncPager(c);
    this.placeAll();
  }

  /** Make neuron `index` of column `c` visible (turn its column's page). */
  private reveal(c: number, index: number): boolean {
    const g = this.group[c];
    const cl = this.layout?.columns[g];
    if (!cl) return false;
    const p = Math.floor(index / cl.perPage);
    if (p === this.pages[g]) return false;
    this.pages[g] = p;
    this.syncPager(g);
    return true;
  }

  // ---- edges ---------------------------------------------------------------------------------

  private curve(a: Rect, b: Rect): string {
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2;
    const x2 = b.x;
    const y2 = b.y + b.h / 2;
    const xm = (x1 + x2) / 2;
    return `M${x1} ${y1}C${xm} ${y1} ${xm} ${y2} ${x2} ${y2}`;
  }

  /**
   * A skip connection's edge: down from the source in the gap after its column, along the
   * skip's lane under the maps, up into the target in the gap before its column.
   */
  private skipCurve(a: Rect, b: Rect, skip: Skip): string {
    const L = this.layout!;
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2;
    const x2 = b.x;
    const y2 = b.y + b.h / 2;
    const next = L.columns[skip.from + 1];
    const prev = L.columns[skip.to - 1];
    const xd = next ? (L.columns[skip.from].x + L.columns[skip.from].width + next.x) / 2 : x1 + 6;
    const xa = prev ? (prev.x + prev.width + L.columns[skip.to].x) / 2 : x2 - 6;
    const ly = skip.y;
    const r = Math.min(8, Math.max(2, (xa - xd) / 4));
    return `M${x1} ${y1}C${xd} ${y1} ${xd - r} ${ly} ${xd + r} ${ly}H${xa - r}C${xa + r} ${ly} ${xa} ${y2} ${x2} ${y2}`;
  }

  /** Edges into neuron `index` of column `c` (`which`: adjacent ones, skips, or both). */
  private incoming(c: number, index: number, which: "near" | "skip" | "all" = "all"): string {
    const to = this.rects[c]?.[index];
    if (c === 0 || !to) return "";
    const skips = this.layout?.skips ?? [];
    let d = "";
    for (const [p, j] of sourcesFrom(this.cols, c, index)) {
      const r = this.rects[p]?.[j];
      if (!r) continue;
      if (p === c - 1) {
        if (which !== "skip") d += this.curve(r, to);
      } else if (which !== "near") {
        const skip = skips.find((k) => k.from === p && k.to === c);
        d += skip ? this.skipCurve(r, to, skip) : this.curve(r, to);
      }
    }
    return d;
  }

  private drawEdges(): void {
    const marks: SVGElement[] = [];
    this.cols.forEach((col, c) => {
      let d = "";
      let k = "";
      if (c > 0) {
        this.rects[c].forEach((r, i) => {
          if (!r) return;
          d += this.incoming(c, i, "near");
          k += this.incoming(c, i, "skip");
          if (col.layerKind === "add") {
            // Where the summands meet: a ⊕ just before the neuron.
            const cx = r.x - 7;
            const cy = r.y + r.h / 2;
            marks.push(
              svg("circle", { cx, cy, r: 5 }),
              svg("path", { d: `M${cx - 3} ${cy}H${cx + 3}M${cx} ${cy - 3}V${cy + 3}` }),
            );
          }
        });
      }
      this.faint[c].setAttribute("d", d);
      this.skipPaths[c].setAttribute("d", k);
    });
    this.merges.replaceChildren(...marks);
  }

  // ---- hover, focus, selection ---------------------------------------------------------------

  private neuronAt(target: EventTarget | null): { col: number; index: number; el: HTMLElement } | null {
    const el = (target as Element | null)?.closest?.(".cnnx-neuron") as HTMLElement | null;
    if (!el || !this.el.contains(el)) return null;
    const col = this.cols.findIndex((c) => c.layer === el.dataset.layer);
    const index = Number(el.dataset.index);
    return col < 0 ? null : { col, index, el };
  }

  private onPointerOver = (e: PointerEvent) => {
    const n = this.neuronAt(e.target);
    if (n) this.setHover(n.col, n.index);
  };

  private onPointerLeave = () => {
    if (!this.el.contains(document.activeElement)) this.setHover(null);
    else {
      const n = this.neuronAt(document.activeElement);
      this.setHover(n ? n.col : null, n?.index ?? 0);
    }
  };

  private onFocusIn = (e: FocusEvent) => {
    const n = this.neuronAt(e.target);
    if (n) this.setHover(n.col, n.index);
  };

  private onFocusOut = (e: FocusEvent) => {
    if (!this.neuronAt(e.relatedTarget)) this.setHover(null);
  };

  private onClick = (e: MouseEvent) => {
    const n = this.neuronAt(e.target);
    if (n) this.opts.onSelect({ layer: this.cols[n.col].layer, index: n.index });
    else if (e.target === this.el || (e.target as Element | null)?.classList?.contains("cnnx-detail")) this.opts.onBackground?.();
  };

  private onKeyDown = (e: KeyboardEvent) => {
    const n = this.neuronAt(e.target);
    if (!n) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.opts.onSelect({ layer: this.cols[n.col].layer, index: n.index });
      return;
    }
    let c = n.col;
    let i = n.index;
    if (e.key === "ArrowDown") i += 1;
    else if (e.key === "ArrowUp") i -= 1;
    else if (e.key === "ArrowRight") c += 1;
    else if (e.key === "ArrowLeft") c -= 1;
    else return;
    if (c < 0 || c >= this.cols.length) return;
    i = Math.max(0, Math.min(this.cols[c].count - 1, i));
    e.preventDefault();
    if (this.reveal(c, i)) this.placeAll();
    this.neurons[c][i].el.focus();
  };

  private setHover(col: number | null, index = 0): void {
    if (this.elastic) col = null;
    this.hover = col === null ? null : { col, index };
    this.refreshHighlights();
    this.syncNeuronLegend(col, index);
  }

  /** Mark `sel` as the selected neuron (the elastic view draws it; no page is turned). */
  setSelection(sel: NeuronRef | null): void {
    this.selection = sel;
    this.refreshHighlights();
  }

  // ---- elastic transitions -------------------------------------------------------------------

  /** Focus neuron `index` of `layer` if it is shown (no scrolling). */
  focusNeuron(layer: string, index: number): void {
    const c = this.cols.findIndex((col) => col.layer === layer);
    const v = c >= 0 ? this.neurons[c][index] : undefined;
    if (v && this.rects[c]?.[index]) v.el.focus({ preventScroll: true });
  }

  /** The colour extent the overview paints neuron `index` of `layer` with (1 if unknown). */
  extentOf(layer: string, index: number): number {
    const e = this.extents.get(layer);
    return e ? (e[index] ?? e[0] ?? 1) : 1;
  }

  /** What the elastic layout is computed from: columns, layout, the neurons shown now. */
  geometry(): { cols: Column[]; layout: Layout; rects: (Rect | undefined)[][] } | null {
    return this.layout ? { cols: this.cols, layout: this.layout, rects: this.rects } : null;
  }

  /** Where every neuron, title and layer goes for `L` (null: back to the overview). */
  targets(L: ElasticLayout | null): Map<HTMLElement | SVGElement, State> {
    const out = new Map<HTMLElement | SVGElement, State>();
    const layout = this.layout;
    if (!layout) return out;
    this.elastic = L !== null;
    this.el.classList.toggle("cnnx-ov-elastic", L !== null);
    if (L === null) this.tooltip.hide();
    const hidden: State = { ...IDENTITY, opacity: 0 };
    this.cols.forEach((_, c) => {
      this.neurons[c].forEach((v, i) => {
        const r = this.rects[c]?.[i];
        const t = L?.neurons.get(`${c}:${i}`);
        if (this.extras.has(v.el)) {
          if (t) {
            this.placeAt(v.el, t);
            v.el.style.display = "";
            out.set(v.el, { ...IDENTITY, opacity: t.opacity });
          } else out.set(v.el, hidden);
          return;
        }
        if (r) out.set(v.el, t ? fit(r, t, t.opacity) : L ? { ...IDENTITY, opacity: 0 } : IDENTITY);
        else if (t) {
          // Off its column's page in the overview: drawn where the elastic view wants it.
          this.paintOne(c, i);
          this.extras.set(v.el, v.el.style.cssText);
          this.placeAt(v.el, t);
          v.el.style.display = "";
          this.animator.set(v.el, hidden);
          out.set(v.el, { ...IDENTITY, opacity: t.opacity });
        }
      });
      const title = this.titles[c];
      const cl = layout.columns[c];
      const left = parseFloat(title.style.left) || cl.x;
      const cx = left + (parseFloat(title.style.width) || cl.width) / 2;
      const tt = L?.titles[c];
      out.set(title, tt ? { ...IDENTITY, tx: tt.x - cx, opacity: tt.opacity } : IDENTITY);
      const pager = this.pagers[c];
      if (pager) out.set(pager, L ? hidden : IDENTITY);
    });
    out.set(this.legendLayer, L ? hidden : IDENTITY);
    out.set(this.edges, L ? hidden : IDENTITY);
    return out;
  }

  private placeAt(el: HTMLElement, r: Rect): void {
    const s = el.style;
    s.left = `${r.x}px`;
    s.top = `${r.y}px`;
    s.width = `${r.w}px`;
    s.height = `${r.h}px`;
  }

  /** After the transition back: the off-page neurons hidden again, every inline state gone. */
  restore(): void {
    for (const [el, css] of this.extras) {
      this.animator.reset(el);
      el.style.cssText = css;
    }
    this.extras.clear();
    if (this.layout) this.placeAll();
  }

  private refreshHighlights(): void {
    for (const el of this.el.querySelectorAll(".cnnx-ov-hover, .cnnx-ov-src, .cnnx-ov-selected, .cnnx-ov-feeds")) {
      el.classList.remove("cnnx-ov-hover", "cnnx-ov-src", "cnnx-ov-selected", "cnnx-ov-feeds");
    }
    // Selection (elastic view).
    const sel = this.selection;
    const sc = sel ? this.cols.findIndex((c) => c.layer === sel.layer) : -1;
    const selOk = sel !== null && sc >= 0 && sel.index >= 0 && sel.index < this.cols[sc].count;
    if (selOk) {
      this.neurons[sc][sel.index].el.classList.add("cnnx-ov-selected");
      for (const [p, j] of sourcesFrom(this.cols, sc, sel.index)) this.neurons[p][j].el.classList.add("cnnx-ov-feeds");
      this.selPath.setAttribute("d", this.incoming(sc, sel.index));
    } else {
      this.selPath.setAttribute("d", "");
    }
    // Hover / focus.
    const hv = this.hover;
    if (hv && hv.col < this.cols.length && this.rects[hv.col]?.[hv.index]) {
      this.neurons[hv.col][hv.index].el.classList.add("cnnx-ov-hover");
      for (const [p, j] of sourcesFrom(this.cols, hv.col, hv.index)) this.neurons[p][j].el.classList.add("cnnx-ov-src");
      this.hotPath.setAttribute("d", this.incoming(hv.col, hv.index));
      this.showTooltip(hv.col, hv.index);
    } else {
      this.hotPath.setAttribute("d", "");
      this.tooltip.hide();
    }
  }

  private showTooltip(c: number, i: number): void {
    const rect = this.rects[c]?.[i];
    if (!rect || !this.acts || !this.network) {
      this.tooltip.hide();
      return;
    }
    const col = this.cols[c];
    const v = this.acts.layers.get(col.layer);
    const lines: string[] = [];
    if (col.kind === "output") {
      const logit = v ? v.values[i] : NaN;
      lines.push(`${this.network.classes[i] ?? i} · ${col.layer} neuron ${i}`);
      lines.push(`probability ${(this.probs[i] ?? NaN).toFixed(4)}`);
      lines.push(`logit ${formatValue(logit)}`);
    } else if (col.kind === "vector") {
      lines.push(`${col.layer} · neuron ${i}`);
      lines.push(`value ${formatValue(v ? v.values[i] : NaN)}`);
      const e = this.extents.get(col.layer)?.[i];
      if (e !== undefined) lines.push(`colour ±${formatValue(safeExtent(e))}`);
    } else {
      const name = col.kind === "input" && col.count === 3 ? ` (${CHANNEL_NAMES[i]})` : "";
      lines.push(`${col.layer} · neuron ${i}${name}`);
      if (v) lines.push(`range ${formatValue(v.min[i])} … ${formatValue(v.max[i])}`);
      if (col.kind === "input") lines.push("colour grey 0 … 1");
      else {
        const e = this.extents.get(col.layer)?.[i];
        if (e !== undefined) lines.push(`colour ±${formatValue(safeExtent(e))} (${this.policy})`);
      }
    }
    // Graph networks: what the layer reads when that is not simply the column before, and where
    // it comes from in the user's code.
    if (c > 0 && (col.inputs.length !== 1 || col.inputs[0] !== c - 1)) {
      lines.push(`${col.layerKind === "add" ? "sum of" : col.layerKind === "concat" ? "channels of" : "reads"} ${col.inputs.map((p) => this.cols[p].layer).join(col.layerKind === "add" ? " + " : ", ")}`);
    }
    const spec = c > 0 ? this.network.layers.find((l) => l.name === col.layer) : undefined;
    if (spec?.source) lines.push(spec.source);
    this.tooltip.show(lines, rect, this.layout?.width ?? this.width);
  }

  // ---- painting ------------------------------------------------------------------------------

  /** Repaint every map, bar, legend and label for `acts` under `policy`. Returns the top class. */
  paint(acts: Activations, policy: ColorScale): string {
    this.acts = acts;
    this.policy = policy;
    const network = this.network;
    if (!network) return "";
    const ranges = colorRanges(network, acts, policy);
    this.ranges = ranges;
    this.extents = new Map([...ranges.layers].map(([k, r]) => [k, r.extents]));
    let top = "";
    this.gen += 1;
    this.el.dataset.paintGen = String(this.gen);
    this.paintSeen();
    this.cols.forEach((col, c) => {
      const v = acts.layers.get(col.layer);
      if (!v) return;
      const views = this.neurons[c];
      if (col.kind === "vector") {
        const extents = this.extents.get(col.layer);
        views.forEach((view, i) => {
          view.el.style.background = divergingCss(v.values[i], extents?.[i] ?? 1);
        });
      } else if (col.kind === "output") {
        this.probs = probabilities(network, acts, col.layer);
        const best = argmax(this.probs);
        top = network.classes[best] ?? String(best);
        views.forEach((view, i) => {
          const p = this.probs[i] ?? 0;
          view.bar!.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
          view.prob!.textContent = p >= 0.995 ? "1.00" : p.toFixed(2);
          view.el.classList.toggle("cnnx-ov-top", i === best);
        });
      }
    });
    this.renderLegends();
    if (this.hover) this.showTooltip(this.hover.col, this.hover.index);
    return top;
  }

  /** Paint neuron `i` of column `c` unless it shows the current generation already. */
  private paintOne(c: number, i: number): void {
    const view = this.neurons[c]?.[i];
    const col = this.cols[c];
    const v = this.acts?.layers.get(col?.layer ?? "");
    if (!view?.canvas || !v || view.painted === this.gen) return;
    const kind = col.kind === "input" ? "grey" : "diverging";
    if (!paintNeuron(view.canvas, v, i, kind, this.extents.get(col.layer)?.[i] ?? 1, this.images)) return;
    view.painted = this.gen;
    view.el.dataset.painted = String(this.gen);
    this.paints += 1;
    this.el.dataset.paints = String(this.paints);
  }

  /** Paint the maps on their column's page that are (or may be) on screen. */
  private paintSeen(): void {
    if (!this.acts) return;
    this.cols.forEach((col, c) => {
      if (col.kind !== "input" && col.kind !== "map") return;
      this.neurons[c].forEach((view, i) => {
        if (this.rects[c]?.[i] && view.seen !== false) this.paintOne(c, i);
      });
    });
  }

  private onIntersect = (entries: IntersectionObserverEntry[]) => {
    for (const e of entries) {
      const at = this.where.get(e.target);
      const view = at ? this.neurons[at[0]]?.[at[1]] : undefined;
      if (!at || !view || view.el !== e.target) continue;
      view.seen = e.isIntersecting;
      if (e.isIntersecting && this.rects[at[0]]?.[at[1]]) this.paintOne(at[0], at[1]);
    }
  };

  /** Before a picture is taken: every map on its page, seen or not. */
  private onPaintAll = () => {
    this.cols.forEach((_, c) => this.neurons[c].forEach((_, i) => this.rects[c]?.[i] && this.paintOne(c, i)));
  };

  /**
   * Legends under the columns, each with numeric ticks: grey 0…1 under the input, one RdBu
   * legend per range group (unit: per conv layer with its ReLU and pool; module: per block;
   * global: one), probability 0…1 under the output. Neuron policy: ticks of the hovered neuron
   * (else of the group's strongest neuron).
   */
  private renderLegends(): void {
    const L = this.layout;
    if (!L || !this.acts || !this.ranges) return;
    const items: HTMLElement[] = [];
    this.legendViews.clear();
    const at = (layer: string) => this.cols.findIndex((c) => c.layer === layer);
    // Right edge of the last legend in each row: a legend that would touch it goes a row down.
    const rowEnds: number[] = [];
    const place = (lg: LegendView, c0: number, c1: number) => {
      const a = L.columns[c0];
      const b = L.columns[c1];
      // At least wide enough for its end labels, centred on its columns, inside the cell.
      const w = Math.min(L.width, Math.max(b.x + b.width - a.x, LEGEND_MIN_WIDTH, lg.minWidth()));
      const left = Math.round(Math.max(0, Math.min(L.width - w, (a.x + b.x + b.width) / 2 - w / 2)));
      let row = rowEnds.findIndex((end) => left >= end + LEGEND_GAP);
      if (row < 0) row = rowEnds.length;
      rowEnds[row] = left + w;
      const s = lg.el.style;
      s.left = `${left}px`;
      s.width = `${Math.round(w)}px`;
      s.top = `${L.legendTop + row * LEGEND_ROW}px`;
      lg.fit(Math.round(w));
      items.push(lg.el);
    };
    place(new LegendView({ kind: "grey", ticks: [0, 0.5, 1], title: "input channels: grey, 0 black … 1 white" }, "cnnx-ov-legend cnnx-ov-legend-grey"), 0, 0);
    this.ranges.legends.forEach((lg, k) => {
      const c0 = at(lg.layers[0]);
      const c1 = at(lg.layers[lg.layers.length - 1]);
      if (c0 < 0 || c1 < 0) return;
      const view = new LegendView(this.legendSpec(lg), "cnnx-ov-legend cnnx-ov-legend-div");
      this.legendViews.set(k, view);
      view.el.dataset.layers = lg.layers.join(" ");
      view.el.dataset.legend = String(k);
      view.el.dataset.extent = String(lg.extent);
      place(view, c0, c1);
    });
    const out = this.cols.findIndex((c) => c.kind === "output");
    if (out >= 0) {
      place(new LegendView({ kind: "probability", ticks: [0, 0.5, 1], title: "class probability (softmax)" }, "cnnx-ov-legend cnnx-ov-legend-prob"), out, out);
    }
    this.legendLayer.replaceChildren(...items);
    this.el.style.height = `${L.height + Math.max(0, rowEnds.length - 1) * LEGEND_ROW}px`;
    if (this.hover) this.syncNeuronLegend(this.hover.col, this.hover.index);
  }

  private legendSpec(lg: Legend, neuron?: { layer: string; index: number; extent: number }): LegendSpec {
    const range = `values ${formatValue(lg.min)} … ${formatValue(lg.max)}`;
    const span = lg.layers.length > 1 ? `${lg.layers[0]} … ${lg.layers[lg.layers.length - 1]}` : lg.layers[0];
    if (lg.perNeuron) {
      const e = neuron ? neuron.extent : lg.extent;
      const who = neuron ? `${neuron.layer} neuron ${neuron.index}` : "strongest neuron";
      return {
        kind: "activations",
        ticks: legendTicks(safeExtent(e), 3),
        title: `Neuron scale: each neuron of ${span} is coloured over ±its own largest |value|; ticks: ${who}; ${range}`,
      };
    }
    const e = safeExtent(lg.extent);
    return {
      kind: "activations",
      ticks: lg.extent > 0 ? lg.ticks : legendTicks(e, lg.ticks.length === 5 ? 5 : 3),
      title: `${span}: coloured over ±${formatValue(e)} (largest |value|, ${this.policy} scale); ${range}`,
    };
  }

  /** Neuron policy: show the hovered neuron's own ticks on its group's legend. */
  private syncNeuronLegend(col: number | null, index: number): void {
    if (!this.ranges || this.policy !== "neuron") return;
    const layer = col === null ? "" : this.cols[col]?.layer;
    const r = layer ? this.ranges.layers.get(layer) : undefined;
    this.ranges.legends.forEach((lg, k) => {
      const view = this.legendViews.get(k);
      if (!view) return;
      const mine = r !== undefined && r.legend === k;
      view.update(this.legendSpec(lg, mine ? { layer, index, extent: r.extents[index] ?? 0 } : undefined));
      view.el.dataset.neuron = mine ? `${layer}/${index}` : "";
    });
  }

  destroy(): void {
    this.el.removeEventListener("pointerover", this.onPointerOver);
    this.el.removeEventListener("pointerleave", this.onPointerLeave);
    this.el.removeEventListener("focusin", this.onFocusIn);
    this.el.removeEventListener("focusout", this.onFocusOut);
    this.el.removeEventListener("click", this.onClick);
    this.el.removeEventListener("keydown", this.onKeyDown);
    this.el.removeEventListener("cnnx-paint-all", this.onPaintAll);
    this.io?.disconnect();
    this.el.remove();
  }
}
