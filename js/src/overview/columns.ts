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

/**
 * How a column's neurons connect to their input columns': every neuron (conv, dense), the same
 * index (activation, pool, batch norm, add, global pool), a conv's own group of channels
 * (grouped / depthwise), or the channel a concat copies.
 */
export type LinkKind = "none" | "full" | "one" | "group" | "concat";

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
  /** The columns it reads, in the layer's `inputs` order (a flatten is skipped to its input). */
  inputs: number[];
  /** Conv feature groups (1 otherwise). */
  groups: number;
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
    inputs: [],
    groups: 1,
  });
  let lastDense = -1;
  network.layers.forEach((l, i) => {
    if (l.kind === "dense") lastDense = i;
  });
  // Which column shows each layer's values (a flatten shows its input's).
  const columnOf = new Map<string, number>([["input", 0]]);
  network.layers.forEach((l, i) => {
    const raw = l.inputs && l.inputs.length ? l.inputs : [i > 0 ? network.layers[i - 1].name : "input"];
    if (l.kind === "flatten" || l.kind === "softmax") {
      const from = columnOf.get(raw[0]);
      if (from !== undefined) columnOf.set(l.name, from);
      return;
    }
    if (lastDense >= 0 && i > lastDense) return; // anything after the output layer
    const spatial = isSpatial(l.output_shape);
    const count = spatial ? l.output_shape[2] : l.output_shape[0];
    const kind: ColumnKind = i === lastDense ? "output" : spatial ? "map" : "vector";
    const groups = l.kind === "conv" ? Math.max(1, l.groups ?? 1) : 1;
    const link: LinkKind =
      l.kind === "conv" ? (groups > 1 ? "group" : "full") : l.kind === "dense" ? "full" : l.kind === "concat" ? "concat" : "one";
    const inputs = raw.map((n) => columnOf.get(n)).filter((c): c is number => c !== undefined);
    columnOf.set(l.name, cols.length);
    cols.push({
      layer: l.name,
      kind,
      layerKind: l.kind,
      count,
      shape: [...l.output_shape],
      module: l.module,
      link,
      index: cols.length,
      inputs,
      groups,
    });
  });
  return cols;
}

/** True when a column reads only the column just before it (a sequential network's case). */
export function isSequential(cols: readonly Column[]): boolean {
  return cols.every((c, i) => i === 0 || (c.inputs.length === 1 && c.inputs[0] === i - 1));
}

/**
 * Neurons feeding neuron `index` of column `c`, as [column, index] pairs: every neuron of its
 * inputs (full), the same index in each input (one: activation, pool, batch norm, add), its
 * conv group's channels (group), or the one channel a concat copies (concat).
 */
export function sourcesFrom(cols: readonly Column[], c: number, index: number): [number, number][] {
  const col = cols[c];
  if (!col || col.link === "none") return [];
  const out: [number, number][] = [];
  if (col.link === "concat") {
    let offset = 0;
    for (const p of col.inputs) {
      const n = cols[p].count;
      if (index >= offset && index < offset + n) return [[p, index - offset]];
      offset += n;
    }
    return [];
  }
  for (const p of col.inputs) {
    const prev = cols[p];
    if (col.link === "one") {
      if (index < prev.count) out.push([p, index]);
    } else if (col.link === "group") {
      const per = prev.count / col.groups;
      const g = Math.floor(index / (col.count / col.groups));
      for (let k = 0; k < per; k++) out.push([p, g * per + k]);
    } else {
      for (let k = 0; k < prev.count; k++) out.push([p, k]);
    }
  }
  return out;
}

/** Indices in `prev` that feed neuron `index` of `col` (all for full links, same for one-to-one); sequential networks only, see `sourcesFrom`. */
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
    const joins = i > 0 && c.link === "one" && c.inputs.includes(i - 1) && prev.count === c.count && prev.kind === c.kind;
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
