// Colour scales for the heatmaps and the range policy ("unit" / "module" / "global").
//
// Hidden layers use a diverging scale centred on 0 (negative red, zero white, positive blue,
// like the original CNN Explainer), symmetric around zero: a neuron is drawn over
// [-extent, +extent] where extent is the largest |value| in its scope (the neuron, its module,
// or every hidden layer). Input channels are grey over [0, 1]. Pure functions, no DOM.

export type ColorScale = "unit" | "module" | "global";
export const COLOR_SCALES: readonly ColorScale[] = ["unit", "module", "global"];

export function isColorScale(v: unknown): v is ColorScale {
  return v === "unit" || v === "module" || v === "global";
}

/** ColorBrewer RdBu, from most negative (dark red) to most positive (dark blue). */
const RDBU = [
  "#67001f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7",
  "#d1e5f0", "#92c5de", "#4393c3", "#2166ac", "#053061",
];

/** Colour drawn for NaN and infinite values: impossible to mistake for data. */
export const INVALID_RGB: [number, number, number] = [255, 0, 255];

const LUT_SIZE = 512;

function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function buildDivergingLut(): Uint8ClampedArray {
  const stops = RDBU.map(hexToRgb);
  const lut = new Uint8ClampedArray(LUT_SIZE * 4);
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = (i / (LUT_SIZE - 1)) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    const a = stops[k];
    const b = stops[k + 1];
    lut[i * 4] = Math.round(a[0] + (b[0] - a[0]) * f);
    lut[i * 4 + 1] = Math.round(a[1] + (b[1] - a[1]) * f);
    lut[i * 4 + 2] = Math.round(a[2] + (b[2] - a[2]) * f);
    lut[i * 4 + 3] = 255;
  }
  return lut;
}

/** RGBA lookup table of the diverging scale, index 0 = -extent, last = +extent. */
export const DIVERGING_LUT = buildDivergingLut();

/** LUT index of `v` on the diverging scale over [-extent, extent] (clamped). */
export function divergingIndex(v: number, extent: number): number {
  const t = (v / extent + 1) / 2;
  const i = Math.round(t * (LUT_SIZE - 1));
  return i < 0 ? 0 : i > LUT_SIZE - 1 ? LUT_SIZE - 1 : i;
}

/** CSS colour of `v` on the diverging scale over [-extent, extent]. */
export function divergingCss(v: number, extent: number): string {
  if (!Number.isFinite(v)) return `rgb(${INVALID_RGB.join(",")})`;
  const i = divergingIndex(v, safeExtent(extent)) * 4;
  return `rgb(${DIVERGING_LUT[i]},${DIVERGING_LUT[i + 1]},${DIVERGING_LUT[i + 2]})`;
}

/** CSS linear-gradient of the diverging scale, left = negative. */
export function divergingGradientCss(): string {
  return `linear-gradient(to right, ${RDBU.join(", ")})`;
}

/** A usable extent: > 0 and finite (an all-zero map is drawn white, not NaN). */
export function safeExtent(extent: number): number {
  return Number.isFinite(extent) && extent > 0 ? extent : 1;
}

/**
 * Paint `values` (one map, row-major) into `out` (RGBA, same pixel count).
 * kind "grey": [0, 1] -> black..white; "diverging": [-extent, extent] -> RdBu.
 */
export function paintMap(
  values: ArrayLike<number>,
  out: Uint8ClampedArray,
  kind: "grey" | "diverging",
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
  const lut = DIVERGING_LUT;
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

// ---------------------------------------------------------------------------------------------
// Ranges

/** What the range computation needs of a column: its layer, block, and per-neuron min/max. */
export interface RangeSource {
  layer: string;
  module: number;
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

export interface LayerRange {
  /** Extent used to colour each neuron (drawn over [-extent, extent]). */
  extents: Float64Array;
  /** True min/max of the layer over all its neurons (for legends). */
  min: number;
  max: number;
}

/**
 * The colour extent of every neuron of every hidden layer under `policy`.
 * - unit: each neuron its own max |v| (1-D layers: the layer's, as they carry one range);
 * - module: max |v| over all hidden layers sharing the `module` number;
 * - global: max |v| over all hidden layers.
 */
export function computeRanges(sources: RangeSource[], policy: ColorScale): Map<string, LayerRange> {
  const own = new Map<string, { per: Float64Array; layerMax: number; min: number; max: number }>();
  const moduleMax = new Map<number, number>();
  let globalMax = 0;
  for (const s of sources) {
    const per = new Float64Array(s.count);
    let layerMax = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < s.min.length; i++) {
      const m = absMax(s.min[i], s.max[i]);
      layerMax = Math.max(layerMax, m);
      if (Number.isFinite(s.min[i])) lo = Math.min(lo, s.min[i]);
      if (Number.isFinite(s.max[i])) hi = Math.max(hi, s.max[i]);
    }
    for (let i = 0; i < s.count; i++) {
      per[i] = s.min.length === s.count ? absMax(s.min[i], s.max[i]) : layerMax;
    }
    own.set(s.layer, { per, layerMax, min: lo, max: hi });
    moduleMax.set(s.module, Math.max(moduleMax.get(s.module) ?? 0, layerMax));
    globalMax = Math.max(globalMax, layerMax);
  }
  const out = new Map<string, LayerRange>();
  for (const s of sources) {
    const o = own.get(s.layer)!;
    let extents: Float64Array;
    if (policy === "unit") extents = o.per;
    else extents = new Float64Array(s.count).fill(policy === "module" ? moduleMax.get(s.module)! : globalMax);
    out.set(s.layer, { extents, min: o.min, max: o.max });
  }
  return out;
}

export interface Legend {
  /** Layers (columns) the legend sits under, in order. */
  layers: string[];
  /** Symmetric extent of the scale (labels -extent, 0, +extent); null in unit mode. */
  extent: number | null;
  /** True min/max of the values it covers, for this image. */
  min: number;
  max: number;
}

/**
 * Legends under the hidden columns: unit and module mode one per module (unit: no shared
 * extent, each neuron has its own), global mode one spanning every hidden column.
 */
export function computeLegends(sources: RangeSource[], policy: ColorScale): Legend[] {
  const ranges = computeRanges(sources, policy);
  const groups: RangeSource[][] = [];
  for (const s of sources) {
    const last = groups[groups.length - 1];
    if (policy !== "global" && last && last[0].module === s.module) last.push(s);
    else if (policy === "global" && last) last.push(s);
    else groups.push([s]);
  }
  return groups.map((g) => {
    let lo = Infinity;
    let hi = -Infinity;
    let extent = 0;
    for (const s of g) {
      const r = ranges.get(s.layer)!;
      lo = Math.min(lo, r.min);
      hi = Math.max(hi, r.max);
      for (const e of r.extents) extent = Math.max(extent, e);
    }
    return { layers: g.map((s) => s.layer), extent: policy === "unit" ? null : extent, min: lo, max: hi };
  });
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
