// Small DOM helpers shared by the detail views: elements, heatmap canvases with a window
// overlay, number grids, a throttle, and the play/step controls of a sliding window.

import { paintMap, safeExtent, divergingCss } from "../colors";
import { fmt } from "../math";

type Child = Node | string | null | undefined | false;

/** Create an element with attributes (`class`, `aria-label`, `data-*`, ...) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

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

/** Colours of padded cells on canvases: a two-tone checker that cannot be mistaken for data. */
const PAD_A = [150, 150, 160];
const PAD_B = [205, 205, 212];

export type Pad = [[number, number], [number, number]];

export interface MapOptions {
  h: number;
  w: number;
  /** Padding drawn around the map, ((top, bottom), (left, right)). */
  pad?: Pad;
  /** Target CSS size of the longer side, px (cells are integer multiples of a pixel). */
  size: number;
  label: string;
  className?: string;
}

/**
 * A heatmap: a canvas at native resolution (one pixel per cell, padding included) scaled with
 * CSS pixelated rendering, an overlay box for a window, and a marker for one cell.
 */
export class MapView {
  readonly root: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  readonly box: HTMLDivElement;
  readonly h: number;
  readonly w: number;
  readonly pad: Pad;
  private readonly ctx2d: CanvasRenderingContext2D | null;
  private readonly image: ImageData | null;
  private readonly cell: number;

  constructor(o: MapOptions) {
    this.h = o.h;
    this.w = o.w;
    this.pad = o.pad ?? [[0, 0], [0, 0]];
    const H = o.h + this.pad[0][0] + this.pad[0][1];
    const W = o.w + this.pad[1][0] + this.pad[1][1];
    this.cell = Math.max(1, Math.round(o.size / Math.max(H, W)));
    this.canvas = el("canvas", { class: "cnnx-canvas", width: W, height: H, "aria-hidden": "true" });
    this.canvas.style.width = `${W * this.cell}px`;
    this.canvas.style.height = `${H * this.cell}px`;
    this.box = el("div", { class: "cnnx-window", "aria-hidden": "true" });
    this.box.style.display = "none";
    this.root = el("div", { class: `cnnx-map ${o.className ?? ""}`, role: "img", "aria-label": o.label }, this.canvas, this.box);
    this.root.style.width = `${W * this.cell}px`;
    this.root.style.height = `${H * this.cell}px`;
    this.ctx2d = this.canvas.getContext("2d");
    this.image = this.ctx2d ? this.ctx2d.createImageData(W, H) : null;
  }

  /** Paint the map (row major h×w) and the padding around it. */
  draw(values: ArrayLike<number>, kind: "grey" | "diverging", extent: number): void {
    if (!this.ctx2d || !this.image) return;
    const { h, w } = this;
    const [[pt], [pl]] = this.pad;
    const W = this.canvas.width;
    const H = this.canvas.height;
    const px = this.image.data;
    const tmp = new Uint8ClampedArray(h * w * 4);
    paintMap(values, tmp, kind, extent);
    for (let y = 0; y < H; y++) {
      const iy = y - pt;
      for (let x = 0; x < W; x++) {
        const ix = x - pl;
        const o = (y * W + x) * 4;
        if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
          const q = (iy * w + ix) * 4;
          px[o] = tmp[q];
          px[o + 1] = tmp[q + 1];
          px[o + 2] = tmp[q + 2];
        } else {
          const c = (x + y) % 2 ? PAD_A : PAD_B;
          px[o] = c[0];
          px[o + 1] = c[1];
          px[o + 2] = c[2];
        }
        px[o + 3] = 255;
      }
    }
    this.ctx2d.putImageData(this.image, 0, 0);
  }

  /** Show a kh×kw box with its top-left cell at (top, left) in map coordinates (may be in the padding). */
  setBox(top: number, left: number, kh: number, kw: number): void {
    const [[pt], [pl]] = this.pad;
    const s = this.box.style;
    s.display = "block";
    s.left = `${(left + pl) * this.cell}px`;
    s.top = `${(top + pt) * this.cell}px`;
    s.width = `${kw * this.cell}px`;
    s.height = `${kh * this.cell}px`;
  }

  hideBox(): void {
    this.box.style.display = "none";
  }

  /** The map cell (y, x) under a pointer event (padding gives coordinates outside the map). */
  cellAt(e: MouseEvent): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    const [[pt], [pl]] = this.pad;
    const y = Math.floor(((e.clientY - r.top) / r.height) * this.canvas.height) - pt;
    const x = Math.floor(((e.clientX - r.left) / r.width) * this.canvas.width) - pl;
    return [y, x];
  }
}

/** A grid of numbers (kh×kw), built once, updated in place. */
export class NumberGrid {
  readonly root: HTMLDivElement;
  private readonly cells: HTMLSpanElement[] = [];

  constructor(
    readonly rows: number,
    readonly cols: number,
    label: string,
    className = "",
  ) {
    this.root = el("div", { class: `cnnx-grid ${className}`, role: "table", "aria-label": label });
    this.root.style.gridTemplateColumns = `repeat(${cols}, auto)`;
    for (let i = 0; i < rows * cols; i++) {
      const c = el("span", { class: "cnnx-cell", role: "cell" });
      this.cells.push(c);
      this.root.append(c);
    }
  }

  /**
   * Show values: `shown[i]` is the rounded value printed, `full[i]` the exact one (hover);
   * `padded[i]` marks padding; `colorExtent` > 0 tints cells with the diverging scale.
   */
  set(shown: ArrayLike<number>, digits: number, opts: { full?: ArrayLike<number>; padded?: boolean[]; colorExtent?: number; highlight?: number } = {}): void {
    for (let i = 0; i < this.cells.length; i++) {
      const c = this.cells[i];
      const pad = opts.padded?.[i] ?? false;
      const v = shown[i];
      c.textContent = pad && Number.isNaN(v) ? "pad" : fmt(v, digits);
      const full = opts.full ? opts.full[i] : v;
      c.title = pad ? `padding${Number.isNaN(full) ? " (not counted)" : ` (= ${full})`}` : String(full);
      c.classList.toggle("cnnx-pad", pad);
      c.classList.toggle("cnnx-hl", opts.highlight === i);
      if (opts.colorExtent && !pad && Number.isFinite(v)) {
        const bg = divergingCss(full, safeExtent(opts.colorExtent));
        c.style.setProperty("--cnnx-cell-bg", bg);
        c.style.setProperty("--cnnx-cell-fg", isDark(bg) ? "#fff" : "#111");
        c.classList.add("cnnx-tinted");
      } else {
        c.style.removeProperty("--cnnx-cell-bg");
        c.style.removeProperty("--cnnx-cell-fg");
        c.classList.remove("cnnx-tinted");
      }
    }
  }
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
    this.playBtn = el("button", { type: "button", class: "cnnx-btn cnnx-play", "aria-label": `play the ${o.label} animation` }, "▶ Play");
    const back = el("button", { type: "button", class: "cnnx-btn", "aria-label": "step back one position" }, "◀ Step");
    const fwd = el("button", { type: "button", class: "cnnx-btn", "aria-label": "step forward one position" }, "Step ▶");
    this.speed = el("select", { class: "cnnx-select", "aria-label": "animation speed" });
    for (const [v, t] of [["1000", "slow"], ["400", "medium"], ["150", "fast"], ["40", "very fast"]]) {
      this.speed.append(el("option", { value: v }, t));
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
    this.root = el("div", { class: "cnnx-controls", role: "group", "aria-label": `${o.label} controls` }, this.playBtn, back, fwd, el("label", { class: "cnnx-speed" }, "speed ", this.speed));
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

/** A small labelled figure: caption above, content below. */
export function figure(caption: string | Node, content: Node, className = ""): HTMLElement {
  return el("figure", { class: `cnnx-fig ${className}` }, content, el("figcaption", {}, caption));
}

/** Whether an "rgb(r,g,b)" colour is dark enough to need white text. */
export function isDark(css: string): boolean {
  const m = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(css);
  if (!m) return false;
  const [r, g, b] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return 0.299 * r + 0.587 * g + 0.114 * b < 128;
}

/** Input maps are drawn grey when their values lie in [0, 1], diverging otherwise. */
export function isUnitRange(min: number[], max: number[]): boolean {
  return min.every((v) => v >= 0) && max.every((v) => v <= 1);
}
