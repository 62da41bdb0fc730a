// The row above the overview: default-image thumbnails (and the user's uploads, once the kernel
// accepted them), upload button, busy indicator, the hyperparameter explorer's button and the
// colour-scale control; under it a line with the newcomer's hint (until the first click on a
// neuron) and what was done to the current image (centre-cropped, scaled up).

import { COLOR_SCALES, type ColorScale } from "../colors";
import { HyperExplorer } from "../detail/hyper";
import { h } from "./dom";

export interface Thumbnail {
  name: string;
  label: string;
  data: DataView | ArrayBuffer | Uint8Array;
}

/** The map the hyperparameter explorer takes its numbers from. */
export interface HyperSource {
  map: ArrayLike<number>;
  h: number;
  w: number;
  grey: boolean;
  name: string;
}

export interface ToolbarOptions {
  onChoose(index: number): void;
  onFile(file: File): void;
  onColorScale(scale: ColorScale): void;
  /** The current image's first channel, for the hyperparameter explorer (null: none yet). */
  hyperSource?(): HyperSource | null;
}

const SCALE_LABELS: Record<ColorScale, [string, string]> = {
  unit: ["Unit", "one range per convolution, shared with its ReLU and pooling"],
  module: ["Module", "one range per block (up to and including a pooling layer)"],
  global: ["Global", "one range for all hidden layers"],
  neuron: ["Neuron", "each neuron coloured over its own range"],
};

/** Uploads kept as thumbnails (oldest dropped first; each holds only a File handle and a URL). */
const MAX_UPLOADS = 4;

export const HINT_TEXT = "Click any neuron to see how it is computed";

function toBlobPart(data: Thumbnail["data"]): BlobPart {
  if (data instanceof ArrayBuffer) return data;
  const view = data as ArrayBufferView;
  return new Uint8Array(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength).slice();
}

interface Upload {
  file: File;
  url: string;
  el: HTMLButtonElement;
}

export class Toolbar {
  readonly el: HTMLDivElement;
  /** The line under the toolbar: the hint and the current image's notice. */
  readonly infoLine: HTMLDivElement;
  private readonly thumbs: HTMLDivElement;
  private readonly uploadsEl: HTMLDivElement;
  private readonly scaleButtons = new Map<ColorScale, HTMLButtonElement>();
  private readonly busy: HTMLSpanElement;
  private readonly hint: HTMLSpanElement;
  private readonly notice: HTMLSpanElement;
  private readonly hyperButton: HTMLButtonElement;
  private readonly hyperPanel: HTMLDivElement;
  private hyper: HyperExplorer | null = null;
  private urls: string[] = [];
  private buttons: { el: HTMLButtonElement; t: Thumbnail }[] = [];
  private uploads: Upload[] = [];
  /** The file sent last, until the kernel shows it (or refuses it). */
  private pending: File | null = null;
  private current = "";
  readonly fileInput: HTMLInputElement;

  constructor(
    private readonly parent: HTMLElement,
    private readonly opts: ToolbarOptions,
  ) {
    this.thumbs = h("div", { class: "cnnx-thumbs", role: "group", "aria-label": "example images" });
    this.uploadsEl = h("div", { class: "cnnx-thumbs cnnx-uploads", role: "group", "aria-label": "your images" });
    this.uploadsEl.hidden = true;
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
      if (f) this.sendFile(f);
      this.fileInput.value = "";
    });
    this.busy = h("span", { class: "cnnx-busy", role: "status", "aria-live": "polite" });
    this.busy.hidden = true;
    this.hyperButton = h(
      "button",
      {
        class: "cnnx-hyper-btn",
        type: "button",
        "aria-expanded": "false",
        title: "How padding, kernel size and stride set a convolution's output size",
      },
      "Hyperparameters",
    );
    this.hyperButton.addEventListener("click", () => this.toggleHyper());
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
      this.uploadsEl,
      upload,
      this.fileInput,
      this.busy,
      h(
        "span",
        { class: "cnnx-tools" },
        this.hyperButton,
        h("span", { class: "cnnx-scale-group" }, h("span", { class: "cnnx-scale-label" }, "Colour"), scale),
      ),
    );
    this.hint = h("span", { class: "cnnx-hint" }, HINT_TEXT);
    this.notice = h("span", { class: "cnnx-image-notice", role: "status", "aria-live": "polite" });
    this.notice.hidden = true;
    this.infoLine = h("div", { class: "cnnx-infoline" }, this.hint, this.notice);
    this.hyperPanel = h("div", { class: "cnnx-hyper-panel", role: "region", "aria-label": "hyperparameter explorer" });
    this.hyperPanel.hidden = true;
    parent.append(this.el, this.hyperPanel, this.infoLine);
    parent.dataset.hint = "1";
    // The hint goes at the first click (or Enter) on a neuron, wherever it is drawn.
    parent.addEventListener("click", this.onParentClick);
    parent.addEventListener("keydown", this.onParentKey);
  }

  // ---- thumbnails and uploads -----------------------------------------------------------------

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
    this.markCurrent();
  }

  /** Send `file` to the kernel; it joins the strip once the kernel shows it. */
  sendFile(file: File): void {
    this.pending = file;
    this.opts.onFile(file);
  }

  /** The kernel refused the pending upload: forget it. */
  refused(): void {
    this.pending = null;
  }

  /**
   * The image now shown: highlight its thumbnail. An upload the kernel accepted (source
   * "upload", the pending file's name) becomes a thumbnail with its name.
   */
  setCurrent(imageName: string, source = ""): void {
    this.current = imageName;
    const file = this.pending;
    if (file && source === "upload" && imageName === file.name) {
      this.pending = null;
      this.addUpload(file);
    }
    this.markCurrent();
  }

  private addUpload(file: File): void {
    const same = this.uploads.find((u) => u.file.name === file.name);
    if (same) this.dropUpload(same);
    while (this.uploads.length >= MAX_UPLOADS) this.dropUpload(this.uploads[0]);
    const url = URL.createObjectURL(file);
    const el = h(
      "button",
      { class: "cnnx-thumb cnnx-thumb-upload", type: "button", "data-name": file.name, title: file.name, "aria-label": `show ${file.name}` },
      h("img", { src: url, alt: "", draggable: "false" }),
      h("span", { class: "cnnx-thumb-name" }, file.name),
    );
    const entry: Upload = { file, url, el };
    el.addEventListener("click", () => this.sendFile(entry.file));
    this.uploads.push(entry);
    this.uploadsEl.replaceChildren(...this.uploads.map((u) => u.el));
    this.uploadsEl.hidden = false;
  }

  private dropUpload(u: Upload): void {
    URL.revokeObjectURL(u.url);
    u.el.remove();
    this.uploads = this.uploads.filter((x) => x !== u);
    this.uploadsEl.hidden = this.uploads.length === 0;
  }

  private markCurrent(): void {
    const name = this.current;
    const all = [...this.buttons.map(({ el, t }) => ({ el, on: name === t.name || name === t.label })), ...this.uploads.map((u) => ({ el: u.el, on: name === u.file.name }))];
    for (const { el, on } of all) {
      el.classList.toggle("cnnx-current", on);
      el.setAttribute("aria-pressed", on ? "true" : "false");
    }
  }

  /** What was done to the current image ("" hides the notice). */
  setNotice(text: string): void {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }

  // ---- hint ----------------------------------------------------------------------------------

  private onParentClick = (e: MouseEvent) => {
    if ((e.target as Element | null)?.closest?.(".cnnx-neuron")) this.hideHint();
  };

  private onParentKey = (e: KeyboardEvent) => {
    if ((e.key === "Enter" || e.key === " ") && (e.target as Element | null)?.closest?.(".cnnx-neuron")) this.hideHint();
  };

  hideHint(): void {
    if (this.hint.hidden) return;
    this.hint.hidden = true;
    this.parent.dataset.hint = "0";
  }

  // ---- hyperparameter explorer ---------------------------------------------------------------

  private toggleHyper(): void {
    const open = this.hyperPanel.hidden === true;
    this.hyperPanel.hidden = !open;
    this.hyperButton.setAttribute("aria-expanded", open ? "true" : "false");
    this.hyperButton.classList.toggle("cnnx-on", open);
    if (open && !this.hyper) {
      this.hyper = new HyperExplorer();
      const close = h("button", { class: "cnnx-hyper-close", type: "button", "aria-label": "close the hyperparameter explorer" }, "×");
      close.addEventListener("click", () => this.toggleHyper());
      this.hyperPanel.append(h("div", { class: "cnnx-hyper-head" }, h("span", { class: "cnnx-hyper-heading" }, "Hyperparameter explorer"), close), this.hyper.root);
    }
    if (open) this.refreshHyper();
  }

  /** Give the open explorer the current image's numbers (call after a new image). */
  refreshHyper(): void {
    if (!this.hyper || this.hyperPanel.hidden) return;
    const src = this.opts.hyperSource?.();
    if (src) this.hyper.setSource(src.map, src.h, src.w, src.grey, src.name);
  }

  // ---- colour scale and busy -----------------------------------------------------------------

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
    for (const u of this.uploads) URL.revokeObjectURL(u.url);
    this.hyper?.destroy();
    this.parent.removeEventListener("click", this.onParentClick);
    this.parent.removeEventListener("keydown", this.onParentKey);
    this.el.remove();
    this.hyperPanel.remove();
    this.infoLine.remove();
  }
}
