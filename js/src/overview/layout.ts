// Where everything in the overview goes for a given cell width. Pure: columns + width in,
// positions out, so it is unit-tested and recomputed on every resize without touching data.

import type { Column } from "./columns";
import { shapeLabel } from "./columns";

export interface LayoutOptions {
  /** Most neurons shown at once in a heatmap column; wider layers are paged. */
  rowsCap: number;
  maxNode: number;
  padX: number;
}

export const DEFAULT_LAYOUT: LayoutOptions = { rowsCap: 10, maxNode: 56, padX: 10 };

export interface ColumnLayout {
  /** Left edge of the column's slot and its width. */
  x: number;
  width: number;
  /** Size of one neuron's element. */
  itemW: number;
  itemH: number;
  /** Neurons shown per page, number of pages (1 = no pager). */
  perPage: number;
  pages: number;
  /** Title row (0 … titleRows − 1): titles are staggered when neighbours would collide. */
  titleRow: number;
  /** Estimated title width in px at the layout's font size. */
  titleWidth: number;
  /** The title's box: left edge and width (narrower than the text only if it must be cut). */
  titleLeft: number;
  titleBoxWidth: number;
}

export interface Layout {
  width: number;
  height: number;
  /** Heatmap side in px. */
  node: number;
  rowPitch: number;
  titleTop: number;
  titleHeight: number;
  titleFont: number;
  /** Number of staggered title rows (1: all titles on one row). */
  titleRows: number;
  bodyTop: number;
  bodyHeight: number;
  pagerTop: number;
  legendTop: number;
  stagger: boolean;
  columns: ColumnLayout[];
  /** Skip connections (an input that is not the column just before), routed under the body. */
  skips: Skip[];
}

/** A skip connection from column `from` to column `to`, drawn along lane `y` under the maps. */
export interface Skip {
  from: number;
  to: number;
  lane: number;
  y: number;
}

/** Height of one skip lane under the body. */
export const LANE = 10;

/**
 * Every skip connection of the columns, each on a lane: shorter connections nearer the maps,
 * a longer one under every connection it spans (so they nest instead of crossing), and
 * connections whose spans do not overlap share a lane. Sorted by where they start.
 */
export function skipLanes(cols: readonly Column[]): { from: number; to: number; lane: number }[] {
  const skips: { from: number; to: number; lane: number }[] = [];
  cols.forEach((c, i) => {
    for (const p of c.inputs) if (p !== i - 1) skips.push({ from: p, to: i, lane: 0 });
  });
  const placed: typeof skips = [];
  for (const s of [...skips].sort((a, b) => a.to - a.from - (b.to - b.from) || a.from - b.from)) {
    const over = placed.filter((o) => o.from < s.to && s.from < o.to);
    s.lane = over.length ? Math.max(...over.map((o) => o.lane)) + 1 : 0;
    placed.push(s);
  }
  return skips.sort((a, b) => a.from - b.from || a.to - b.to);
}

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/** Rough text width (px) of `text` in the UI sans font at `font` px (generous: DejaVu Sans). */
export function textWidth(text: string, font: number): number {
  return text.length * font * 0.62;
}

export function titleText(col: Column): [string, string] {
  return [col.layer, `(${shapeLabel(col.shape)})`];
}

/**
 * Gap before column `i` for node size `s`: all-to-all links get room for their fan of edges,
 * one-to-one links a short step; `need[i]` is the centre-to-centre distance its title needs.
 */
function gapBefore(cols: Column[], i: number, s: number, outW: number, need: number[]): number {
  // A column with several inputs, or one from afar, gets room for its edges to meet.
  const merges = cols[i].inputs.length > 1 || (cols[i].inputs.length === 1 && cols[i].inputs[0] !== i - 1);
  const wide = cols[i].link === "full" || cols[i].link === "group" || merges;
  const base = wide ? Math.max(2 * s, 12) : Math.max(0.6 * s, 6);
  const slot = (c: Column) => (c.kind === "output" ? outW : s);
  return Math.max(base, need[i] - slot(cols[i - 1]) / 2 - slot(cols[i]) / 2);
}

function outputWidth(width: number): number {
  return clamp(Math.round(width * 0.11), 92, 150);
}

/** Total width of the columns (without outer padding) for node size `s`. */
function contentWidth(cols: Column[], s: number, outW: number, need: number[]): number {
  let w = 0;
  cols.forEach((c, i) => {
    if (i > 0) w += gapBefore(cols, i, s, outW, need);
    w += c.kind === "output" ? outW : s;
  });
  return w;
}

/** Largest node size (integer px, at least 4) whose columns fit in `avail` (bisection). */
function solveNode(cols: Column[], avail: number, outW: number, need: number[], maxNode: number): number {
  let lo = 4;
  let hi = maxNode;
  if (contentWidth(cols, hi, outW, need) <= avail) return hi;
  for (let it = 0; it < 30; it++) {
    const mid = (lo + hi) / 2;
    if (contentWidth(cols, mid, outW, need) <= avail) lo = mid;
    else hi = mid;
  }
  return Math.max(4, Math.floor(lo));
}

/** Title font: labels and numbers are never smaller than 11 px. */
const TITLE_FONT = 11;
/** Most staggered title rows; beyond that, titles are cut (with an ellipsis) to their room. */
const MAX_TITLE_ROWS = 4;
/** Smallest gap between two titles of one row. */
const TITLE_GAP = 4;

export function computeLayout(cols: Column[], width: number, opts: LayoutOptions = DEFAULT_LAYOUT): Layout {
  const W = Math.max(width, 200);
  const avail = W - 2 * opts.padX;
  const outW = outputWidth(W);
  // Prefer gaps wide enough for every title on one row; if that would shrink the maps by more
  // than a fifth, keep the maps and stagger the titles instead.
  const noNeed = cols.map(() => 0);
  const tw = cols.map((c) => Math.max(...titleText(c).map((t) => textWidth(t, TITLE_FONT))));
  const titleNeed = cols.map((_, i) => (i === 0 ? 0 : (tw[i - 1] + tw[i]) / 2 + 8 + TITLE_GAP));
  const sPlain = solveNode(cols, avail, outW, noNeed, opts.maxNode);
  const sFit = solveNode(cols, avail, outW, titleNeed, opts.maxNode);
  const need = sFit >= 0.8 * sPlain ? titleNeed : noNeed;
  // In a very narrow cell the maps get small, but everything stays inside it.
  const s = need === titleNeed ? sFit : sPlain;
  // Spread leftover width into the gaps (at most doubling them), then centre.
  const base = contentWidth(cols, s, outW, need);
  let gapTotal = 0;
  cols.forEach((_, i) => {
    if (i > 0) gapTotal += gapBefore(cols, i, s, outW, need);
  });
  const spare = Math.max(0, avail - base);
  const grow = gapTotal > 0 ? Math.min(1, spare / gapTotal) : 0;
  const used = base + gapTotal * grow;
  let x = opts.padX + Math.max(0, (avail - used) / 2);

  const spatialCounts = cols.filter((c) => c.kind === "map" || c.kind === "input").map((c) => c.count);
  const rows = clamp(Math.max(1, ...spatialCounts), 1, opts.rowsCap);
  const rowPitch = Math.round(s + Math.max(8, 0.45 * s));
  const bodyHeight = rows * rowPitch;

  const titleFont = TITLE_FONT;
  const columns: ColumnLayout[] = [];
  cols.forEach((c, i) => {
    if (i > 0) x += gapBefore(cols, i, s, outW, need) * (1 + grow);
    const w = c.kind === "output" ? outW : s;
    let itemW = s;
    let itemH = s;
    if ((c.kind === "map" || c.kind === "input") && c.shape.length === 3 && c.shape[0] !== c.shape[1]) {
      // Non-square maps keep their aspect ratio inside the s×s slot.
      const [mh, mw] = c.shape;
      if (mh > mw) itemW = Math.max(2, Math.round((s * mw) / mh));
      else itemH = Math.max(2, Math.round((s * mh) / mw));
    }
    let perPage = Math.min(c.count, rows);
    if (c.kind === "vector") {
      const cell = clamp(Math.round(s * 0.4), 8, 16);
      itemW = itemH = cell;
      perPage = Math.min(c.count, Math.max(1, Math.floor(bodyHeight / (cell + 3))));
    } else if (c.kind === "output") {
      itemW = outW;
      itemH = Math.min(rowPitch - 4, 30);
      perPage = Math.min(c.count, Math.max(rows, Math.floor(bodyHeight / 26)));
      if (perPage < c.count) itemH = Math.min(itemH, Math.floor(bodyHeight / perPage) - 2);
    }
    const pages = Math.max(1, Math.ceil(c.count / perPage));
    columns.push({ x, width: w, itemW, itemH, perPage, pages, titleRow: 0, titleWidth: tw[i], titleLeft: 0, titleBoxWidth: 0 });
    x += w;
  });
  const titleRows = placeTitles(columns, W);
  const stagger = titleRows > 1;
  const lineH = Math.round(titleFont * 1.3);
  const titleHeight = titleRows * 2 * lineH + 6;
  const titleTop = 4;
  const bodyTop = titleTop + titleHeight;
  const paged = columns.some((c) => c.pages > 1);
  const lanes = skipLanes(cols);
  const laneCount = lanes.reduce((m, k) => Math.max(m, k.lane + 1), 0);
  const laneTop = bodyTop + bodyHeight + 6;
  const skips = lanes.map((k) => ({ ...k, y: laneTop + k.lane * LANE + LANE / 2 }));
  const pagerTop = bodyTop + bodyHeight + 4 + (laneCount ? laneCount * LANE + 6 : 0);
  const legendTop = pagerTop + (paged ? 22 : 0) + 4;
  const height = legendTop + 36;
  return {
    width: W,
    height,
    node: s,
    rowPitch,
    titleTop,
    titleHeight,
    titleFont,
    titleRows,
    bodyTop,
    bodyHeight,
    pagerTop,
    legendTop,
    stagger,
    columns,
    skips,
  };
}

/**
 * Title boxes: centred on their columns (kept inside the cell), on the fewest staggered rows
 * (1 … MAX_TITLE_ROWS) where no two boxes of a row overlap; if even that is too crowded, each
 * box is cut to the room between its row neighbours. Returns the number of rows.
 */
function placeTitles(columns: ColumnLayout[], width: number): number {
  const box = (cl: ColumnLayout, w: number): [number, number] => {
    const left = clamp(cl.x + cl.width / 2 - w / 2, 0, Math.max(0, width - w));
    return [left, w];
  };
  const natural = columns.map((cl) => Math.max(cl.width, cl.titleWidth + 8));
  const fits = (rows: number) =>
    columns.every((cl, i) => {
      if (i < rows) return true;
      const [la, wa] = box(columns[i - rows], natural[i - rows]);
      const [lb] = box(cl, natural[i]);
      return lb >= la + wa + TITLE_GAP;
    });
  let rows = 1;
  while (rows < MAX_TITLE_ROWS && !fits(rows)) rows++;
  const cut = !fits(rows);
  columns.forEach((cl, i) => {
    cl.titleRow = i % rows;
    let [left, w] = box(cl, natural[i]);
    if (cut) {
      // the room between the centres of its row neighbours (or the cell's edges)
      const c = cl.x + cl.width / 2;
      const prev = columns[i - rows];
      const next = columns[i + rows];
      const lo = prev ? (prev.x + prev.width / 2 + c) / 2 + TITLE_GAP / 2 : 0;
      const hi = next ? (c + next.x + next.width / 2) / 2 - TITLE_GAP / 2 : width;
      w = Math.min(w, Math.max(cl.width, hi - lo));
      left = clamp(c - w / 2, lo, hi - w);
    }
    cl.titleLeft = left;
    cl.titleBoxWidth = w;
  });
  return rows;
}

/** Neuron indices on page `page` of a column. */
export function pageRange(cl: ColumnLayout, count: number, page: number): [number, number] {
  const p = clamp(page, 0, cl.pages - 1);
  const start = p * cl.perPage;
  return [start, Math.min(count, start + cl.perPage)];
}

/** Rectangle of the `slot`-th of `visible` neurons shown in a column (spread over the body). */
export function itemRect(layout: Layout, col: number, slot: number, visible: number): Rect {
  const cl = layout.columns[col];
  const pitch = layout.bodyHeight / Math.max(1, visible);
  const cy = layout.bodyTop + pitch * (slot + 0.5);
  return { x: cl.x + (cl.width - cl.itemW) / 2, y: Math.round(cy - cl.itemH / 2), w: cl.itemW, h: cl.itemH };
}
