// The widget without a kernel: a saved state (from `CNNExplainer.to_html()` or from the widget
// state a notebook export embeds) drives the same view through a model that lives in the page.
// Every explanation works, because the view computes its math from data it already holds;
// what needs the kernel (another image) is disabled with a one-line reason.

import type { AnyModel } from "@anywidget/types";
import "./export.css";

/** A widget's state as ipywidgets saves it: JSON, with binary values moved to `buffers`. */
export interface SavedState {
  state: Record<string, unknown>;
  buffers?: { path: (string | number)[]; encoding?: string; data: string }[];
}

/** Traits the page may set but only Python acts on (switching neurons off, saliency overlays). */
const KERNEL_TRAITS: ReadonlySet<string> = new Set(["ablated", "overlay", "overlay_target"]);

type RenderFn = (props: { model: AnyModel; el: HTMLElement }) => unknown;

/** Why the kernel-only controls are off in a saved copy (shown once in the toolbar). */
export const OFFLINE_REASON =
  "Saved copy without a kernel: every explanation works here; choosing or uploading an image, switching neurons off and saliency need the notebook.";

function base64ToView(data: string): DataView {
  const bin = atob(data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new DataView(bytes.buffer);
}

/** Put each buffer back at its path in `state` (as the widget manager does: a DataView). */
export function restoreBuffers(saved: SavedState): Record<string, unknown> {
  const state = structuredClone(saved.state) as Record<string, unknown>;
  for (const b of saved.buffers ?? []) {
    if (!Array.isArray(b.path) || b.path.length === 0 || typeof b.data !== "string") continue;
    let obj: Record<string | number, unknown> = state;
    for (const key of b.path.slice(0, -1)) {
      const next = obj[key];
      if (typeof next !== "object" || next === null) {
        obj = {};
        break;
      }
      obj = next as Record<string | number, unknown>;
    }
    obj[b.path[b.path.length - 1]] = base64ToView(b.data);
  }
  return state;
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (a instanceof DataView || b instanceof DataView) return false;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

type Listener = (...args: unknown[]) => void;

/**
 * A model that lives in the page: `get`/`set`/`on`/`off` like anywidget's, `save_changes` keeps
 * the values here, and `send` (what would go to the kernel) calls `onSend`.
 */
export class LocalModel {
  private readonly listeners = new Map<string, Set<Listener>>();
  /** No kernel behind this model: nothing to watch for answers (see ui/connection.ts). */
  readonly kernelless = true;
  readonly widget_manager = {
    get_model: () => Promise.reject(new Error("no kernel: this is a saved copy of the widget")),
  };

  constructor(
    private readonly state: Record<string, unknown>,
    private readonly onSend: (content: unknown) => void = () => {},
    /** Traits only the kernel can act on: setting one here is refused with `onKernelOnly`. */
    private readonly kernelOnly: ReadonlySet<string> = new Set(),
    private readonly onKernelOnly: (key: string) => void = () => {},
  ) {}

  get(key: string): unknown {
    return this.state[key];
  }

  set(key: string, value: unknown): void {
    if (this.kernelOnly.has(key)) {
      this.onKernelOnly(key);
      return;
    }
    const old = this.state[key];
    this.state[key] = value;
    if (!same(old, value)) this.emit(`change:${key}`);
  }

  on(event: string, fn: Listener): void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
  }

  off(event?: string | null, fn?: Listener | null): void {
    if (!event) this.listeners.clear();
    else if (!fn) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(fn);
  }

  save_changes(): void {}

  send(content: unknown): void {
    this.onSend(content);
  }

  private emit(event: string, ...args: unknown[]): void {
    for (const fn of [...(this.listeners.get(event) ?? [])]) fn(...args);
  }
}

/** Turn off the controls that need a kernel and say why, in one line under the toolbar. */
function markOffline(el: HTMLElement): void {
  for (const b of el.querySelectorAll<HTMLButtonElement>(".cnnx-thumb, .cnnx-upload")) {
    b.disabled = true;
    b.title = OFFLINE_REASON;
  }
  const root = el.querySelector<HTMLElement>(".cnnx-root");
  if (!root) return;
  root.dataset.offline = "1";
  const note = document.createElement("div");
  note.className = "cnnx-offline-note";
  note.setAttribute("role", "note");
  note.textContent = OFFLINE_REASON;
  const bar = root.querySelector(".cnnx-topbar");
  if (bar) bar.after(note);
  else root.prepend(note);
}

/**
 * Show a saved widget in `el` with no kernel: `render` is the widget's own (the module's
 * default export). Returns the cleanup function.
 */
export function mountSaved(el: HTMLElement, saved: SavedState, render: RenderFn): () => void {
  const state = restoreBuffers(saved);
  state.busy = false;
  // A notebook export saves the widget's CSS in its state (anywidget injects it when live).
  if (typeof state._css === "string" && state._css && !document.querySelector("style[data-cnnx-saved]")) {
    const style = document.createElement("style");
    style.dataset.cnnxSaved = "";
    style.textContent = state._css;
    document.head.append(style);
  }
  const model: LocalModel = new LocalModel(
    state,
    (content) => {
      // A dropped file, a thumbnail or a top-image click would go to the kernel: there is none.
      const kind = typeof content === "object" && content !== null ? (content as { type?: unknown }).type : "";
      if (kind !== "view" && kind !== "ping") model.set("error", OFFLINE_REASON);
    },
    KERNEL_TRAITS,
    () => model.set("error", OFFLINE_REASON),
  );
  const cleanup = render({ model: model as unknown as AnyModel, el });
  markOffline(el);
  return typeof cleanup === "function" ? (cleanup as () => void) : () => {};
}
