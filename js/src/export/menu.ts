// The picture button in the toolbar (download PNG or SVG of the overview or the open
// explanation view) and the page's side of `CNNExplainer.save_image` (Python asks a displayed
// view for a picture; the view answers with the file's bytes).

import type { AnyModel } from "@anywidget/types";
import { h } from "../ui/dom";
import { type PictureFormat, type PictureTarget, pictureElement, takePicture } from "./picture";
import "./export.css";

/** Largest picture sent back to Python (JupyterLab drops websocket messages over 10 MiB). */
const MAX_REPLY_BYTES = 9 * 1024 * 1024;

type Listener = (...args: unknown[]) => void;

interface PictureRequest {
  type: "picture-request";
  id: number;
  target: PictureTarget;
  format: PictureFormat;
  scale: number;
  light: boolean;
}

function isRequest(msg: unknown): msg is PictureRequest {
  if (typeof msg !== "object" || msg === null) return false;
  const m = msg as Record<string, unknown>;
  return (
    m.type === "picture-request" &&
    typeof m.id === "number" &&
    (m.target === "overview" || m.target === "detail") &&
    (m.format === "png" || m.format === "svg") &&
    typeof m.scale === "number" &&
    typeof m.light === "boolean"
  );
}

function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export class Pictures {
  readonly button: HTMLButtonElement;
  private readonly menu: HTMLDivElement;
  private readonly light: HTMLInputElement;
  private readonly status: HTMLSpanElement;
  private readonly items: { el: HTMLButtonElement; target: PictureTarget }[] = [];

  constructor(
    // biome-ignore lint: any widget model
    private readonly model: AnyModel<any>,
    private readonly root: HTMLElement,
  ) {
    this.button = h("button", { class: "cnnx-picture-btn", type: "button", title: "Download a picture (PNG or SVG) of the overview or the open explanation", "aria-haspopup": "true", "aria-expanded": "false" }, "⤓ Picture");
    this.light = h("input", { type: "checkbox", class: "cnnx-picture-light" });
    this.status = h("span", { class: "cnnx-picture-status", role: "status" });
    this.menu = h("div", { class: "cnnx-picture-menu", role: "menu", "aria-label": "download a picture" });
    for (const target of ["overview", "detail"] as const) {
      for (const format of ["png", "svg"] as const) {
        const label = `${target === "overview" ? "Overview" : "Explanation"} · ${format.toUpperCase()}${format === "png" ? " (2×)" : ""}`;
        const el = h("button", { class: "cnnx-picture-item", type: "button", role: "menuitem", "data-target": target, "data-format": format }, label);
        el.addEventListener("click", () => this.save(target, format));
        this.items.push({ el, target });
        this.menu.append(el);
      }
    }
    this.menu.append(h("label", { class: "cnnx-picture-light-label" }, this.light, " light background (any theme)"), this.status);
    this.menu.hidden = true;
    this.button.addEventListener("click", () => this.toggle());
    this.menu.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        this.toggle(false);
        this.button.focus();
      }
    });
    const wrap = h("span", { class: "cnnx-picture" }, this.button, this.menu);
    const bar = root.querySelector(".cnnx-topbar");
    if (bar) bar.append(wrap);
    else root.prepend(wrap);
    model.on("msg:custom", this.onMessage as Listener);
    // Python's save_image needs a displayed view: say that one is here (and when it goes).
    model.send({ type: "view", shown: true });
  }

  private toggle(open = this.menu.hidden): void {
    this.menu.hidden = !open;
    this.button.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) return;
    this.status.textContent = "";
    // open towards the side of the widget with room for it
    const rootBox = this.root.getBoundingClientRect();
    const btnBox = this.button.getBoundingClientRect();
    this.menu.classList.toggle("cnnx-picture-menu-left", btnBox.right - rootBox.left < 240);
    for (const { el, target } of this.items) {
      const why = pictureElement(this.root, target);
      el.disabled = typeof why === "string";
      el.title = typeof why === "string" ? why : "";
    }
    this.items.find((i) => !i.el.disabled)?.el.focus();
  }

  private async save(target: PictureTarget, format: PictureFormat): Promise<void> {
    try {
      const pic = await takePicture(this.root, target, format, { scale: 2, light: this.light.checked });
      const layer = target === "detail" ? this.root.dataset.detail || "explanation" : "overview";
      download(pic.blob, `cnn-explainer-${layer}.${format}`);
      this.root.dataset.pictureSaved = `${target}.${format}`;
      this.toggle(false);
    } catch (err) {
      this.status.textContent = err instanceof Error ? err.message : String(err);
    }
  }

  private onMessage = (msg: unknown) => {
    if (!isRequest(msg)) return;
    const reply = (content: Record<string, unknown>, buffers: ArrayBuffer[] = []) =>
      this.model.send({ type: "picture", id: msg.id, ...content }, undefined, buffers);
    takePicture(this.root, msg.target, msg.format, { scale: msg.scale, light: msg.light }).then(
      async (pic) => {
        if (pic.blob.size > MAX_REPLY_BYTES) {
          reply({ ok: false, error: `the picture is ${pic.blob.size.toLocaleString()} bytes, more than a notebook message carries; use a smaller scale` });
          return;
        }
        reply({ ok: true, width: pic.width, height: pic.height }, [await pic.blob.arrayBuffer()]);
      },
      (err) => reply({ ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  };

  destroy(): void {
    this.model.off("msg:custom", this.onMessage as Listener);
    this.model.send({ type: "view", shown: false });
  }
}
