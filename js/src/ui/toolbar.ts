// The row above the overview: default-image thumbnails, upload button, busy indicator and the
// colour-scale control.

import { COLOR_SCALES, type ColorScale } from "../colors";
import { h } from "./dom";

export interface Thumbnail {
  name: string;
  label: string;
  data: DataView | ArrayBuffer | Uint8Array;
}

export interface ToolbarOptions {
  onChoose(index: number): void;
  onFile(file: File): void;
  onColorScale(scale: ColorScale): void;
}

const SCALE_LABELS: Record<ColorScale, [string, string]> = {
  unit: ["Unit", "one range per convolution, shared with its ReLU and pooling"],
  module: ["Module", "one range per block (up to and including a pooling layer)"],
  global: ["Global", "one range for all hidden layers"],
  neuron: ["Neuron", "each neuron coloured over its own range"],
};

function toBlobPart(data: Thumbnail["data"]): BlobPart {
  if (data instanceof ArrayBuffer) return data;
  const view = data as ArrayBufferView;
  return new Uint8Array(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength).slice();
}

export class Toolbar {
  readonly el: HTMLDivElement;
  private readonly thumbs: HTMLDivElement;
  private readonly scaleButtons = new Map<ColorScale, HTMLButtonElement>();
  private readonly busy: HTMLSpanElement;
  private urls: string[] = [];
  private buttons: { el: HTMLButtonElement; t: Thumbnail }[] = [];
  readonly fileInput: HTMLInputElement;

  constructor(parent: HTMLElement, private readonly opts: ToolbarOptions) {
    this.thumbs = h("div", { class: "cnnx-thumbs", role: "group", "aria-label": "example images" });
    this.fileInput = h("input", { class: "cnnx-upload-input", type: "file", accept: "image/*", tabindex: "-1" });
    this.fileInput.hidden = true;
    const upload = h(
      "button",
      { class: "cnnx-upload", type: "button", title: "Upload an image (or drop one on the widget)" },
      h("span", { class: "cnnx-upload-plus", "aria-hidden": "true" }, "+"),
      h("span", { class: "cnnx-upload-text" }, "Image"),
    );
    upload.setAttribute("aria-label", "upload an image");
    upload.addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      const f = this.fileInput.files?.[0];
      if (f) opts.onFile(f);
      this.fileInput.value = "";
    });
    this.busy = h("span", { class: "cnnx-busy", role: "status", "aria-live": "polite" });
    this.busy.hidden = true;
    const scale = h("div", { class: "cnnx-scale", role: "radiogroup", "aria-label": "colour scale" });
    for (const s of COLOR_SCALES) {
      const [label, title] = SCALE_LABELS[s];
      const b = h("button", { class: "cnnx-scale-btn", type: "button", role: "radio", "data-scale": s, title }, label);
      b.addEventListener("click", () => opts.onColorScale(s));
      this.scaleButtons.set(s, b);
      scale.append(b);
    }
    this.el = h(
      "div",
      { class: "cnnx-topbar" },
      this.thumbs,
      upload,
      this.fileInput,
      this.busy,
      h("span", { class: "cnnx-scale-group" }, h("span", { class: "cnnx-scale-label" }, "Colour"), scale),
    );
    parent.append(this.el);
  }

  setThumbnails(list: Thumbnail[]): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
    this.buttons = list.map((t, i) => {
      const url = URL.createObjectURL(new Blob([toBlobPart(t.data)], { type: "image/jpeg" }));
      this.urls.push(url);
      const el = h(
        "button",
        { class: "cnnx-thumb", type: "button", "data-name": t.name, title: t.label, "aria-label": `show ${t.label}` },
        h("img", { src: url, alt: "", draggable: "false" }),
      );
      el.addEventListener("click", () => this.opts.onChoose(i));
      return { el, t };
    });
    this.thumbs.replaceChildren(...this.buttons.map((b) => b.el));
  }

  /** Highlight the thumbnail of the current image (by file name or label). */
  setCurrent(imageName: string): void {
    for (const { el, t } of this.buttons) {
      const on = imageName === t.name || imageName === t.label;
      el.classList.toggle("cnnx-current", on);
      el.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  setColorScale(scale: ColorScale): void {
    for (const [s, b] of this.scaleButtons) {
      b.classList.toggle("cnnx-scale-on", s === scale);
      b.setAttribute("aria-checked", s === scale ? "true" : "false");
    }
  }

  setBusy(busy: boolean): void {
    this.busy.hidden = !busy;
    this.busy.textContent = busy ? "computing…" : "";
  }

  destroy(): void {
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.el.remove();
  }
}
