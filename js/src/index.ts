// anywidget entry: wires the model's traits to the overview, the toolbar, the error banner and
// the detail panel. Decoding and drawing happen once per animation frame with the latest state
// only, so a burst of updates never queues up.

import type { AnyModel, RenderProps } from "@anywidget/types";
import "./styles.css";
import { type ColorScale, isColorScale } from "./colors";
import { type Selection } from "./detail/index";
import { prefersReducedMotion, throttle } from "./detail/dom";
import { IDENTITY } from "./overview/animator";
import { ElasticView, type ElasticContext, type ElasticHost } from "./overview/elastic";
import { elasticLayout } from "./overview/elastic-layout";
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
import { Fetcher, type FetchModel, keepOnly, missing, viewNeeds } from "./fetch";
import { ErrorBanner } from "./ui/banner";
import { Pictures } from "./export/menu";
import { ConnectionWatch, watchConnection } from "./ui/connection";
import { h } from "./ui/dom";
import { type Thumbnail, Toolbar } from "./ui/toolbar";
import { WhyIf, type WhyIfModel } from "./whyif/whyif";
import { sendUpload } from "./ui/upload";

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
  private readonly ro: ResizeObserver | null;
  private readonly whyif: WhyIf;
  private network: Network | null = null;
  private acts: Activations | null = null;
  private scale: ColorScale = "unit";
  private selection: Selection | null = null;
  /** What is shown: the overview, the elastic view of the selection, or its formula card too. */
  private level: "overview" | "elastic" | "formula" = "overview";
  private view: ElasticView | null = null;
  private viewKey = "";
  private page = 0;
  private readonly sendPos = throttle((sel: Selection) => this.report(sel), 150);
  private fatal = "";
  private networkDirty = true;
  private actsDirty = true;
  private paintDirty = true;
  private selectionDirty = false;
  private frame = 0;
  private timer = 0;
  private received = 0;
  private readonly handlers: [string, () => void][] = [];
  /** Exact values of large layers for the views (js/src/fetch.ts). */
  private readonly fetcher: Fetcher;
  /** The selection and image whose values are being fetched ("" when none). */
  private fetching = "";

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
      "data-level": "overview",
      "data-settled": "1",
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
        const cur = this.selection;
        if (this.view && cur && cur.layer === sel.layer && cur.index === sel.index) this.view.openFormula();
        else this.select(sel);
      },
      onBackground: () => this.back(),
    });
    this.root.append(h("div", { class: "cnnx-drop-hint", "aria-hidden": "true" }, "Drop an image to explain it"));
    el.append(this.root);
    this.whyif = new WhyIf(this.root, model as unknown as AnyModel<WhyIfModel>, () => this.network);
    this.fetcher = new Fetcher(model as unknown as FetchModel);

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
    this.root.addEventListener("pointerdown", this.onSkip, true);
    this.root.addEventListener("keydown", this.onSkipKey, true);
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
        this.closeView(false);
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
        if (this.view && this.selection && this.exactFor(this.selection)) this.view.update(this.elasticContext());
        if (selectionChanged || !this.view) this.syncDetail();
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
    const before = this.overview.geometry()?.layout.width;
    this.overview.resize(this.width());
    if (this.view && this.selection && this.overview.geometry()?.layout.width !== before) {
      const formula = this.level === "formula";
      this.closeView(false);
      this.openView(this.selection, formula, false);
    }
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
    if (input.values.length < hh * ww) return null; // a large input sent as a preview
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

  /** Bring the view in line with the selection (from Python, or once data arrive). */
  private syncDetail(): void {
    const sel = this.selection;
    const known = sel !== null && this.overview.columns.some((c) => c.layer === sel.layer);
    if (!sel || !known || !this.network || !this.acts) {
      this.closeView(true);
      return;
    }
    if (this.view && this.viewKey === `${sel.layer}/${sel.index}`) {
      this.view.setPosition(sel.y, sel.x);
      return;
    }
    if (!this.exactFor(sel)) return; // opened once its values are in
    // A position given from Python asks for the numbers at that position: the formula level.
    this.page = 0;
    this.openView(sel, sel.y !== undefined && sel.x !== undefined, true);
  }

  /**
   * Whether the current activations hold exactly what the view of `sel` reads. If not, the
   * missing maps are fetched from the kernel and the view opens (or updates) once they are in.
   */
  private exactFor(sel: Selection): boolean {
    const network = this.network;
    const acts = this.acts;
    if (!network || !acts) return false;
    const needs = viewNeeds(network, acts, sel.layer, sel.index);
    if (!missing(acts, needs).length) {
      keepOnly(acts, needs);
      return true;
    }
    if ((this.model as { kernelless?: boolean }).kernelless === true) {
      this.banner.set(`This saved copy holds previews of ${needs.map((w) => w.layer).join(", ")}, not their values: explaining ${sel.layer} needs the kernel.`);
      return false;
    }
    const key = `${acts.seq}/${sel.layer}/${sel.index}`;
    if (this.fetching === key) return false; // asked already
    this.fetching = key;
    this.root.dataset.fetching = "1";
    this.fetcher.request(acts, needs, (error) => {
      if (error === "replaced") return;
      this.fetching = "";
      this.root.dataset.fetching = "0";
      this.root.dataset.fetched = String(this.fetcher.fetched);
      if (error === "stale") return; // a newer image is on its way; its view asks again
      if (error !== null) {
        this.banner.set(`Could not explain ${sel.layer}: ${error}`);
        return;
      }
      const cur = this.selection;
      if (!cur || cur.layer !== sel.layer || cur.index !== sel.index || this.acts !== acts) return;
      if (this.view && this.viewKey === `${sel.layer}/${sel.index}`) this.view.update(this.elasticContext());
      else this.syncDetail();
    });
    return false;
  }

  private elasticContext(): ElasticContext {
    return {
      network: this.network!,
      acts: this.acts!,
      scale: this.scale,
      extent: (layer, index) => this.overview.extentOf(layer, index),
    };
  }

  /** Milliseconds of a transition (0: none, under reduced motion). */
  private duration(animate: boolean): number {
    return animate && !prefersReducedMotion() ? 500 : 0;
  }

  private openView(sel: Selection, formula: boolean, animate: boolean): void {
    const geo = this.overview.geometry();
    if (!geo || !this.network || !this.acts) return;
    const c = geo.cols.findIndex((col) => col.layer === sel.layer);
    const anim = this.overview.animator;
    anim.finish();
    const L = c >= 0 ? elasticLayout({ cols: geo.cols, base: geo.layout, rects: geo.rects, sel: c, index: sel.index, page: this.page }) : null;
    this.view?.destroy();
    this.view = null;
    if (!L) {
      this.closeView(false);
      return;
    }
    const host: ElasticHost = {
      report: (y, x, now) => {
        const s = this.selection;
        if (!s || !now) return; // hover stays in the page: only a click or a key sets `selected`
        this.sendPos({ layer: s.layer, index: s.index, y, x });
        if (now) this.sendPos.flush();
      },
      select: (layer, index) => this.select({ layer, index }),
      back: () => this.back(),
      close: () => this.select(null),
      page: (p) => {
        if (!this.selection) return;
        this.page = p;
        const f = this.level === "formula";
        this.openView(this.selection, f, false);
      },
      level: (f) => {
        this.level = f ? "formula" : "elastic";
        this.root.dataset.level = this.level;
      },
    };
    let view: ElasticView;
    try {
      view = new ElasticView(this.overview.el, L, geo.cols, this.elasticContext(), host, { y: sel.y, x: sel.x });
    } catch (err) {
      console.error("cnn-explainer-widget: elastic view failed", err);
      this.banner.set(`Could not explain ${sel.layer}: ${String(err)}`);
      return;
    }
    this.view = view;
    this.viewKey = `${sel.layer}/${sel.index}`;
    this.level = "elastic";
    this.root.dataset.level = "elastic";
    this.root.dataset.detail = sel.layer;
    this.root.dataset.settled = "0";
    const targets = this.overview.targets(L);
    // The explanation's layer appears when the neurons arrive (see .cnnx-ov-moving).
    const given = sel.y !== undefined && sel.x !== undefined;
    if (formula) view.openFormula();
    // The window starts sliding at once (not when a position was asked for).
    if (!given) view.start();
    anim.run(targets, this.duration(animate), () => {
      view.settle(false);
      if (this.view === view) this.settled();
    });
    view.root.focus({ preventScroll: true });
  }

  /** Back to the overview, exactly as it was (animated unless `animate` is false). */
  private closeView(animate: boolean): void {
    const view = this.view;
    this.root.dataset.detail = "";
    this.level = "overview";
    this.root.dataset.level = "overview";
    this.viewKey = "";
    if (!view) return;
    this.view = null;
    this.sendPos.cancel();
    // Keyboard users land on the neuron they opened.
    if (view.root.contains(document.activeElement)) this.overview.focusNeuron(view.root.dataset.layer ?? "", Number(view.root.dataset.index));
    const anim = this.overview.animator;
    anim.finish();
    const targets = this.overview.targets(null);
    view.root.hidden = true; // the overview's neurons go back; the explanation is gone at once
    this.root.dataset.settled = "0";
    anim.run(targets, this.duration(animate), () => {
      view.destroy();
      anim.reset(view.root);
      this.overview.restore();
      if (!this.view) this.settled();
    });
  }

  /**
   * A transition ended: test and benchmark hooks on the root (data-settled, the number of
   * animation frames drawn, when the first frame ran and when it settled, the frame times).
   */
  private settled(): void {
    const anim = this.overview.animator;
    const d = this.root.dataset;
    d.settled = "1";
    d.frames = String(anim.frameTimes.length);
    d.tFirst = anim.firstFrameAt ? anim.firstFrameAt.toFixed(2) : "";
    d.tSettled = performance.now().toFixed(2);
    d.frameTimes = anim.frameTimes.map((t) => t.toFixed(2)).join(",");
    d.frameWork = anim.workTimes.map((t) => t.toFixed(2)).join(",");
  }

  /** One level back: formula → elastic view → overview. */
  private back(): void {
    if (this.level === "formula" && this.view) this.view.closeFormula();
    else if (this.selection) this.select(null);
  }

  /** Send a position of the open view to Python (no redraw: the view is already there). */
  private report(sel: Selection): void {
    const cur = this.selection;
    if (!cur || cur.layer !== sel.layer || cur.index !== sel.index) return;
    this.model.set("selected", { ...sel });
    this.model.save_changes();
    this.selectionDirty = false;
    this.selection = sel;
  }

  private select(sel: Selection | null): void {
    this.sendPos.cancel();
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
      (buf) => sendUpload(this.model, file.name, buf),
      (err) => this.banner.set(`Could not read ${file.name}: ${String(err)}`),
    );
  }

  private onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Escape" && this.selection) {
      e.preventDefault();
      e.stopPropagation();
      this.back();
    }
  };

  /** A click while a transition runs skips to its end, then does what it does. */
  private onSkip = () => {
    if (this.overview.animator.running) this.overview.animator.finish();
  };

  /** A key skips a running transition and then does what it does (Esc steps back). */
  private onSkipKey = () => {
    if (this.overview.animator.running) this.overview.animator.finish();
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
    this.fetcher.destroy();
    this.sendPos.cancel();
    this.overview.animator.finish();
    this.view?.destroy();
    this.whyif.destroy();
    this.root.removeEventListener("pointerdown", this.onSkip, true);
    this.root.removeEventListener("keydown", this.onSkipKey, true);
    this.toolbar.destroy();
    this.overview.destroy();
    this.root.remove();
  }
}

// Kernel-less rendering of a saved state (CNNExplainer.to_html, notebook exports).
export { mountSaved } from "./export/saved";

export default {
  render({ model, el }: RenderProps<WidgetModel>) {
    const watch = new ConnectionWatch(model);
    const view = new CnnExplainerView(watchConnection(model, watch), el);
    watch.attach(view.root);
    const pictures = new Pictures(model, view.root);
    return () => {
      pictures.destroy();
      view.destroy();
      watch.destroy();
    };
  },
};
