// Small helpers of the detail views: a throttle, reduced motion, the play/step controls of the
// hyperparameter explorer, and colour checks.

import { h } from "../ui/dom";

export { h };

/** Call `fn` at most every `ms` (leading and trailing call). */
export function throttle<A extends unknown[]>(fn: (...args: A) => void, ms: number): ((...args: A) => void) & { cancel(): void; flush(): void } {
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let pending: A | null = null;
  const run = () => {
    timer = null;
    last = Date.now();
    if (pending) {
      const a = pending;
      pending = null;
      fn(...a);
    }
  };
  const t = (...args: A) => {
    pending = args;
    const wait = ms - (Date.now() - last);
    if (wait <= 0 && !timer) run();
    else if (!timer) timer = setTimeout(run, wait);
  };
  t.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    pending = null;
  };
  t.flush = () => {
    if (timer) clearTimeout(timer);
    run();
  };
  return t;
}

export function prefersReducedMotion(): boolean {
  return typeof matchMedia === "function" && matchMedia("(prefers-reduced-motion: reduce)").matches;
}

export interface StepperOptions {
  rows: number;
  cols: number;
  label: string;
  onMove(y: number, x: number, source: "anim" | "step"): void;
  autoplay: boolean;
}

/** Play / pause / step / speed controls that move a position over an rows×cols grid. */
export class Stepper {
  readonly root: HTMLDivElement;
  y = 0;
  x = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly playBtn: HTMLButtonElement;
  private readonly speed: HTMLSelectElement;
  private readonly reduced = prefersReducedMotion();

  constructor(private o: StepperOptions) {
    this.playBtn = h("button", { type: "button", class: "cnnx-btn cnnx-play", "aria-label": `play the ${o.label} animation` }, "▶ Play");
    const back = h("button", { type: "button", class: "cnnx-btn", "aria-label": "step back one position" }, "◀ Step");
    const fwd = h("button", { type: "button", class: "cnnx-btn", "aria-label": "step forward one position" }, "Step ▶");
    this.speed = h("select", { class: "cnnx-select", "aria-label": "animation speed" });
    for (const [v, t] of [["1000", "slow"], ["400", "medium"], ["150", "fast"], ["40", "very fast"]]) {
      this.speed.append(h("option", { value: v }, t));
    }
    this.speed.value = "400";
    this.playBtn.addEventListener("click", () => (this.timer ? this.pause() : this.play()));
    back.addEventListener("click", () => {
      this.pause();
      this.step(-1, "step");
    });
    fwd.addEventListener("click", () => {
      this.pause();
      this.step(1, "step");
    });
    this.speed.addEventListener("change", () => {
      if (this.timer) {
        this.pause();
        this.play();
      }
    });
    if (this.reduced) {
      this.playBtn.disabled = true;
      this.playBtn.title = "Animation is off because your system asks for reduced motion; use Step or the arrow keys.";
    }
    this.root = h("div", { class: "cnnx-controls", role: "group", "aria-label": `${o.label} controls` }, this.playBtn, back, fwd, h("label", { class: "cnnx-speed" }, "speed ", this.speed));
  }

  setGrid(rows: number, cols: number): void {
    this.o.rows = rows;
    this.o.cols = cols;
    this.y = Math.min(this.y, rows - 1);
    this.x = Math.min(this.x, cols - 1);
  }

  get playing(): boolean {
    return this.timer !== null;
  }

  step(d: number, source: "anim" | "step"): void {
    const n = this.o.rows * this.o.cols;
    const i = (((this.y * this.o.cols + this.x + d) % n) + n) % n;
    this.y = Math.floor(i / this.o.cols);
    this.x = i % this.o.cols;
    this.o.onMove(this.y, this.x, source);
  }

  play(): void {
    if (this.reduced || this.timer) return;
    this.timer = setInterval(() => this.step(1, "anim"), Number(this.speed.value));
    this.playBtn.textContent = "❚❚ Pause";
    this.playBtn.setAttribute("aria-label", `pause the ${this.o.label} animation`);
    this.playBtn.classList.add("cnnx-on");
  }

  pause(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.playBtn.textContent = "▶ Play";
    this.playBtn.setAttribute("aria-label", `play the ${this.o.label} animation`);
    this.playBtn.classList.remove("cnnx-on");
  }

  /** Start if asked to and motion is allowed. */
  maybeAutoplay(): void {
    if (this.o.autoplay && !this.reduced) this.play();
  }

  destroy(): void {
    this.pause();
  }
}

/** Input maps are drawn grey when their values lie in [0, 1], diverging otherwise. */
export function isUnitRange(min: number[], max: number[]): boolean {
  return min.every((v) => v >= 0) && max.every((v) => v <= 1);
}
