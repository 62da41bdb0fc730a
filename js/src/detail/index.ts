// PLACEHOLDER detail view (owned by the detail-views engineer, who replaces this file).
// It only fixes the API the overview calls.

import type { Network, Activations } from "../payload";

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
  colorScale: "unit" | "module" | "global";
}

export interface DetailView {
  update(ctx: DetailContext): void;
  destroy(): void;
}

export function renderDetail(host: HTMLElement, ctx: DetailContext): DetailView {
  const root = document.createElement("div");
  root.className = "cnnx-detail";
  const title = document.createElement("span");
  const close = document.createElement("button");
  close.type = "button";
  close.className = "cnnx-detail-close";
  close.textContent = "×";
  close.setAttribute("aria-label", "close detail view");
  root.append(title, close);
  host.append(root);
  let current = ctx;
  close.addEventListener("click", () => current.select(null));
  const update = (c: DetailContext) => {
    current = c;
    const layer = c.network.layers.find((l) => l.name === c.selection.layer);
    root.dataset.layer = c.selection.layer;
    root.dataset.kind = layer ? layer.kind : "input";
    title.textContent = `${c.selection.layer} neuron ${c.selection.index}`;
  };
  update(ctx);
  return { update, destroy: () => root.remove() };
}
