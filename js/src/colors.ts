// Colour palettes, the one colour-range computation, and the legends' numbers. Pure functions,
// no DOM.
//
// Palettes: activations use ColorBrewer RdBu (negative red, zero near-white, positive blue),
// weights and biases BrBG (negative brown, positive teal), both interpolated exactly as
// d3-scale-chromatic's interpolateRdBu / interpolateBrBG do (d3-interpolate's basis spline
// through the 11 ColorBrewer stops, channels rounded like d3-color), so the colours match the
// original CNN Explainer's. Input channels are grey over [0, 1].
//
// Range policies (the overview's "colour scale"): hidden neurons are drawn over
// [-extent, +extent], extent = the largest |value| in the neuron's scope:
// - unit:   one range per conv (or dense) layer, shared with the activations and pooling that
//           follow it (the original's default);
// - module: one range per block, a block running up to and including a pooling layer (Tiny VGG:
//           two convolutions each);
// - global: one range for every hidden layer;
// - neuron: each neuron its own range (1-D layers: the layer's, they carry one range).

import type { Activations, LayerKind, Network } from "./payload";

export type ColorScale = "unit" | "module" | "global" | "neuron";
export const COLOR_SCALES: readonly ColorScale[] = ["unit", "module", "global", "neuron"];
export const DEFAULT_COLOR_SCALE: ColorScale = "unit";

export function isColorScale(v: unknown): v is ColorScale {
  return typeof v === "string" && (COLOR_SCALES as readonly string[]).includes(v);
}

export type RGB = [number, number, number];

/** Colour drawn for NaN and infinite values: impossible to mistake for data. */
export const INVALID_RGB: RGB = [255, 0, 255];

// ---------------------------------------------------------------------------------------------
// Palettes

/** ColorBrewer RdBu (11 classes), from most negative (dark red) to most positive (dark blue). */
const RDBU = ["#67001f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de", "#4393c3", "#2166ac", "#053061"];
/** ColorBrewer BrBG (11 classes), from most negative (dark brown) to most positive (dark teal). */
const BRBG = ["#543005", "#8c510a", "#bf812d", "#dfc27d", "#f6e8c3", "#f5f5f5", "#c7eae5", "#80cdc1", "#35978f", "#01665e", "#003c30"];

function hexToRgb(hex: string): RGB {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Uniform cubic B-spline segment (the formula of d3-interpolate's `basis`). */
function basis(t1: number, v0: number, v1: number, v2: number, v3: number): number {
  const t2 = t1 * t1;
  const t3 = t2 * t1;
  return ((1 - 3 * t1 + 3 * t2 - t3) * v0 + (4 - 6 * t2 + 3 * t3) * v1 + (1 + 3 * t1 + 3 * t2 - 3 * t3) * v2 + t3 * v3) / 6;
}

/** A basis spline through `values` over t in [0, 1], end points reflected as d3 does. */
function spline(values: number[]): (t: number) => number {
  const n = values.length - 1;
  return (t: number) => {
    let i: number;
    if (t <= 0) {
      t = 0;
      i = 0;
    } else if (t >= 1) {
      t = 1;
      i = n - 1;
    } else i = Math.floor(t * n);
    const v1 = values[i];
    const v2 = values[i + 1];
    const v0 = i > 0 ? values[i - 1] : 2 * v1 - v2;
    const v3 = i < n - 1 ? values[i + 2] : 2 * v2 - v1;
    return basis((t - i / n) * n, v0, v1, v2, v3);
  };
}

/** d3-color's channel rounding: round, clamp to [0, 255]. */
function channel(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v) || 0));
}

/** d3-interpolate's interpolateRgbBasis over hex stops, as integer RGB. */
function rgbBasis(stops: string[]): (t: number) => RGB {
  const rgb = stops.map(hexToRgb);
  const r = spline(rgb.map((c) => c[0]));
  const g = spline(rgb.map((c) => c[1]));
  const b = spline(rgb.map((c) => c[2]));
  return (t) => [channel(r(t)), channel(g(t)), channel(b(t))];
}

const LUT_SIZE = 1024;

export interface Palette {
  /** ColorBrewer name. */
  readonly name: "RdBu" | "BrBG";
  /** What it colours, for legends and tooltips. */
  readonly role: "activations" | "weights";
  /** The colour at t in [0, 1] (0 = most negative), exactly as d3's interpolator. */
  at(t: number): RGB;
  /** RGBA lookup table, index 0 = -extent, last = +extent. */
  readonly lut: Uint8ClampedArray;
}

function makePalette(name: Palette["name"], role: Palette["role"], stops: string[]): Palette {
  const at = rgbBasis(stops);
  const lut = new Uint8ClampedArray(LUT_SIZE * 4);
  for (let i = 0; i < LUT_SIZE; i++) {
    const [r, g, b] = at(i / (LUT_SIZE - 1));
    lut.set([r, g, b, 255], i * 4);
  }
  return { name, role, at, lut };
}

/** Activations: RdBu (as the original's overview and elastic views). */
export const ACTIVATION_PALETTE: Palette = makePalette("RdBu", "activations", RDBU);
/** Weights and biases: BrBG (as the original's kernel glyphs), distinct from activations. */
export const WEIGHT_PALETTE: Palette = makePalette("BrBG", "weights", BRBG);

/** RGBA lookup table of the activation palette (kept for callers that index it directly). */
export const DIVERGING_LUT = ACTIVATION_PALETTE.lut;

/** A usable extent: > 0 and finite (an all-zero map is drawn at the palette's middle, not NaN). */
export function safeExtent(extent: number): number {
  return Number.isFinite(extent) && extent > 0 ? extent : 1;
}

/** LUT index of `v` on a diverging palette over [-extent, extent] (clamped). */
export function divergingIndex(v: number, extent: number): number {
  const t = (v / extent + 1) / 2;
  const i = Math.round(t * (LUT_SIZE - 1));
  return i < 0 ? 0 : i > LUT_SIZE - 1 ? LUT_SIZE - 1 : i;
}

/** CSS colour of `v` over [-extent, extent] on `palette` (activations by default). */
export function divergingCss(v: number, extent: number, palette: Palette = ACTIVATION_PALETTE): string {
  if (!Number.isFinite(v)) return `rgb(${INVALID_RGB.join(",")})`;
  const i = divergingIndex(v, safeExtent(extent)) * 4;
  const lut = palette.lut;
  return `rgb(${lut[i]},${lut[i + 1]},${lut[i + 2]})`;
}

/** CSS colour of a weight or bias `v` over [-extent, extent] (BrBG). */
export function weightCss(v: number, extent: number): string {
  return divergingCss(v, extent, WEIGHT_PALETTE);
}

/**
 * CSS linear-gradient of `palette`, left = negative: 33 samples of the spline, so the bar
 * shows the same colours as the maps (a gradient through the 11 stops alone would not).
 */
export function divergingGradientCss(palette: Palette = ACTIVATION_PALETTE, direction = "to right"): string {
  const n = 33;
  const stops: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = i / (n - 1);
    stops.push(`rgb(${palette.at(t).join(",")}) ${(t * 100).toFixed(2)}%`);
  }
  return `linear-gradient(${direction}, ${stops.join(", ")})`;
}

/** CSS linear-gradient of the input channels' grey scale (0 black, 1 white). */
export function greyGradientCss(direction = "to right"): string {
  return `linear-gradient(${direction}, rgb(0,0,0), rgb(255,255,255))`;
}

/**
 * Paint `values` (one map, row-major) into `out` (RGBA, same pixel count).
 * kind "grey": [0, 1] -> black..white; "diverging": [-extent, extent] -> RdBu (activations);
 * "weights": [-extent, extent] -> BrBG.
 */
export function paintMap(
  values: ArrayLike<number>,
  out: Uint8ClampedArray,
  kind: "grey" | "diverging" | "weights",
  extent: number,
): void {
  const n = values.length;
  if (kind === "grey") {
    for (let p = 0, o = 0; p < n; p++, o += 4) {
      const v = values[p];
      if (!Number.isFinite(v)) {
        out[o] = INVALID_RGB[0];
        out[o + 1] = INVALID_RGB[1];
        out[o + 2] = INVALID_RGB[2];
      } else {
        const g = v <= 0 ? 0 : v >= 1 ? 255 : Math.round(v * 255);
        out[o] = g;
        out[o + 1] = g;
        out[o + 2] = g;
      }
      out[o + 3] = 255;
    }
    return;
  }
  const e = safeExtent(extent);
  const scale = (LUT_SIZE - 1) / (2 * e);
  const lut = kind === "weights" ? WEIGHT_PALETTE.lut : ACTIVATION_PALETTE.lut;
  for (let p = 0, o = 0; p < n; p++, o += 4) {
    const v = values[p];
    if (v !== v || v === Infinity || v === -Infinity) {
      out[o] = INVALID_RGB[0];
      out[o + 1] = INVALID_RGB[1];
      out[o + 2] = INVALID_RGB[2];
      out[o + 3] = 255;
      continue;
    }
    let i = Math.round((v + e) * scale);
    if (i < 0) i = 0;
    else if (i > LUT_SIZE - 1) i = LUT_SIZE - 1;
    i *= 4;
    out[o] = lut[i];
    out[o + 1] = lut[i + 1];
    out[o + 2] = lut[i + 2];
    out[o + 3] = 255;
  }
}

/** WCAG relative luminance of an sRGB colour (0–255 channels). */
export function luminance([r, g, b]: RGB): number {
  const lin = (c: number) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/**
 * Black or white, whichever reads better on a cell coloured `background` ("rgb(r,g,b)" as the
 * palettes return, or an RGB triple): at least 4.5:1 on every colour of the palettes.
 */
export function textColorOn(background: string | RGB): "#000" | "#fff" {
  const rgb: RGB = typeof background === "string" ? ((background.match(/\d+(\.\d+)?/g) ?? ["0", "0", "0"]).slice(0, 3).map(Number) as RGB) : background;
  const l = luminance(rgb);
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000" : "#fff";
}

/** Largest |value| of an array (non-finite entries ignored; 0 for none): a weight legend's extent. */
export function absMaxOf(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]);
    if (a > m && a !== Infinity) m = a;
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Ranges

/** What the range computation needs of a hidden layer: its kind, and per-neuron min/max. */
export interface RangeSource {
  layer: string;
  kind: LayerKind;
  /** Spatial (a map per neuron) or 1-D. */
  spatial: boolean;
  /** Per-neuron min/max; a 1-D layer has one entry shared by all its neurons. */
  min: number[];
  max: number[];
  count: number;
}

/** Largest |value| of a finite pair (non-finite entries are ignored). */
function absMax(lo: number, hi: number): number {
  let m = 0;
  if (Number.isFinite(lo)) m = Math.max(m, Math.abs(lo));
  if (Number.isFinite(hi)) m = Math.max(m, Math.abs(hi));
  return m;
}

/**
 * Unit and block (module) number of each source, from the layer kinds only:
 * a unit starts at each conv or dense layer and takes the activations and pools after it;
 * a block starts at the first layer after a pooling layer, or where maps turn into vectors.
 */
export function rangeGroups(sources: readonly RangeSource[]): { unit: number[]; block: number[] } {
  const unit: number[] = [];
  const block: number[] = [];
  let u = 0;
  let b = 0;
  sources.forEach((s, i) => {
    const prev = sources[i - 1];
    if (prev) {
      if (s.kind === "conv" || s.kind === "dense") u += 1;
      if (prev.kind === "pool" || prev.spatial !== s.spatial) b += 1;
    }
    unit.push(u);
    block.push(b);
  });
  return { unit, block };
}

export interface LayerRange {
  /** Extent used to colour each neuron (drawn over [-extent, extent]). */
  extents: Float64Array;
  /** True min/max of the layer over all its neurons. */
  min: number;
  max: number;
  /** Index of the legend (in `ColorRanges.legends`) that covers this layer. */
  legend: number;
}

export interface Legend {
  /** Hidden layers the legend covers, in order (the overview puts it under their columns). */
  layers: string[];
  /**
   * The scale's extent: ticks at -extent … +extent. The true largest |value| of the layers it
   * covers (neuron policy: of their strongest neuron; each neuron has its own, see `perNeuron`).
   */
  extent: number;
  /** Tick values: -extent, 0, +extent (module and global add ±extent/2, as the original). */
  ticks: number[];
  /** True min/max of the values it covers, for this image. */
  min: number;
  max: number;
  /** Neuron policy: every neuron is coloured over its own ±max|value|. */
  perNeuron: boolean;
}

export interface ColorRanges {
  policy: ColorScale;
  /** Every hidden layer's range (not the input or output layers). */
  layers: Map<string, LayerRange>;
  legends: Legend[];
}

/**
 * The colour ranges of every hidden layer under `policy`: each neuron's extent, each layer's
 * true min/max, and the legends (unit and neuron: one per unit; module: one per block; global:
 * one). The only range computation: the overview and the explanation views both use it.
 */
export function computeRanges(sources: readonly RangeSource[], policy: ColorScale): ColorRanges {
  const { unit, block } = rangeGroups(sources);
  const group = policy === "module" ? block : policy === "global" ? sources.map(() => 0) : unit;
  const own = sources.map((s) => {
    let layerMax = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < s.min.length; i++) {
      layerMax = Math.max(layerMax, absMax(s.min[i], s.max[i]));
      if (Number.isFinite(s.min[i])) lo = Math.min(lo, s.min[i]);
      if (Number.isFinite(s.max[i])) hi = Math.max(hi, s.max[i]);
    }
    const per = new Float64Array(s.count);
    for (let i = 0; i < s.count; i++) per[i] = s.min.length === s.count ? absMax(s.min[i], s.max[i]) : layerMax;
    return { per, layerMax, min: lo, max: hi };
  });
  const legends: Legend[] = [];
  const layers = new Map<string, LayerRange>();
  sources.forEach((s, k) => {
    if (k === 0 || group[k] !== group[k - 1]) {
      legends.push({ layers: [], extent: 0, ticks: [], min: Infinity, max: -Infinity, perNeuron: policy === "neuron" });
    }
    const lg = legends[legends.length - 1];
    const o = own[k];
    lg.layers.push(s.layer);
    lg.extent = Math.max(lg.extent, o.layerMax);
    lg.min = Math.min(lg.min, o.min);
    lg.max = Math.max(lg.max, o.max);
  });
  let li = -1;
  sources.forEach((s, k) => {
    if (k === 0 || group[k] !== group[k - 1]) li += 1;
    const o = own[k];
    const extents = policy === "neuron" ? o.per : new Float64Array(s.count).fill(legends[li].extent);
    layers.set(s.layer, { extents, min: o.min, max: o.max, legend: li });
  });
  for (const lg of legends) lg.ticks = legendTicks(lg.extent, policy === "module" || policy === "global" ? 5 : 3);
  return { policy, layers, legends };
}

/** Symmetric ticks over [-extent, extent]: 3 (-e, 0, e) or 5 (adds ±e/2). */
export function legendTicks(extent: number, count: 3 | 5): number[] {
  const e = extent;
  return count === 5 ? [-e, -e / 2, 0, e / 2, e] : [-e, 0, e];
}

/**
 * The hidden layers' range sources of `network` for `acts`: every layer but flatten, softmax
 * and the output (the last dense layer) and what follows it.
 */
export function rangeSources(network: Network, acts: Activations): RangeSource[] {
  let lastDense = -1;
  network.layers.forEach((l, i) => {
    if (l.kind === "dense") lastDense = i;
  });
  const out: RangeSource[] = [];
  network.layers.forEach((l, i) => {
    if (l.kind === "flatten" || l.kind === "softmax" || (lastDense >= 0 && i >= lastDense)) return;
    const v = acts.layers.get(l.name);
    if (!v) return;
    const spatial = l.output_shape.length === 3;
    const count = spatial ? l.output_shape[2] : l.output_shape[0];
    out.push({ layer: l.name, kind: l.kind, spatial, min: v.min, max: v.max, count });
  });
  return out;
}

/** The colour ranges of `network`'s hidden layers for `acts` under `policy`. */
export function colorRanges(network: Network, acts: Activations, policy: ColorScale): ColorRanges {
  return computeRanges(rangeSources(network, acts), policy);
}

/** Colour extent of neuron `index` of `layer` (1 for a layer without a range, e.g. the input). */
export function extentOf(ranges: ColorRanges, layer: string, index: number): number {
  const r = ranges.layers.get(layer);
  return r ? safeExtent(r.extents[index] ?? r.extents[0] ?? 1) : 1;
}

/** Short, readable number for labels: 3 significant digits, no trailing noise. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000 || a < 0.001) return v.toExponential(2);
  const s = v.toPrecision(3);
  return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
}
