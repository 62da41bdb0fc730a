// Types shared by the detail views (the public API is re-exported from ./index).
import type { ColorScale } from "../colors";
import type { Activations, Network } from "../payload";

export interface Selection {
  layer: string;
  index: number;
  y?: number;
  x?: number;
}

export interface DetailContext {
  network: Network;
  activations: Activations;
  selection: Selection;
  select(sel: Selection | null): void; // set w.selected (null closes the view)
  colorScale: ColorScale;
}

export interface DetailView {
  update(ctx: DetailContext): void;
  destroy(): void;
}

/** What a view module gets from the panel. */
export interface ViewEnv {
  /** Report the selected position to Python: now (click, key) or throttled (hover, ~150 ms). */
  report(y: number, x: number, now: boolean): void;
  /** Select another neuron (e.g. a class in the softmax table). */
  selectNeuron(layer: string, index: number): void;
  /** Colour extent of a hidden neuron's map under the current colour scale. */
  extent(ctx: DetailContext, layer: string, index: number): number;
}

/** One kind of detail view: built once per neuron, updated in place. */
export interface KindView {
  readonly root: HTMLElement;
  /** New data (image, colour scale) or a new position for the same neuron. */
  update(ctx: DetailContext): void;
  /** Arrow keys: move the position by (dy, dx); return true if handled. */
  move?(dy: number, dx: number): boolean;
  /** Space: play / pause; return true if handled. */
  toggle?(): boolean;
  destroy(): void;
}
