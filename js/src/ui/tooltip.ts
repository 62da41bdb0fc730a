// One tooltip element per overview, positioned next to the hovered or focused neuron.

import { h } from "./dom";

export class Tooltip {
  readonly el: HTMLDivElement;

  constructor(parent: HTMLElement) {
    this.el = h("div", { class: "cnnx-ov-tooltip", role: "tooltip", "aria-hidden": "true" });
    this.el.hidden = true;
    parent.append(this.el);
  }

  /** Show `lines` (first line bold) next to `anchor` (coordinates inside the parent). */
  show(lines: string[], anchor: { x: number; y: number; w: number; h: number }, parentWidth: number): void {
    this.el.replaceChildren(
      ...lines.map((t, i) => h("div", { class: i === 0 ? "cnnx-ov-tooltip-title" : "cnnx-ov-tooltip-line" }, t)),
    );
    this.el.hidden = false;
    const tw = this.el.offsetWidth || 160;
    let x = anchor.x + anchor.w + 8;
    if (x + tw > parentWidth - 4) x = Math.max(4, anchor.x - tw - 8);
    this.el.style.left = `${Math.round(x)}px`;
    this.el.style.top = `${Math.round(anchor.y + anchor.h / 2)}px`;
  }

  hide(): void {
    this.el.hidden = true;
  }

  get visible(): boolean {
    return !this.el.hidden;
  }
}
