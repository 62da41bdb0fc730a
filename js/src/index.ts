// anywidget entry: wires the model's traits to the overview, the toolbar, the error banner and
// the detail panel. Decoding and drawing happen once per animation frame with the latest state
// only, so a burst of updates never queues up.

import type { AnyModel, RenderProps } from "@anywidget/types";
import "./styles.css";
import { type ColorScale, isColorScale } from "./colors";
import { type DetailView, type Selection, renderDetail } from "./detail/index";
import { Overview } from "./overview/overview";
import {
  type Activations,
  type ActivationsMessage,
  type Network,
  type NetworkMessage,
  decodeActivations,
  decodeNetwork,
} from "./payload";
import { channelName } from "./names";
import { ErrorBanner } from "./ui/banner";
import { h } from "./ui/dom";
import { type Thumbnail, Toolbar } from "./ui/toolbar";
import { WhyIf, type WhyIfModel } from "./whyif/whyif";

export interface WidgetModel {
  _network: NetworkMessage | Record<string, never>;
  _activations: ActivationsMessage | Record<string, never>;
  _thumbnails: Thumbnail[];
  selected: Selection | null;
  color_scale: string;
  _image_notice: string;
  error: string;
  busy: boolean;
}

/** Largest file the front end sends (the kernel refuses larger ones anyway). */
const MAX_UPLOAD_BYTES = 20 * 1024 * 1024;

function hasPayload(msg: unknown): boolean {
  return typeof msg === "object" && msg !== null && "version" in msg;
}

export class CnnExplainerView {
  readonly root: HTMLDivElement;
  private readonly banner: ErrorBanner;
  private readonly toolbar: Toolbar;
  private readonly overview: Overview;
  private readonly detailHost: HTMLDivElement;
  private readonly ro: ResizeObserver | null;
  private readonly whyif: WhyIf;
  private network: Network | null = null;
  private acts: Activations | null = null;
  private scale: ColorScale = "unit";
  private selection: Selection | null = null;
  private detail: DetailView | null = null;
  private detailLayer = "";
  /** Scroll the detail panel's top into view once it opens (after a click, not from Python). */
  private revealDetail = false;
  private fatal = "";
  private networkDirty = true;
  private actsDirty = true;
  private paintDirty = true;
  private selectionDirty = false;
  private frame = 0;
  private timer = 0;
  private received = 0;
  private readonly handlers: [string, () => void][] = [];

  constructor(
    private readonly model: AnyModel<WidgetModel>,
    el: HTMLElement,
  ) {
    this.root = h("div", {
      class: "cnnx-root cnnx-dropzone",
      role: "group",
      "aria-label": "CNN Explainer",
      "data-ready": "0",
      "data-seq": "",
      "data-prediction": "",
      "data-color-scale": "unit",
      "data-detail": "",
    });
    this.banner = new ErrorBanner(this.root);
    this.toolbar = new Toolbar(this.root, {
      onChoose: (index) => model.send({ type: "choose", index }),
      onFile: (file) => this.upload(file),
      hyperSource: () => this.hyperSource(),
      onColorScale: (s) => {
        model.set("color_scale", s);
        model.save_changes();
      },
    });
    const wrap = h("div", { class: "cnnx-overview-wrap" });
    this.root.append(wrap);
    this.overview = new Overview(wrap, {
      onSelect: (sel) => {
        this.revealDetail = true;
        this.select(sel);
      },
    });
    this.detailHost = h("div", { class: "cnnx-detail-host" });
    this.detailHost.hidden = true;
    this.root.append(this.detailHost, h("div", { class: "cnnx-drop-hint", "aria-hidden": "true" }, "Drop an image to explain it"));
    el.append(this.root);
    this.whyif = new WhyIf(this.root, model as unknown as AnyModel<WhyIfModel>, () => this.network);

    this.on("change:_network", () => {
      this.networkDirty = true;
      this.schedule();
    });
    this.on("change:_activations", () => {
      this.actsDirty = true;
      this.received = performance.now();
      this.schedule();
    });
    this.on("change:_thumbnails", () => this.syncThumbnails());
    this.on("change:_image_notice", () => this.syncNotice());
    this.on("change:color_scale", () => this.syncScale());
    // Like image updates, a burst of selections (e.g. a loop in Python) is drawn once, latest.
    this.on("change:selected", () => {
      this.selectionDirty = true;
      this.schedule();
    });
    this.on("change:error", () => this.syncError());
    this.on("change:busy", () => this.syncBusy());

    this.root.addEventListener("keydown", this.onKeyDown);
    this.root.addEventListener("dragover", this.onDragOver);
    this.root.addEventListener("dragleave", this.onDragLeave);
    this.root.addEventListener("drop", this.onDrop);

    this.syncThumbnails();
    this.syncNotice();
    this.syncBusy();
    this.syncError();
    this.scale = this.readScale();
    this.toolbar.setColorScale(this.scale);
    this.root.dataset.colorScale = this.scale;
    this.selection = model.get("selected") ?? null;

    this.ro = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(() => this.onResize());
    this.ro?.observe(this.root);
    this.received = performance.now();
    this.flush(); // first draw synchronously: the cell shows the network at once
  }

  private on(event: string, fn: () => void): void {
    this.model.on(event, fn);
    this.handlers.push([event, fn]);
  }

  private readScale(): ColorScale {
    const v = this.model.get("color_scale");
    return isColorScale(v) ? v : "unit";
  }

  // ---- drawing -------------------------------------------------------------------------------

  /** Draw the latest state on the next frame (at most one pending). */
  private schedule(): void {
    if (this.frame || this.timer) return;
    const run = () => {
      if (this.frame) cancelAnimationFrame(this.frame);
      if (this.timer) clearTimeout(this.timer);
      this.frame = 0;
      this.timer = 0;
      this.flush();
    };
    this.frame = requestAnimationFrame(run);
    // Hidden tabs get no animation frames; do not leave the view stale there.
    this.timer = window.setTimeout(run, 150);
  }

  private flush(): void {
    const t0 = performance.now();
    try {
      if (this.networkDirty) {
        this.networkDirty = false;
        const msg = this.model.get("_network");
        if (!hasPayload(msg)) return;
        this.network = decodeNetwork(msg as NetworkMessage);
        this.root.setAttribute("aria-label", `CNN Explainer: ${this.network.name}`);
        this.overview.setNetwork(this.network);
        this.overview.resize(this.width());
        this.overview.setSelection(this.selection);
        this.paintDirty = true;
      }
      if (!this.network) return;
      if (this.actsDirty) {
        this.actsDirty = false;
        const msg = this.model.get("_activations");
        if (!hasPayload(msg)) return;
        this.acts = decodeActivations(msg as ActivationsMessage);
        this.paintDirty = true;
      }
      const selectionChanged = this.selectionDirty;
      if (selectionChanged) {
        this.selectionDirty = false;
        this.readSelection();
      }
      if (this.acts && this.paintDirty) {
        this.paintDirty = false;
        const top = this.overview.paint(this.acts, this.scale);
        this.toolbar.setCurrent(this.acts.image.name, this.acts.image.source);
        this.toolbar.refreshHyper();
        this.root.dataset.prediction = top;
        this.root.dataset.seq = String(this.acts.seq);
        const t1 = performance.now();
        this.root.dataset.drawMs = (t1 - this.received).toFixed(1); // message -> drawn
        this.root.dataset.paintMs = (t1 - t0).toFixed(1); // decode + repaint only
        this.root.dataset.ready = "1";
        this.syncDetail();
      } else if (selectionChanged) {
        this.syncDetail();
      }
      if (this.fatal) {
        this.fatal = "";
        this.syncError();
      }
    } catch (err) {
      // A payload this front end cannot read (e.g. a version mismatch): say so, do not crash.
      this.fatal = err instanceof Error ? err.message : String(err);
      this.banner.set(this.fatal);
      this.root.dataset.fatal = "1";
      console.error("cnn-explainer-widget:", err);
    }
  }

  private width(): number {
    return this.root.clientWidth || this.root.getBoundingClientRect().width || 900;
  }

  private onResize(): void {
    this.overview.resize(this.width());
  }

  // ---- traits --------------------------------------------------------------------------------

  private syncThumbnails(): void {
    const list = this.model.get("_thumbnails");
    this.toolbar.setThumbnails(Array.isArray(list) ? list : []);
    if (this.acts) this.toolbar.setCurrent(this.acts.image.name, this.acts.image.source);
  }

  private syncNotice(): void {
    const text = this.model.get("_image_notice");
    this.toolbar.setNotice(typeof text === "string" ? text : "");
  }

  /** The input's first channel, for the hyperparameter explorer. */
  private hyperSource() {
    const input = this.acts?.layers.get("input");
    if (!input || input.shape.length !== 3) return null;
    const [, hh, ww] = input.shape;
    const channel = this.network ? channelName(this.network, "input", 0) : "input";
    return { map: input.values.subarray(0, hh * ww), h: hh, w: ww, grey: true, name: `${channel} channel of ${this.acts!.image.name}` };
  }

  private syncScale(): void {
    this.scale = this.readScale();
    this.toolbar.setColorScale(this.scale);
    this.root.dataset.colorScale = this.scale;
    this.paintDirty = true;
    this.schedule();
  }

  private syncError(): void {
    const msg = this.model.get("error");
    this.banner.set(this.fatal || (typeof msg === "string" ? msg : ""));
  }

  private syncBusy(): void {
    const busy = !!this.model.get("busy");
    this.toolbar.setBusy(busy);
    this.root.dataset.busy = busy ? "1" : "0";
  }

  private readSelection(): void {
    const sel = this.model.get("selected");
    this.selection = sel && typeof sel.layer === "string" && typeof sel.index === "number" ? sel : null;
    this.overview.setSelection(this.selection);
  }

  private syncDetail(): void {
    const sel = this.selection;
    const known = sel !== null && this.overview.columns.some((c) => c.layer === sel.layer);
    if (!sel || !known || !this.network || !this.acts) {
      this.detail?.destroy();
      this.detail = null;
      this.detailLayer = "";
      this.detailHost.hidden = true;
      this.root.dataset.detail = "";
      return;
    }
    const ctx = {
      network: this.network,
      activations: this.acts,
      selection: sel,
      select: (s: Selection | null) => this.select(s),
      colorScale: this.scale,
    };
    this.detailHost.hidden = false;
    try {
      if (this.detail && this.detailLayer === sel.layer) this.detail.update(ctx);
      else {
        this.detail?.destroy();
        this.detail = null;
        this.detailHost.replaceChildren();
        this.detail = renderDetail(this.detailHost, ctx);
        this.detailLayer = sel.layer;
      }
    } catch (err) {
      console.error("cnn-explainer-widget: detail view failed", err);
      this.detailHost.replaceChildren(h("div", { class: "cnnx-detail-failed" }, `Could not draw ${sel.layer}: ${String(err)}`));
      this.detail = null;
      this.detailLayer = "";
    }
    this.root.dataset.detail = sel.layer;
    if (this.revealDetail) {
      this.revealDetail = false;
      this.scrollDetailIntoView();
    }
  }

  /** Minimal scroll (of whatever scrolls the notebook) so the panel's first ~240 px show. */
  private scrollDetailIntoView(): void {
    const anchor = h("div", { class: "cnnx-detail-anchor", "aria-hidden": "true" });
    anchor.style.height = `${Math.min(240, this.detailHost.offsetHeight || 240)}px`;
    this.detailHost.prepend(anchor);
    anchor.scrollIntoView?.({ block: "nearest", behavior: "smooth" });
    window.setTimeout(() => anchor.remove(), 1000);
  }

  private select(sel: Selection | null): void {
    const value = sel ? { ...sel } : null;
    this.model.set("selected", value);
    this.model.save_changes();
    // The user's own click or key is drawn at once; only changes from Python wait a frame.
    this.selectionDirty = false;
    this.readSelection();
    this.syncDetail();
  }

  // ---- input ---------------------------------------------------------------------------------

  private upload(file: File): void {
    if (file.size > MAX_UPLOAD_BYTES) {
      this.banner.set(`Could not use ${file.name}: it is ${file.size.toLocaleString()} bytes; uploads up to ${MAX_UPLOAD_BYTES.toLocaleString()} bytes are accepted.`);
      return;
    }
    file.arrayBuffer().then(
      (buf) => this.model.send({ type: "upload", name: file.name }, undefined, [buf]),
      (err) => this.banner.set(`Could not read ${file.name}: ${String(err)}`),
    );
  }

  private onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Escape" && this.selection) {
      e.preventDefault();
      e.stopPropagation();
      this.select(null);
    }
  };

  private onDragOver = (e: DragEvent) => {
    if (!e.dataTransfer || ![...e.dataTransfer.types].includes("Files")) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    this.root.classList.add("cnnx-dragging");
  };

  private onDragLeave = (e: DragEvent) => {
    if (!this.root.contains(e.relatedTarget as Node | null)) this.root.classList.remove("cnnx-dragging");
  };

  private onDrop = (e: DragEvent) => {
    this.root.classList.remove("cnnx-dragging");
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    e.preventDefault();
    this.toolbar.sendFile(file);
  };

  destroy(): void {
    for (const [event, fn] of this.handlers) this.model.off(event as "change:_network", fn);
    if (this.frame) cancelAnimationFrame(this.frame);
    if (this.timer) clearTimeout(this.timer);
    this.ro?.disconnect();
    this.detail?.destroy();
    this.whyif.destroy();
    this.toolbar.destroy();
    this.overview.destroy();
    this.root.remove();
  }
}

// Kernel-less rendering of a saved state (CNNExplainer.to_html, notebook exports).
export { mountSaved } from "./export/saved";

export default {
  render({ model, el }: RenderProps<WidgetModel>) {
    const view = new CnnExplainerView(model, el);
    return () => view.destroy();
  },
};
