// The formula level: the exact arithmetic of one neuron at one position, as a compact card the
// elastic view places next to what it explains. The maps themselves are in the elastic view
// (with the window moving on them in sync), so a card holds only numbers: no nested scrolling,
// channels beyond what fits are paged.

import type { Activations, Network } from "../payload";
import { isOutputLayer } from "./dense";
import { ActivationFormula, ConvFormula, DenseFormula, InputFormula, PoolFormula } from "./formula";
import { AddFormula, ConcatFormula, GlobalPoolFormula, NormFormula } from "./graph-formula";
import "./detail.css";

export type DetailKind = "input" | "conv" | "activation" | "pool" | "dense" | "output" | "add" | "batchnorm" | "concat" | "global_pool";

/** A neuron as `w.selected` names it (the position is optional). */
export interface Selection {
  layer: string;
  index: number;
  y?: number;
  x?: number;
}

/** Which view explains a neuron of `layer`. */
export function detailKind(network: Network, layer: string): DetailKind | null {
  if (layer === "input") return "input";
  const spec = network.layers.find((l) => l.name === layer);
  if (!spec) return null;
  if (spec.kind === "dense") return isOutputLayer(network, layer) ? "output" : "dense";
  if (spec.kind === "conv" || spec.kind === "activation" || spec.kind === "pool") return spec.kind;
  if (spec.kind === "add" || spec.kind === "batchnorm" || spec.kind === "concat" || spec.kind === "global_pool") return spec.kind;
  return null;
}

export interface FormulaOptions {
  layer: string;
  index: number;
  /** Input channel to show first (conv), -1 for the first page. */
  channel: number;
  /** Room the card has (px): it pages rather than grow past it. */
  maxHeight: number;
  width: number;
  /** Colour extent of a hidden neuron under the colour scale. */
  extent(layer: string, index: number): number;
  /** A softmax term or logit is hovered (null: none). */
  hover(i: number | null): void;
  /** Explain another neuron (a class in the softmax). */
  select(layer: string, index: number): void;
}

/** One formula card: built once per neuron, shown at a position, updated for new data. */
export interface Formula {
  readonly root: HTMLElement;
  show(y: number, x: number): void;
  update(network: Network, acts: Activations): void;
  /** Show input channel `c` (conv: turns the page). */
  focus?(c: number): void;
  /** Highlight class `i`'s term (output). */
  highlight?(i: number | null): void;
  /** Show less per page (the card overflowed its room); false when it cannot. */
  shrink?(): boolean;
  destroy(): void;
}

export function formulaFor(kind: DetailKind, network: Network, acts: Activations, o: FormulaOptions): Formula {
  if (kind === "conv") return new ConvFormula(network, acts, o);
  if (kind === "activation") return new ActivationFormula(network, acts, o);
  if (kind === "pool") return new PoolFormula(network, acts, o);
  if (kind === "input") return new InputFormula(network, acts, o);
  if (kind === "add") return new AddFormula(network, acts, o);
  if (kind === "batchnorm") return new NormFormula(network, acts, o);
  if (kind === "concat") return new ConcatFormula(network, acts, o);
  if (kind === "global_pool") return new GlobalPoolFormula(network, acts, o);
  return new DenseFormula(network, acts, o, kind === "output");
}
