// The overview's columns, derived from the payload's layer list only (no layer names or sizes
// are assumed). Pure functions, no DOM.

import type { Activations, LayerSpec, Network } from "../payload";

/**
 * - input: the image's channels (grey heatmaps);
 * - map: a spatial layer (conv / activation / pool), one heatmap per channel;
 * - vector: a hidden 1-D layer (dense, or an activation after one), one cell per unit;
 * - output: the last dense layer, drawn as class names with probability bars.
 */
export type ColumnKind = "input" | "map" | "vector" | "output";

/** How a column's neurons connect to the previous column's. */
export type LinkKind = "none" | "full" | "one";

export interface Column {
  /** Layer name as in the payload ("input" for the image). */
  layer: string;
  kind: ColumnKind;
  layerKind: LayerSpec["kind"] | "input";
  /** Number of neurons. */
  count: number;
  /** Output shape as in the payload ((H, W, C) or (N,)). */
  shape: number[];
  module: number;
  link: LinkKind;
  /** Index of this column in the column list. */
  index: number;
}

export function isSpatial(shape: number[]): boolean {
  return shape.length === 3;
}

/** Title shown above a column, e.g. "conv_1_1" and "62×62×10". */
export function shapeLabel(shape: number[]): string {
  return shape.join("×");
}

/** The columns of the overview, in network order. */
export function buildColumns(network: Network): Column[] {
  const cols: Column[] = [];
  const [, , c] = network.inputShape;
  cols.push({
    layer: "input",
    kind: "input",
    layerKind: "input",
    count: c,
    shape: [...network.inputShape],
    module: -1,
    link: "none",
    index: 0,
  });
  let lastDense = -1;
  network.layers.forEach((l, i) => {
    if (l.kind === "dense") lastDense = i;
  });
  network.layers.forEach((l, i) => {
    if (l.kind === "flatten" || l.kind === "softmax") return;
    if (lastDense >= 0 && i > lastDense) return; // anything after the output layer
    const spatial = isSpatial(l.output_shape);
    const count = spatial ? l.output_shape[2] : l.output_shape[0];
    const kind: ColumnKind = i === lastDense ? "output" : spatial ? "map" : "vector";
    const link: LinkKind = l.kind === "conv" || l.kind === "dense" ? "full" : "one";
    cols.push({
      layer: l.name,
      kind,
      layerKind: l.kind,
      count,
      shape: [...l.output_shape],
      module: l.module,
      link,
      index: cols.length,
    });
  });
  return cols;
}

/** Indices in `prev` that feed neuron `index` of `col` (all for full links, same for one-to-one). */
export function sourcesOf(col: Column, prev: Column | undefined, index: number): number[] {
  if (!prev || col.link === "none") return [];
  if (col.link === "one") return index < prev.count ? [index] : [];
  return Array.from({ length: prev.count }, (_, i) => i);
}

/**
 * Page groups: a one-to-one column with as many neurons as the previous one pages together with
 * it (conv → relu → pool show the same channels). Returns each column's group leader.
 */
export function pageGroups(cols: Column[]): number[] {
  const leader: number[] = [];
  cols.forEach((c, i) => {
    const prev = cols[i - 1];
    const joins = i > 0 && c.link === "one" && prev.count === c.count && prev.kind === c.kind;
    leader.push(joins ? leader[i - 1] : i);
  });
  return leader;
}

/** Class probabilities: the "softmax" entry if the network has one, else softmax(logits). */
export function probabilities(network: Network, acts: Activations, outputLayer: string): Float32Array {
  const soft = network.layers.find((l) => l.kind === "softmax");
  const sv = soft ? acts.layers.get(soft.name) : undefined;
  if (sv) return sv.values;
  const logits = acts.layers.get(outputLayer)?.values ?? new Float32Array(0);
  let m = -Infinity;
  for (const v of logits) m = Math.max(m, v);
  const e = new Float32Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    e[i] = Math.exp(logits[i] - m);
    s += e[i];
  }
  for (let i = 0; i < e.length; i++) e[i] /= s;
  return e;
}

/** Index of the largest value (first one on ties), -1 if empty. */
export function argmax(values: ArrayLike<number>): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] > bv) {
      bv = values[i];
      best = i;
    }
  }
  return best;
}
