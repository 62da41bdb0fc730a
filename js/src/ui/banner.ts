// The error banner: shows the `error` trait (or a payload error) until dismissed.

import { h } from "./dom";

export class ErrorBanner {
  readonly el: HTMLDivElement;
  private readonly text: HTMLSpanElement;
  private dismissed = "";
  private message = "";

  constructor(parent: HTMLElement) {
    this.text = h("span", { class: "cnnx-error-text" });
    const close = h("button", { class: "cnnx-error-dismiss", type: "button", "aria-label": "dismiss" }, "×");
    close.addEventListener("click", () => {
      this.dismissed = this.message;
      this.el.hidden = true;
    });
    this.el = h("div", { class: "cnnx-error", role: "alert" }, h("span", { class: "cnnx-error-icon", "aria-hidden": "true" }, "!"), this.text, close);
    this.el.hidden = true;
    parent.append(this.el);
  }

  /** Show `message` ("" hides). A dismissed message stays hidden until it changes. */
  set(message: string): void {
    if (message !== this.message) this.dismissed = "";
    this.message = message;
    this.text.textContent = message;
    this.el.hidden = !message || message === this.dismissed;
  }
}
