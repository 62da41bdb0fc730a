// "Why", "what if" and "which images": a panel under the toolbar plus marks on the overview.
//
// - Why: an overlay of the saliency or Grad-CAM of a target (the predicted class, a chosen
//   class, or the selected neuron) on the input, both in the panel (a larger view with a legend
//   with numbers) and over the input channels of the overview. The kernel computes the map
//   (trait _overlay, normalised to [0, 1] with its raw maximum); this file only draws it.
// - What if: an on/off control on every neuron (a button on hover or focus, or the O key on a
//   focused neuron), marks on the neurons that are off, a button for the selected neuron, and a
//   reset. It only sets the `ablated` trait; the kernel recomputes and sends the activations.
// - Which images: the strip of top images of w.show_top_activations(...) (trait _top), each
//   with the receptive field of its maximum outlined; a click shows that image.
//
// The overview and the detail panel are drawn by other modules: this one decorates the DOM they
// build (elements `.cnnx-neuron[data-layer][data-index]`), re-applying its marks whenever that
// DOM changes (a MutationObserver), so it needs no hook inside them.

import type { AnyModel } from "@anywidget/types";
import { formatValue } from "../colors";
import type { Network } from "../payload";
import { h, svg } from "../ui/dom";
import "./whyif.css";

export type Ablated = Record<string, number[]>;

export interface OverlayMessage {
  kind: "saliency" | "grad_cam";
  target: string;
  layer: string | null;
  caption: string;
  shape: [number, number];
  source_shape: number[];
  min: number;
  max: number;
  data: DataView | ArrayBuffer;
  image: DataView | ArrayBuffer;
}

export interface TopItem {
  rank: number;
  image_index: number;
  value: number;
  y: number;
  x: number;
  field: [number, number, number, number];
  png: DataView | ArrayBuffer;
}

export interface TopMessage {
  layer: string;
  index: number;
  shape: [number, number];
  items: TopItem[];
}

export interface WhyIfModel {
  ablated: Ablated;
  overlay: string;
  overlay_target: unknown;
  _overlay: OverlayMessage | Record<string, never>;
  _top: TopMessage | Record<string, never>;
  selected: { layer: string; index: number } | null;
}

const OVERLAYS: [string, string][] = [
  ["none", "Off"],
  ["saliency", "Saliency"],
  ["grad_cam", "Grad-CAM"],
];

/** The overlay's colour ramp: transparent → amber → red (alpha grows with the value). */
/** Cells smaller than this (px, either side) get no on/off button of their own. */
const MIN_TOGGLE_CELL = 28;

export function heatRgba(v: number): [number, number, number, number] {
  const t = Math.max(0, Math.min(1, v));
  const r = 255;
  const g = Math.round(200 - 150 * t);
  const b = Math.round(40 - 40 * t);
  return [r, g, b, Math.round(255 * Math.min(1, 0.15 + 0.8 * t) * (t > 0.02 ? 1 : t / 0.02))];
}

export const HEAT_GRADIENT_CSS = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1]
  .map((t) => {
    const [r, g, b, a] = heatRgba(t);
    return `rgba(${r}, ${g}, ${b}, ${(a / 255).toFixed(3)}) ${t * 100}%`;
  })
  .join(", ")})`;

/** A power symbol (drawn: not every font has U+23FB). */
function powerIcon(): SVGSVGElement {
  const icon = svg("svg", { viewBox: "0 0 16 16", width: "10", height: "10", "aria-hidden": "true" });
  icon.append(
    svg("path", { d: "M8 1.5v6", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round" }),
    svg("path", { d: "M4.3 4.2a5.5 5.5 0 1 0 7.4 0", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round" }),
  );
  return icon;
}

function bytesOf(data: DataView | ArrayBuffer | Uint8Array): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  const view = data as ArrayBufferView;
  return new Uint8Array(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength);
}

function floatsOf(data: DataView | ArrayBuffer): Float32Array {
  const bytes = bytesOf(data);
  // Copy: the buffer may not be 4-byte aligned.
  return new Float32Array(bytes.slice().buffer);
}

function hasKeys(msg: unknown): boolean {
  return typeof msg === "object" && msg !== null && Object.keys(msg).length > 0;
}

/** Which layers may be switched off: those with neurons (not the input, flatten or softmax). */
export function ablatableLayers(network: Network | null): Map<string, number> {
  const out = new Map<string, number>();
  for (const layer of network?.layers ?? []) {
    if (layer.kind === "flatten" || layer.kind === "softmax") continue;
    const shape = layer.output_shape;
    out.set(layer.name, shape[shape.length - 1]);
  }
  return out;
}

/** `ablated` with neuron (layer, index) switched on if off, off if on (sorted, no empty lists). */
export function toggled(ablated: Ablated, layer: string, index: number): Ablated {
  const out: Ablated = {};
  for (const [k, v] of Object.entries(ablated)) out[k] = [...v];
  const list = out[layer] ?? [];
  out[layer] = list.includes(index) ? list.filter((i) => i !== index) : [...list, index].sort((a, b) => a - b);
  if (out[layer].length === 0) delete out[layer];
  return out;
}

export function isOff(ablated: Ablated, layer: string, index: number): boolean {
  return (ablated[layer] ?? []).includes(index);
}

export class WhyIf {
  readonly el: HTMLDivElement;
  private readonly overlaySelect: HTMLSelectElement;
  private readonly targetSelect: HTMLSelectElement;
  private readonly figure: HTMLDivElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly legendBar: HTMLDivElement;
  private readonly legendTicks: HTMLDivElement;
  private readonly legendCaption: HTMLDivElement;
  private readonly offText: HTMLSpanElement;
  private readonly toggleSelected: HTMLButtonElement;
  private readonly reset: HTMLButtonElement;
  private readonly strip: HTMLDivElement;
  private readonly stripTitle: HTMLDivElement;
  private readonly stripItems: HTMLDivElement;
  private readonly observer: MutationObserver | null;
  private readonly handlers: [string, () => void][] = [];
  private urls: string[] = [];
  private overlayMap: Float32Array | null = null;
  private overlayShape: [number, number] = [0, 0];
  private classesShown = "";
  private frame = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly model: AnyModel<WhyIfModel>,
    private readonly network: () => Network | null,
  ) {
    this.overlaySelect = h("select", { class: "cnnx-whyif-overlay", "aria-label": "overlay on the input" });
    for (const [value, label] of OVERLAYS) this.overlaySelect.append(h("option", { value }, label));
    this.overlaySelect.addEventListener("change", () => this.setTrait("overlay", this.overlaySelect.value));
    this.targetSelect = h("select", { class: "cnnx-whyif-target", "aria-label": "overlay of" });
    this.targetSelect.addEventListener("change", () => {
      const v = this.targetSelect.value;
      this.setTrait("overlay_target", v === "__prediction" ? null : v === "__selected" ? "selected" : v);
    });
    this.canvas = h("canvas", { class: "cnnx-whyif-canvas", width: "64", height: "64", role: "img" });
    this.legendBar = h("div", { class: "cnnx-whyif-legend-bar" });
    this.legendBar.style.background = HEAT_GRADIENT_CSS;
    this.legendTicks = h("div", { class: "cnnx-whyif-legend-ticks" });
    this.legendCaption = h("div", { class: "cnnx-whyif-legend-caption" });
    const legend = h("div", { class: "cnnx-whyif-legend" }, this.legendBar, this.legendTicks, this.legendCaption);
    this.figure = h("div", { class: "cnnx-whyif-figure" }, this.canvas, legend);
    this.figure.hidden = true;
    const why = h(
      "div",
      { class: "cnnx-whyif-why", role: "group", "aria-label": "why: saliency and Grad-CAM" },
      h("label", { class: "cnnx-whyif-label" }, "Why ", this.overlaySelect),
      h("label", { class: "cnnx-whyif-label" }, "of ", this.targetSelect),
      this.figure,
    );

    this.offText = h("span", { class: "cnnx-whyif-off-text", role: "status", "aria-live": "polite" });
    this.toggleSelected = h("button", { class: "cnnx-whyif-toggle-selected", type: "button" }, "Switch selected neuron off");
    this.toggleSelected.addEventListener("click", () => {
      const sel = this.model.get("selected");
      if (sel && ablatableLayers(this.network()).has(sel.layer)) this.toggle(sel.layer, sel.index);
    });
    this.reset = h("button", { class: "cnnx-whyif-reset", type: "button", title: "Switch every neuron back on" }, "Reset");
    this.reset.addEventListener("click", () => this.setTrait("ablated", {}));
    const whatIf = h(
      "div",
      { class: "cnnx-whyif-whatif", role: "group", "aria-label": "what if: neurons switched off" },
      h("span", { class: "cnnx-whyif-label", title: "Press O on a focused neuron, or use the power button on it" }, "What if"),
      this.offText,
      this.toggleSelected,
      this.reset,
    );

    this.stripTitle = h("div", { class: "cnnx-whyif-strip-title" });
    this.stripItems = h("div", { class: "cnnx-whyif-strip-items", role: "list" });
    this.strip = h("div", { class: "cnnx-whyif-strip", role: "group", "aria-label": "top images" }, this.stripTitle, this.stripItems);
    this.strip.hidden = true;

    this.el = h("div", { class: "cnnx-whyif", "data-overlay": "none", "data-off": "0", "data-top": "0" }, h("div", { class: "cnnx-whyif-row" }, why, whatIf), this.strip);
    const before = root.querySelector(".cnnx-overview-wrap");
    root.insertBefore(this.el, before);

    this.on("change:ablated", () => this.syncAblated());
    this.on("change:overlay", () => this.syncControls());
    this.on("change:overlay_target", () => this.syncControls());
    this.on("change:_overlay", () => this.syncOverlay());
    this.on("change:_top", () => this.syncTop());
    this.on("change:selected", () => this.syncSelected());
    root.addEventListener("keydown", this.onKeyDown);
    root.addEventListener("click", this.onClick, true);

    this.observer =
      typeof MutationObserver === "undefined"
        ? null
        : new MutationObserver(() => {
            if (!this.frame) this.frame = requestAnimationFrame(() => ((this.frame = 0), this.decorate()));
          });
    this.observer?.observe(root, { childList: true, subtree: true });
    this.syncControls();
    this.syncAblated();
    this.syncOverlay();
    this.syncTop();
  }

  private on(event: string, fn: () => void): void {
    this.model.on(event, fn);
    this.handlers.push([event, fn]);
  }

  private setTrait(name: "overlay" | "overlay_target" | "ablated", value: unknown): void {
    this.model.set(name, value as never);
    this.model.save_changes();
  }

  private ablated(): Ablated {
    const v = this.model.get("ablated");
    return v && typeof v === "object" ? v : {};
  }

  toggle(layer: string, index: number): void {
    this.setTrait("ablated", toggled(this.ablated(), layer, index));
    this.syncAblated(); // drawn at once; the kernel's answer (or refusal) follows
  }

  // ---- controls ------------------------------------------------------------------------------

  private syncControls(): void {
    const overlay = String(this.model.get("overlay") ?? "none");
    this.overlaySelect.value = overlay;
    this.el.dataset.overlay = overlay;
    const classes = this.network()?.classes ?? [];
    if (classes.join("\u0000") !== this.classesShown) {
      this.classesShown = classes.join("\u0000");
      this.targetSelect.replaceChildren(
        h("option", { value: "__prediction" }, "predicted class"),
        h("option", { value: "__selected" }, "selected neuron"),
        ...classes.map((c) => h("option", { value: c }, c)),
      );
    }
    const target = this.model.get("overlay_target");
    this.targetSelect.value =
      target === null || target === undefined
        ? "__prediction"
        : target === "selected"
          ? "__selected"
          : typeof target === "number"
            ? (classes[target] ?? "__prediction")
            : typeof target === "string"
              ? target
              : "__selected";
    this.targetSelect.disabled = overlay === "none" || !!this.el.dataset.offline;
  }

  private syncSelected(): void {
    const sel = this.model.get("selected");
    const ok = !!sel && ablatableLayers(this.network()).has(sel.layer);
    this.toggleSelected.disabled = !ok || !!this.el.dataset.offline;
    this.toggleSelected.textContent = ok && isOff(this.ablated(), sel!.layer, sel!.index) ? "Switch selected neuron on" : "Switch selected neuron off";
  }

  private syncAblated(): void {
    const ablated = this.ablated();
    const entries = Object.entries(ablated).filter(([, v]) => v.length);
    const count = entries.reduce((n, [, v]) => n + v.length, 0);
    this.el.dataset.off = String(count);
    this.offText.textContent = count === 0 ? "all neurons on" : `${count} off: ${entries.map(([k, v]) => `${k} ${v.join(", ")}`).join("; ")}`;
    this.reset.disabled = count === 0 || !!this.el.dataset.offline;
    this.syncSelected();
    this.decorate();
  }

  // ---- why -----------------------------------------------------------------------------------

  private syncOverlay(): void {
    this.syncControls();
    const msg = this.model.get("_overlay");
    if (!hasKeys(msg)) {
      this.overlayMap = null;
      this.figure.hidden = true;
      this.el.dataset.overlayShown = "";
      this.decorate();
      return;
    }
    const m = msg as OverlayMessage;
    const [hh, ww] = m.shape;
    this.overlayMap = floatsOf(m.data);
    this.overlayShape = [hh, ww];
    const rgb = bytesOf(m.image);
    this.canvas.width = ww;
    this.canvas.height = hh;
    const ctx = this.canvas.getContext("2d");
    if (ctx) {
      const img = ctx.createImageData(ww, hh);
      for (let i = 0; i < hh * ww; i++) {
        // The heat over a dimmed grey copy of the image: it stays readable on red or yellow
        // pictures, where a warm overlay on the colour image would vanish.
        const grey = 0.6 * (0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2]);
        const [r, g, b, a] = heatRgba(this.overlayMap[i]);
        const al = a / 255;
        img.data[4 * i] = Math.round(grey * (1 - al) + r * al);
        img.data[4 * i + 1] = Math.round(grey * (1 - al) + g * al);
        img.data[4 * i + 2] = Math.round(grey * (1 - al) + b * al);
        img.data[4 * i + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
    }
    this.canvas.setAttribute("aria-label", `${m.kind === "saliency" ? "saliency" : "Grad-CAM"} of ${m.target} over the input`);
    const ticks = [0, m.max / 2, m.max];
    this.legendTicks.replaceChildren(...ticks.map((t, i) => h("span", { class: `cnnx-whyif-tick cnnx-whyif-tick-${i}`, "data-value": String(t) }, formatValue(t))));
    this.legendCaption.textContent = m.caption;
    this.figure.hidden = false;
    this.el.dataset.overlayShown = `${m.kind}:${m.target}`;
    this.decorate();
  }

  /** Draw the overlay over a map of the input: `map` inside `neuron` (positioned). */
  private overlayOn(neuron: HTMLElement, map: HTMLCanvasElement | null): void {
    let heat = neuron.querySelector<HTMLCanvasElement>(":scope > canvas.cnnx-whyif-heat");
    if (!this.overlayMap || !map) {
      heat?.remove();
      return;
    }
    const [hh, ww] = this.overlayShape;
    if (!heat) {
      heat = h("canvas", { class: "cnnx-whyif-heat", "aria-hidden": "true" });
      neuron.append(heat);
    }
    if (heat.dataset.drawn !== this.el.dataset.overlayShown || heat.width !== ww) {
      heat.width = ww;
      heat.height = hh;
      const ctx = heat.getContext("2d");
      if (ctx) {
        const img = ctx.createImageData(ww, hh);
        for (let i = 0; i < hh * ww; i++) img.data.set(heatRgba(this.overlayMap[i]), 4 * i);
        ctx.putImageData(img, 0, 0);
      }
      heat.dataset.drawn = this.el.dataset.overlayShown ?? "";
    }
    // Sit exactly on the map (its place inside the neuron can change with the layout).
    const style = `left:${map.offsetLeft}px;top:${map.offsetTop}px;width:${map.offsetWidth}px;height:${map.offsetHeight}px`;
    if (heat.getAttribute("style") !== style) heat.setAttribute("style", style);
  }

  // ---- neurons -------------------------------------------------------------------------------

  /** Marks and controls on the neurons the overview drew (idempotent: no change, no mutation). */
  decorate(): void {
    this.syncControls();
    const offline = this.root.dataset.offline === "1";
    if (offline && !this.el.dataset.offline) {
      // A saved copy (no kernel): the saved overlay, marks and strip show; nothing recomputes.
      this.el.dataset.offline = "1";
      for (const c of this.el.querySelectorAll<HTMLButtonElement | HTMLSelectElement>("button, select")) {
        c.disabled = true;
        c.title = "needs the notebook's kernel";
      }
    }
    const layers = ablatableLayers(this.network());
    const ablated = this.ablated();
    for (const neuron of this.root.querySelectorAll<HTMLElement>(".cnnx-neuron[data-layer][data-index]")) {
      const layer = neuron.dataset.layer ?? "";
      const index = Number(neuron.dataset.index);
      if (layer === "input") {
        this.overlayOn(neuron, neuron.querySelector<HTMLCanvasElement>("canvas.cnnx-ov-map"));
        continue;
      }
      if (!layers.has(layer) || !Number.isInteger(index)) continue;
      const off = isOff(ablated, layer, index);
      if (neuron.classList.contains("cnnx-whyif-off") !== off) neuron.classList.toggle("cnnx-whyif-off", off);
      if ((neuron.dataset.off === "1") !== off) neuron.dataset.off = off ? "1" : "0";
      if (neuron.getAttribute("aria-keyshortcuts") !== "O") neuron.setAttribute("aria-keyshortcuts", "O");
      let button = neuron.querySelector<HTMLButtonElement>(":scope > button.cnnx-whyif-toggle");
      // On a small cell (a dense layer's row of dots, say) the 16 px button would cover most of
      // the neuron, so a click meant to open it would switch it off: there the neuron gets no
      // button, and O (or the panel's "Switch selected neuron") does the job.
      const [cw, ch] = [neuron.offsetWidth, neuron.offsetHeight]; // 0 × 0: not laid out (yet)
      const small = cw > 0 && ch > 0 && !neuron.classList.contains("cnnx-ov-output") && (cw < MIN_TOGGLE_CELL || ch < MIN_TOGGLE_CELL);
      if (small && !off) {
        button?.remove();
        continue;
      }
      if (!button && !offline) {
        // Not a tab stop of its own (a hundred of them would bury the rest): the neuron itself
        // is focusable, and O switches it.
        button = h("button", { class: "cnnx-whyif-toggle", type: "button", tabindex: "-1" }, powerIcon());
        neuron.append(button);
      }
      if (!button) continue;
      const label = `switch ${layer} neuron ${index} ${off ? "on" : "off"} (key O)`;
      if (button.getAttribute("aria-label") !== label) {
        button.setAttribute("aria-label", label);
        button.title = label;
        button.setAttribute("aria-pressed", off ? "true" : "false");
      }
    }
    this.noteInDetail(ablated);
    // The input's explanation view: the same overlay on its picture of the whole image.
    // The elastic input view draws the colour image as a canvas placed in the explanation's layer:
    // the overlay is a sibling canvas placed on the same box.
    for (const picture of this.root.querySelectorAll<HTMLCanvasElement>('canvas.cnnx-el-image[aria-label="the input image"]')) {
      if (picture.parentElement) this.overlayOn(picture.parentElement, picture);
    }
  }

  /** In the open explanation: say when the explained neuron is switched off. */
  private noteInDetail(ablated: Ablated): void {
    const host = this.root.querySelector<HTMLElement>(".cnnx-detail-host");
    if (!host) return;
    const sel = this.model.get("selected");
    const note = host.querySelector<HTMLElement>(":scope > .cnnx-whyif-note");
    const want = sel && !host.hidden && isOff(ablated, sel.layer, sel.index) ? `${sel.layer} neuron ${sel.index} is switched off: its output is set to 0 (what if), so later layers see 0 here. The arithmetic shown is what it would compute.` : "";
    if (!want) {
      note?.remove();
      return;
    }
    if (note && note.textContent === want) return;
    note?.remove();
    host.prepend(h("div", { class: "cnnx-whyif-note", role: "note" }, want));
  }

  private onKeyDown = (e: KeyboardEvent) => {
    if (e.key !== "o" && e.key !== "O") return;
    if (this.el.dataset.offline) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const neuron = (e.target as HTMLElement | null)?.closest?.<HTMLElement>(".cnnx-neuron[data-layer][data-index]");
    if (!neuron || !this.root.contains(neuron)) return;
    const layer = neuron.dataset.layer ?? "";
    if (!ablatableLayers(this.network()).has(layer)) return;
    e.preventDefault();
    e.stopPropagation();
    this.toggle(layer, Number(neuron.dataset.index));
  };

  private onClick = (e: MouseEvent) => {
    const button = (e.target as HTMLElement | null)?.closest?.("button.cnnx-whyif-toggle");
    if (!button) return;
    const neuron = button.closest<HTMLElement>(".cnnx-neuron[data-layer][data-index]");
    // Capture phase: the neuron's own click (select) must not run too.
    e.preventDefault();
    e.stopPropagation();
    if (neuron) this.toggle(neuron.dataset.layer ?? "", Number(neuron.dataset.index));
  };

  // ---- which images --------------------------------------------------------------------------

  private syncTop(): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
    const msg = this.model.get("_top");
    if (!hasKeys(msg)) {
      this.strip.hidden = true;
      this.el.dataset.top = "0";
      this.stripItems.replaceChildren();
      return;
    }
    const m = msg as TopMessage;
    const [hh, ww] = m.shape;
    this.stripTitle.textContent = `Images that excite ${m.layer} neuron ${m.index} most (the outline: what its maximum sees). Click one to explain it.`;
    const items = m.items.map((item) => {
      const url = URL.createObjectURL(new Blob([bytesOf(item.png).slice()], { type: "image/png" }));
      this.urls.push(url);
      const [t, b, l, r] = item.field;
      const box = h("div", { class: "cnnx-whyif-field", "aria-hidden": "true" });
      box.style.top = `${(100 * t) / hh}%`;
      box.style.height = `${(100 * (b - t)) / hh}%`;
      box.style.left = `${(100 * l) / ww}%`;
      box.style.width = `${(100 * (r - l)) / ww}%`;
      const button = h(
        "button",
        {
          class: "cnnx-whyif-top",
          type: "button",
          role: "listitem",
          "data-rank": String(item.rank),
          "data-image-index": String(item.image_index),
          "aria-label": `image ${item.image_index}: maximum ${formatValue(item.value)} at (${item.y}, ${item.x}); show it`,
          title: `image ${item.image_index}: max ${formatValue(item.value)} at (${item.y}, ${item.x})`,
        },
        h("span", { class: "cnnx-whyif-top-img" }, h("img", { src: url, alt: "" }), box),
        h("span", { class: "cnnx-whyif-top-value" }, `#${item.image_index} · ${formatValue(item.value)}`),
      );
      button.addEventListener("click", () => this.model.send({ type: "show_top", rank: item.rank }));
      return button;
    });
    this.stripItems.replaceChildren(...items);
    this.strip.hidden = false;
    this.el.dataset.top = String(items.length);
  }

  destroy(): void {
    for (const [event, fn] of this.handlers) this.model.off(event as "change:ablated", fn);
    this.observer?.disconnect();
    if (this.frame) cancelAnimationFrame(this.frame);
    this.root.removeEventListener("keydown", this.onKeyDown);
    this.root.removeEventListener("click", this.onClick, true);
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.el.remove();
  }
}
