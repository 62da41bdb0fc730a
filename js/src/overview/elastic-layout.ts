// Where everything goes in the elastic explanation view. Pure: the overview's columns, its
// layout and the neurons it shows, plus the selected neuron, in; a target rectangle and opacity
// for every overview neuron and title, and the rectangles of the parts the explanation adds
// (kernels, intermediate maps, ⊕, flatten column, logit marks, formula card...), out. Nothing
// here knows Tiny VGG: the layout is generated from the layer list, so the user's own networks
// (any depth, 1-channel inputs, hidden dense layers) open up the same way.

import type { Column } from "./columns";
import { sourcesFrom } from "./columns";
import type { Layout, Rect } from "./layout";

/**
 * - conv: input channels, kernels, one intermediate map per channel, ⊕ with bias, the output;
 * - pair: an activation, pooling, batch-norm, global-pooling or concat neuron next to the neuron
 *   it reads; an add neuron next to its summands (one per input, stacked);
 * - dense / output: the previous layer flattened into a column, its weights as edges into ⊕,
 *   the value (output: the logits, then softmax);
 * - input: the image's channels and the colour image.
 */
export type ElasticKind = "conv" | "pair" | "dense" | "output" | "input";

export interface Placed extends Rect {
  opacity: number;
}

export interface Note {
  x: number;
  y: number;
  w: number;
  text: string;
  align: "left" | "center" | "right";
  /** A heading (bold) rather than an annotation (italic). */
  head?: boolean;
}

export interface ElasticLayout {
  kind: ElasticKind;
  sel: number;
  /** The column the selected neuron reads from (-1 for the input). */
  src: number;
  index: number;
  width: number;
  height: number;
  /** Target of each overview neuron that stays visible, keyed `${column}:${index}`. */
  neurons: Map<string, Placed>;
  /** Centre x and opacity of each column title. */
  titles: { x: number; opacity: number }[];
  /** Source neurons shown as rows (conv, input), this page of them. */
  rows: number[];
  page: number;
  pages: number;
  inputs: Rect[];
  kernels: Rect[];
  inters: Rect[];
  plus: Rect | null;
  bias: Rect | null;
  /** The selected neuron, enlarged. */
  hero: Rect;
  /** The neuron it reads (pair; the first of them for an add). */
  heroSrc: Rect | null;
  /** Every neuron it reads (pair), enlarged, and which they are as [column, index]. */
  heroSrcs: Rect[];
  srcs: [number, number][];
  /** Where the function / window of a pair is written. */
  op: Rect | null;
  flatten: Rect | null;
  /** Region of the weight edges (dense / output). */
  weights: Rect | null;
  /** One mark per output neuron (dense / output). */
  marks: Rect[];
  softmax: Rect | null;
  image: Rect | null;
  /** Where the formula card opens. */
  card: Rect;
  legendTop: number;
  notes: Note[];
}

export interface ElasticSpec {
  cols: Column[];
  base: Layout;
  /** The overview's neuron rectangles (undefined: not on the shown page). */
  rects: (Rect | undefined)[][];
  sel: number;
  index: number;
  /** Page of source rows (conv with more input channels than fit). */
  page?: number;
}

const FADED = 0.2;
const PAD = 10;

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

export function elasticKind(cols: readonly Column[], c: number): ElasticKind | null {
  const col = cols[c];
  if (!col) return null;
  if (col.kind === "input") return "input";
  if (col.kind === "output") return "output";
  if (col.layerKind === "conv") return "conv";
  if (col.layerKind === "dense") return "dense";
  const pairs = ["activation", "pool", "batchnorm", "add", "concat", "global_pool"];
  if (pairs.includes(col.layerKind)) return c > 0 && col.inputs.length > 0 ? "pair" : null;
  return null;
}

/** Most rows of source maps shown at once (the overview's own row count). */
export function rowsFitting(base: Layout): number {
  return Math.max(1, Math.round(base.bodyHeight / base.rowPitch));
}

/** Aspect-preserving box of a (h, w) map inside a side-`s` square centred at (cx, cy). */
function mapBox(shape: number[], s: number, cx: number, cy: number): Rect {
  let w = s;
  let h = s;
  if (shape.length === 3 && shape[0] !== shape[1]) {
    if (shape[0] > shape[1]) w = Math.max(2, (s * shape[1]) / shape[0]);
    else h = Math.max(2, (s * shape[0]) / shape[1]);
  }
  return { x: Math.round(cx - w / 2), y: Math.round(cy - h / 2), w: Math.round(w), h: Math.round(h) };
}

interface Ctx {
  spec: ElasticSpec;
  out: ElasticLayout;
}

/**
 * Squeeze columns `list` into [x0, x1): small faded thumbnails at their overview heights.
 * Returns the right edge used. `skip` is a neuron index left out (the selected one, drawn large).
 */
function strip(c: Ctx, list: number[], x0: number, x1: number, skip = -1): number {
  const { cols, base, rects } = c.spec;
  if (!list.length) return x0;
  const gap = 4;
  const right = base.width - PAD;
  const avail = Math.max(0, Math.min(x1, right) - x0);
  const t = clamp(Math.floor(avail / list.length) - gap, 4, Math.max(6, Math.round(base.node * 0.45)));
  // In a narrow cell the faded columns may overlap: they are context, and must stay inside.
  const pitch = list.length > 1 ? Math.min(t + gap, Math.max(0, (avail - t) / (list.length - 1))) : 0;
  let x = Math.min(x0, right - t);
  for (const ci of list) {
    const col = cols[ci];
    rects[ci].forEach((r, i) => {
      if (!r || i === skip) return;
      const h = col.kind === "output" ? Math.max(4, Math.round(t * 0.6)) : t;
      c.out.neurons.set(`${ci}:${i}`, { x, y: Math.round(r.y + r.h / 2 - h / 2), w: t, h, opacity: FADED });
    });
    c.out.titles[ci] = { x: x + t / 2, opacity: 0 };
    x += pitch;
  }
  return list.length ? x - pitch + t + gap : x0;
}

function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
}

function empty(spec: ElasticSpec, kind: ElasticKind, src: number): ElasticLayout {
  const { base, cols, sel, index } = spec;
  return {
    kind,
    sel,
    src,
    index,
    width: base.width,
    height: base.height,
    neurons: new Map(),
    titles: cols.map((_, i) => ({ x: base.columns[i].x + base.columns[i].width / 2, opacity: 0 })),
    rows: [],
    page: 0,
    pages: 1,
    inputs: [],
    kernels: [],
    inters: [],
    plus: null,
    bias: null,
    hero: { x: 0, y: 0, w: 0, h: 0 },
    heroSrc: null,
    heroSrcs: [],
    srcs: [],
    op: null,
    flatten: null,
    weights: null,
    marks: [],
    softmax: null,
    image: null,
    card: { x: 0, y: base.bodyTop, w: 0, h: base.bodyHeight },
    legendTop: base.legendTop,
    notes: [],
  };
}

/** A card of at least `minW` px at [x, right edge); when too narrow, over the left instead. */
function cardAt(base: Layout, x: number, y: number, h: number, minW = 320): Rect {
  const right = base.width - PAD;
  if (right - x >= minW) return { x, y, w: right - x, h };
  const w = Math.min(minW, base.width - 2 * PAD);
  return { x: Math.max(PAD, right - w), y, w, h };
}

function convLayout(c: Ctx): void {
  const { spec, out } = c;
  const { cols, base, sel, index } = spec;
  const W = base.width;
  const top = base.bodyTop;
  const BH = base.bodyHeight;
  // The column it reads: the one before, or one further back (a branch of a graph network).
  const src = out.src;
  const srcCol = cols[src];
  // The input channels it reads: all, or only its group's (grouped / depthwise conv).
  const reads = sourcesFrom(cols, sel, index).map(([, j]) => j);
  const perPage = Math.min(reads.length, rowsFitting(base));
  out.pages = Math.ceil(reads.length / perPage);
  out.page = clamp(spec.page ?? 0, 0, out.pages - 1);
  out.rows = reads.slice(out.page * perPage, Math.min(reads.length, (out.page + 1) * perPage));
  const left = range(0, src);
  const leftEnd = strip(c, left, PAD, PAD + Math.min(0.18 * W, left.length * (base.node * 0.45 + 4)));
  const pitch = BH / Math.max(1, out.rows.length);
  // A grouped conv reads few channels: its rows get the room (a sequential conv is as before).
  const grow = cols[sel].link === "group" ? clamp(6 / Math.max(1, out.rows.length), 1, 2.5) : 1;
  const m = Math.round(Math.min(pitch * 0.74, clamp(base.node * 1.3 * grow, 24, 84 * grow)));
  const kg = clamp(Math.round(m * 0.42), 14, 30);
  const xIn = Math.round(leftEnd + 18);
  // Room between the columns for their titles when the maps are small.
  const xK = xIn + m + Math.max(14, Math.round(40 - m / 2));
  const xInt = xK + kg + 14;
  const xPlus = Math.round(xInt + m + clamp(W * 0.05, 36, 72));
  const cy = top + BH / 2;
  out.rows.forEach((i, k) => {
    const y = top + pitch * (k + 0.5);
    const r = mapBox(srcCol.shape, m, xIn + m / 2, y);
    out.inputs.push(r);
    out.neurons.set(`${src}:${i}`, { ...r, opacity: 1 });
    out.kernels.push({ x: xK, y: Math.round(y - kg / 2), w: kg, h: kg });
    out.inters.push(mapBox(cols[sel].shape, m, xInt + m / 2, y));
  });
  out.plus = { x: xPlus, y: Math.round(cy - 10), w: 20, h: 20 };
  out.bias = { x: xPlus + 5, y: Math.round(cy + 26), w: 10, h: 10 };
  const O = Math.round(clamp(Math.min(BH * 0.42, m * 2.6), 56, 160));
  const xHero = xPlus + 20 + 30;
  out.hero = mapBox(cols[sel].shape, O, xHero + O / 2, cy);
  out.neurons.set(`${sel}:${index}`, { ...out.hero, opacity: 1 });
  const rightStart = xHero + O + 18;
  strip(c, [sel, ...range(sel + 1, cols.length)], rightStart, W - PAD, index);
  out.titles[src] = { x: xIn + m / 2, opacity: 1 };
  out.titles[sel] = { x: out.hero.x + out.hero.w / 2, opacity: 1 };
  out.card = cardAt(base, rightStart + 6, top, BH);
  const font = 11;
  out.notes.push(
    { x: xK + kg / 2, y: out.kernels[0].y - font * 1.3 - 3, w: kg + 40, text: "kernel", align: "center" },
    { x: xInt + m / 2, y: base.titleTop, w: Math.max(m + 40, 120), text: "intermediate", align: "center", head: true },
    { x: xInt + m / 2, y: base.titleTop + font * 1.3, w: Math.max(m + 40, 120), text: "channel ∗ kernel", align: "center" },
    { x: xPlus + 10, y: out.plus.y - 3 * font - 8, w: 150, text: "add the intermediate maps, then the bias", align: "center" },
    { x: xPlus + 10, y: out.bias.y + 14, w: 60, text: "bias", align: "center" },
    { x: out.hero.x + out.hero.w / 2, y: out.hero.y + out.hero.h + 6, w: O + 40, text: "click a map for the numbers", align: "center" },
  );
  const col = cols[sel];
  if (col.link === "group" && out.inputs.length) {
    // Which channels its group reads (the others are not used by this neuron).
    const last = out.inputs[out.inputs.length - 1];
    const g = Math.floor(index / (col.count / col.groups));
    const text = reads.length === 1 ? `only channel ${reads[0]} (group ${g + 1} of ${col.groups})` : `only channels ${reads[0]}–${reads[reads.length - 1]} (group ${g + 1} of ${col.groups})`;
    out.notes.push({ x: last.x + last.w / 2, y: last.y + last.h + 6, w: Math.max(m + 40, 130), text, align: "center" });
  }
}

function pairLayout(c: Ctx): void {
  const { spec, out } = c;
  const { cols, base, rects, sel, index } = spec;
  const W = base.width;
  const top = base.bodyTop;
  const BH = base.bodyHeight;
  // Its input columns (every input of a concat, to show where the channel comes from) and the
  // neurons it reads (one per input of an add).
  const inputs = cols[sel].inputs;
  out.srcs = sourcesFrom(cols, sel, index);
  const first = Math.min(...inputs);
  const left = range(0, first);
  const leftEnd = strip(c, left, PAD, PAD + Math.min(0.18 * W, left.length * (base.node * 0.45 + 4)));
  const m = base.node;
  // Several input columns side by side: far enough apart for their titles.
  const step = inputs.length > 1 ? Math.max(m + 26, 76) : m + 26;
  const xs = inputs.map((_, k) => Math.round(leftEnd + 18) + k * step);
  const xA = xs[0];
  const xB = xs[xs.length - 1] + step;
  for (const [ci, x] of [...inputs.map((ci, k) => [ci, xs[k]] as const), [sel, xB] as const]) {
    rects[ci].forEach((r, i) => {
      if (!r) return;
      out.neurons.set(`${ci}:${i}`, { x: Math.round(x + (m - r.w) / 2), y: r.y, w: r.w, h: r.h, opacity: 0.55 });
    });
    out.titles[ci] = { x: x + m / 2, opacity: 1 };
  }
  const n = Math.max(1, out.srcs.length);
  const srcCol = cols[out.srcs[0]?.[0] ?? out.src];
  const vector = srcCol.kind === "vector";
  // Room between stacked maps for the label of the one below.
  const gapY = n > 1 ? 22 : 16;
  const room = (BH * 0.62 - (n - 1) * gapY) / n;
  const H = vector ? 40 : Math.round(clamp(Math.min(n > 1 ? room : BH * 0.34, (W - xB) * 0.22), n > 1 ? 40 : 48, 150));
  const opW = clamp(Math.round(H * 0.8), 70, 110);
  const xHs = xB + m + 44;
  const yH = top + 22;
  const stackH = n * H + (n - 1) * gapY;
  const cy = yH + stackH / 2;
  out.srcs.forEach(([ci, j], k) => {
    const r = mapBox(cols[ci].shape, H, xHs + H / 2, yH + k * (H + gapY) + H / 2);
    out.heroSrcs.push(r);
    out.neurons.set(`${ci}:${j}`, { ...r, opacity: 1 });
  });
  out.heroSrc = out.heroSrcs[0] ?? null;
  out.op = { x: xHs + H + 8, y: Math.round(cy - H / 2), w: opW, h: H };
  const outSide = cols[sel].kind === "vector" && !vector ? Math.min(H, 40) : H;
  out.hero = mapBox(cols[sel].shape, outSide, xHs + H + 16 + opW + outSide / 2, cy);
  out.neurons.set(`${sel}:${index}`, { ...out.hero, opacity: 1 });
  const rightStart = out.hero.x + out.hero.w + 20;
  strip(c, range(sel + 1, cols.length), rightStart, W - PAD);
  const cardTop = yH + stackH + 30;
  if (n > 1 && (W - PAD - rightStart >= 320 || top + BH - cardTop < 160)) {
    // Stacked summands leave little room below: the card goes beside them (or, in a narrow
    // cell, over the right of the view).
    out.card = cardAt(base, rightStart + 6, top, BH);
  } else {
    const cardX = W - PAD - xHs >= 320 ? xHs : PAD;
    out.card = { x: cardX, y: cardTop, w: W - PAD - cardX, h: top + BH - cardTop };
  }
  out.notes.push({ x: out.hero.x + out.hero.w / 2, y: yH + stackH + 6, w: H + 60, text: "click a map for the numbers", align: "center" });
  const kind = cols[sel].layerKind;
  if (kind === "add" || kind === "concat") {
    // Which layer each enlarged map is (the column titles are at the side).
    out.srcs.forEach(([ci, j], k) => {
      const r = out.heroSrcs[k];
      out.notes.push({ x: r.x + r.w / 2, y: r.y - 16, w: Math.max(r.w, 120), text: `${cols[ci].layer} ${j}`, align: "center" });
    });
  }
}

function denseLayout(c: Ctx, output: boolean): void {
  const { spec, out } = c;
  const { cols, base, rects, sel, index } = spec;
  const W = base.width;
  const top = base.bodyTop;
  const BH = base.bodyHeight;
  const src = out.src;
  const srcCol = cols[src];
  const spatial = srcCol.kind === "map" || srcCol.kind === "input";
  const left = range(0, src);
  const leftEnd = strip(c, left, PAD, PAD + Math.min((W < 700 ? 0.1 : 0.16) * W, left.length * (base.node * 0.45 + 4)));
  const m = base.columns[src].width;
  const xS = Math.round(leftEnd + 16);
  rects[src].forEach((r, i) => {
    if (r) out.neurons.set(`${src}:${i}`, { x: Math.round(xS + (m - r.w) / 2), y: r.y, w: r.w, h: r.h, opacity: 1 });
  });
  out.titles[src] = { x: xS + m / 2, opacity: 1 };
  let x = xS + m;
  if (spatial) {
    const xF = x + clamp(Math.round(W * 0.07), 36, 90);
    out.flatten = { x: xF, y: top, w: 12, h: BH };
    x = xF + 12;
    out.notes.push({ x: xF + 6, y: base.titleTop, w: 90, text: "flatten", align: "center", head: true });
  }
  const outCol = base.columns[sel];
  const outW = output ? outCol.width : 0;
  const xOut = W - PAD - outW;
  const xMarks = Math.round(output ? xOut - clamp(W * 0.17, 64, 200) : Math.min(xOut - 60, x + clamp(W * 0.3, 140, 360)));
  const xPlus = xMarks - 46;
  out.weights = { x, y: top, w: Math.max(10, xPlus - x), h: BH };
  // One mark per neuron of the selected layer: aligned with the output column's rows.
  const n = cols[sel].count;
  const shown = rects[sel].map((r, i) => (r ? i : -1)).filter((i) => i >= 0);
  const pitch = BH / Math.max(1, output ? Math.min(n, 10) : shown.length);
  const mark = clamp(Math.round(pitch * 0.4), 8, 18);
  const markY = (i: number) => {
    const r = rects[sel][i];
    if (output && r) return r.y + r.h / 2;
    const slot = shown.indexOf(i);
    return top + pitch * ((slot >= 0 ? slot : 0) + 0.5);
  };
  for (let i = 0; i < n; i++) {
    const r = rects[sel][i];
    if (!r && i !== index) {
      out.marks.push({ x: 0, y: 0, w: 0, h: 0 });
      continue;
    }
    const y = i === index && !r && !output ? top + BH / 2 : markY(i);
    out.marks.push({ x: xMarks, y: Math.round(y - mark / 2), w: mark, h: mark });
  }
  const my = out.marks[index].y + mark / 2;
  out.plus = { x: xPlus, y: Math.round(my - 10), w: 20, h: 20 };
  out.bias = { x: xPlus + 5, y: Math.round(my - 36), w: 10, h: 10 };
  out.notes.push({ x: xMarks + mark / 2, y: base.titleTop, w: 80, text: output ? "logit" : cols[sel].layer, align: "center", head: true });
  if (output) {
    const xSoft = xMarks + mark + 22;
    out.softmax = { x: xSoft, y: Math.round(top + BH / 2 - 13), w: Math.max(48, Math.min(80, xOut - xSoft - 14)), h: 26 };
    rects[sel].forEach((r, i) => {
      if (r) out.neurons.set(`${sel}:${i}`, { x: xOut, y: r.y, w: r.w, h: r.h, opacity: 1 });
    });
    out.titles[sel] = { x: xOut + outW / 2, opacity: 1 };
    out.hero = rects[sel][index] ? { ...out.neurons.get(`${sel}:${index}`)! } : { ...out.marks[index] };
    strip(c, range(sel + 1, cols.length), W - PAD, W - PAD);
    out.notes.push({ x: out.softmax.x + out.softmax.w / 2, y: out.softmax.y - 34, w: 150, text: "click for the softmax", align: "center" });
  } else {
    out.hero = { ...out.marks[index] };
    // The selected neuron's own cell becomes its mark; the others of its layer are faded there.
    rects[sel].forEach((r, i) => {
      const mk = out.marks[i];
      if (r || i === index) out.neurons.set(`${sel}:${i}`, { ...mk, opacity: i === index ? 1 : FADED });
    });
    out.titles[sel] = { x: xMarks + mark / 2, opacity: 0 };
    strip(c, range(sel + 1, cols.length), xMarks + mark + 30, W - PAD);
  }
  out.notes.push({ x: xPlus + 10, y: out.plus.y + 26, w: 150, text: "Σ input × weight + bias; click ⊕ for the numbers", align: "center" });
  // Over the faded layers on the left (and the start of the flattened column when narrow).
  const cardW = Math.max((out.flatten ? out.flatten.x - 8 : xS + m + 8) - PAD, clamp(0.36 * W, 330, 440));
  out.card = { x: PAD, y: top, w: Math.min(cardW, W - 2 * PAD), h: BH };
}

function inputLayout(c: Ctx): void {
  const { spec, out } = c;
  const { cols, base, index } = spec;
  const W = base.width;
  const top = base.bodyTop;
  const BH = base.bodyHeight;
  const col = cols[0];
  out.rows = range(0, col.count);
  const pitch = BH / Math.max(1, col.count);
  const Hc = Math.round(clamp(Math.min(pitch * 0.78, W * 0.14), 28, 150));
  const xC = PAD + 56;
  out.rows.forEach((i, k) => {
    const r = mapBox(col.shape, Hc, xC + Hc / 2, top + pitch * (k + 0.5));
    out.inputs.push(r);
    out.neurons.set(`0:${i}`, { ...r, opacity: 1 });
  });
  out.hero = out.inputs[index] ?? out.inputs[0];
  const HI = Math.round(clamp(Math.min(BH * 0.6, W * 0.24), 56, 240));
  const xI = xC + Hc + clamp(Math.round(W * 0.08), 50, 110);
  out.image = mapBox(col.shape, HI, xI + HI / 2, top + BH / 2);
  out.titles[0] = { x: xC + Hc / 2, opacity: 1 };
  const rightStart = out.image.x + out.image.w + 24;
  strip(c, range(1, cols.length), rightStart, W - PAD);
  out.card = cardAt(base, rightStart + 6, top, BH, 280);
  out.notes.push(
    { x: out.image.x + out.image.w / 2, y: base.titleTop, w: HI + 40, text: "the image", align: "center", head: true },
    { x: out.image.x + out.image.w / 2, y: out.image.y + out.image.h + 6, w: HI + 40, text: col.count === 3 ? "Red + Green + Blue" : "one channel, drawn grey", align: "center" },
  );
}

/** The elastic layout for the selected neuron, or null when the layer has no elastic view. */
export function elasticLayout(spec: ElasticSpec): ElasticLayout | null {
  const kind = elasticKind(spec.cols, spec.sel);
  if (!kind) return null;
  const src = kind === "input" ? -1 : (spec.cols[spec.sel].inputs[0] ?? spec.sel - 1);
  const c: Ctx = { spec, out: empty(spec, kind, src) };
  if (kind === "conv") convLayout(c);
  else if (kind === "pair") pairLayout(c);
  else if (kind === "input") inputLayout(c);
  else denseLayout(c, kind === "output");
  return c.out;
}
