// The sliding window's clock: a position over an oh×ow output grid that advances by itself on
// requestAnimationFrame (a full sweep at the default speed takes 10 s, whatever the map size;
// each step is one output cell, i.e. the window moves by the layer's real stride), with
// Play/Pause, step and speed controls. Hover or keys pause it and set the position. Under
// prefers-reduced-motion it never starts by itself and Play is disabled.

import { h } from "../ui/dom";
import { prefersReducedMotion } from "./dom";

/** Seconds per full sweep for each speed. */
export const SPEEDS: [string, number][] = [
  ["slow", 30],
  ["normal", 10],
  ["fast", 4],
];

export interface SweepOptions {
  rows: number;
  cols: number;
  label: string;
  /** Position changed: by the clock ("anim") or by a step button ("step"). */
  onMove(y: number, x: number, source: "anim" | "step"): void;
}

export class Sweep {
  readonly root: HTMLDivElement;
  y = 0;
  x = 0;
  private frame = 0;
  private last = 0;
  private acc = 0;
  private readonly playBtn: HTMLButtonElement;
  private readonly speed: HTMLSelectElement;
  readonly reduced = prefersReducedMotion();

  constructor(private o: SweepOptions) {
    this.playBtn = h("button", { type: "button", class: "cnnx-btn cnnx-play", "aria-label": `play the ${o.label}` }, "▶ Play");
    const back = h("button", { type: "button", class: "cnnx-btn", "aria-label": "step back one position", title: "step back (←)" }, "◀");
    const fwd = h("button", { type: "button", class: "cnnx-btn", "aria-label": "step forward one position", title: "step forward (→)" }, "▶");
    this.speed = h("select", { class: "cnnx-select", "aria-label": "animation speed" });
    for (const [name, s] of SPEEDS) this.speed.append(h("option", { value: String(s) }, `${name} (${s} s)`));
    this.speed.value = "10";
    this.playBtn.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    back.addEventListener("click", () => {
      this.pause();
      this.step(-1, "step");
    });
    fwd.addEventListener("click", () => {
      this.pause();
      this.step(1, "step");
    });
    if (this.reduced) {
      this.playBtn.disabled = true;
      this.playBtn.title = "Animation is off because your system asks for reduced motion; use the step buttons, the arrow keys or hover.";
    }
    this.root = h("div", { class: "cnnx-controls", role: "group", "aria-label": `${o.label} controls` }, this.playBtn, back, fwd, h("label", { class: "cnnx-speed" }, this.speed));
  }

  get playing(): boolean {
    return this.frame !== 0;
  }

  /** Output positions per second at the chosen speed. */
  get rate(): number {
    return (this.o.rows * this.o.cols) / Math.max(1, Number(this.speed.value));
  }

  set(y: number, x: number): void {
    this.y = Math.max(0, Math.min(this.o.rows - 1, y));
    this.x = Math.max(0, Math.min(this.o.cols - 1, x));
  }

  step(d: number, source: "anim" | "step"): void {
    const n = this.o.rows * this.o.cols;
    const i = (((this.y * this.o.cols + this.x + d) % n) + n) % n;
    this.y = Math.floor(i / this.o.cols);
    this.x = i % this.o.cols;
    this.o.onMove(this.y, this.x, source);
  }

  play(): void {
    if (this.reduced || this.frame || this.o.rows * this.o.cols <= 1) return;
    this.last = performance.now();
    this.acc = 0;
    this.frame = requestAnimationFrame(this.tick);
    this.playBtn.textContent = "❚❚ Pause";
    this.playBtn.setAttribute("aria-label", `pause the ${this.o.label}`);
    this.playBtn.classList.add("cnnx-on");
  }

  private tick = (now: number) => {
    this.acc += ((now - this.last) / 1000) * this.rate;
    this.last = now;
    const n = Math.floor(this.acc);
    if (n > 0) {
      this.acc -= n;
      this.step(n, "anim");
    }
    this.frame = requestAnimationFrame(this.tick);
  };

  pause(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.playBtn.textContent = "▶ Play";
    this.playBtn.setAttribute("aria-label", `play the ${this.o.label}`);
    this.playBtn.classList.remove("cnnx-on");
  }

  toggle(): void {
    if (this.playing) this.pause();
    else this.play();
  }

  destroy(): void {
    this.pause();
  }
}
