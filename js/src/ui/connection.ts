// No silent disconnects. After the page sends something to the kernel (a click, an upload, a
// thumbnail, a colour scale), it sends a `ping`; a `pong` proves that what went before it reached
// the kernel (not that it was handled first: ipykernel 7 may handle a widget's messages on two
// threads, see cnn_explainer_widget/_uploads.py). No pong within TIMEOUT_MS (kernel restarted or
// dead, comm gone, websocket dropped, or a long-running cell): a banner says what happened and
// what to do; it goes away when an answer comes. The views keep working from the data the page
// holds.

import type { AnyModel } from "@anywidget/types";
import "./connection.css";
import { h } from "./dom";

export const TIMEOUT_MS = 5000;

export const LOST_MESSAGE =
  "The kernel has not answered for 5 seconds: it may be busy, or it was restarted or disconnected, " +
  "so what you do here may not reach Python. The views still work from the data on this page. " +
  "If this stays, re-run the cell that shows the widget (if that does not help, restart the kernel " +
  "from the Kernel menu and run the notebook again).";

type Listener = (...args: unknown[]) => void;

export class ConnectionWatch {
  readonly el: HTMLDivElement;
  private next = 1;
  private pending = 0;
  private again = false;
  private timer = 0;
  private root: HTMLElement | null = null;

  constructor(
    // biome-ignore lint: any model's messages are watched the same way
    private readonly model: AnyModel<any>,
    private readonly timeoutMs = TIMEOUT_MS,
  ) {
    this.el = h("div", { class: "cnnx-connection", role: "alert" }, h("span", { class: "cnnx-connection-icon", "aria-hidden": "true" }, "⚠"), h("span", { class: "cnnx-connection-text" }, LOST_MESSAGE));
    this.el.hidden = true;
    model.on("msg:custom", this.onMessage as Listener);
  }

  /** Put the banner at the top of the widget's root. */
  attach(root: HTMLElement): void {
    this.root = root;
    root.prepend(this.el);
  }

  /** Something was sent: check that it arrives. One ping in flight; a later send pings again. */
  expect(): void {
    if (this.pending) {
      this.again = true;
      return;
    }
    this.pending = this.next++;
    this.model.send({ type: "ping", id: this.pending });
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.show(true), this.timeoutMs);
  }

  private onMessage = (msg: unknown) => {
    if (typeof msg !== "object" || msg === null) return;
    const { type, id } = msg as { type?: unknown; id?: unknown };
    if (type !== "pong" || id !== this.pending) return;
    window.clearTimeout(this.timer);
    this.pending = 0;
    this.show(false);
    if (this.again) {
      this.again = false;
      this.expect();
    }
  };

  private show(lost: boolean): void {
    this.el.hidden = !lost;
    if (this.root) this.root.dataset.connection = lost ? "lost" : "ok";
  }

  destroy(): void {
    window.clearTimeout(this.timer);
    this.model.off("msg:custom", this.onMessage as Listener);
    this.el.remove();
  }
}

/**
 * `model` with `send` and `save_changes` watched: the view uses it as it would the model. A
 * model without a kernel (a saved copy) is returned as it is.
 */
export function watchConnection<T extends AnyModel<any>>(model: T, watch: ConnectionWatch): T {
  const sendsNothing = (model as { kernelless?: boolean }).kernelless === true;
  if (sendsNothing) return model;
  return {
    get: (key: string) => model.get(key),
    set: (key: string, value: unknown) => model.set(key, value),
    on: (...args: unknown[]) => (model.on as (...a: unknown[]) => void)(...args),
    off: (...args: unknown[]) => (model.off as (...a: unknown[]) => void)(...args),
    save_changes: () => {
      model.save_changes();
      watch.expect();
    },
    send: (content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]) => {
      (model.send as (...a: unknown[]) => void)(content, callbacks, buffers);
      watch.expect();
    },
    get widget_manager() {
      return model.widget_manager;
    },
  } as unknown as T;
}
