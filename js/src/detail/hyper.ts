// Hyperparameter explorer: input size, padding, kernel size and stride on a patch of the current
// image, with the output size formula and the sliding window. Invalid settings are explained in
// words (and the animation stops) instead of being silently drawn wrong.

import { checkHyper, fmt } from "../math";
import { divergingCss, textColorOn } from "../colors";
import { h, Stepper } from "./dom";

interface Param {
  key: "n" | "p" | "k" | "s";
  label: string;
  min: number;
  max: number;
  help: string;
}

const PARAMS: Param[] = [
  { key: "n", label: "Input size n", min: 3, max: 9, help: "side of the square input patch" },
  { key: "p", label: "Padding p", min: 0, max: 3, help: "rows and columns of zeros added on every side" },
  { key: "k", label: "Kernel size k", min: 1, max: 9, help: "side of the square kernel (window)" },
  { key: "s", label: "Stride s", min: 1, max: 5, help: "how far the window moves each step" },
];

export class HyperExplorer {
  readonly root: HTMLElement;
  private v = { n: 5, p: 0, k: 3, s: 1 };
  private readonly inputs = new Map<string, [HTMLInputElement, HTMLInputElement]>();
  private readonly inGrid: HTMLDivElement;
  private readonly outGrid: HTMLDivElement;
  private readonly formula: HTMLElement;
  private readonly message: HTMLElement;
  private readonly inTitle: HTMLElement;
  private readonly outTitle: HTMLElement;
  private readonly stepper: Stepper;
  private src: { map: ArrayLike<number>; h: number; w: number; grey: boolean; name: string } | null = null;
  private inCells: HTMLElement[] = [];
  private outCells: HTMLElement[] = [];
  private out = 0;
  private valid = true;
  private y = 0;
  private x = 0;

  constructor() {
    const controls = h("div", { class: "cnnx-hyper-controls" });
    for (const p of PARAMS) {
      const id = `cnnx-hyper-${p.key}-${Math.random().toString(36).slice(2, 8)}`;
      const range = h("input", { type: "range", min: p.min, max: p.max, step: 1, value: this.v[p.key], "aria-label": `${p.label}: ${p.help}` });
      const num = h("input", { type: "number", id, min: p.min, max: p.max, step: 1, value: this.v[p.key], class: "cnnx-num-input" });
      const set = (raw: string) => {
        const n = Math.round(Number(raw));
        if (!Number.isFinite(n)) return;
        this.v[p.key] = Math.min(p.max, Math.max(p.min, n));
        this.rebuild();
      };
      range.addEventListener("input", () => set(range.value));
      num.addEventListener("change", () => set(num.value));
      this.inputs.set(p.key, [range, num]);
      controls.append(h("div", { class: "cnnx-hyper-param" }, h("label", { for: id }, p.label), num, range));
    }
    this.stepper = new Stepper({ rows: 1, cols: 1, label: "hyperparameter window", autoplay: false, onMove: (y, x) => this.setPos(y, x) });
    this.inGrid = h("div", { class: "cnnx-hgrid", role: "img" });
    this.outGrid = h("div", { class: "cnnx-hgrid", role: "img" });
    this.inTitle = h("div", { class: "cnnx-hyper-title" });
    this.outTitle = h("div", { class: "cnnx-hyper-title" });
    this.formula = h("div", { class: "cnnx-formula", "aria-live": "polite" });
    this.message = h("div", { class: "cnnx-hyper-msg", role: "alert" });
    this.root = h(
      "div",
      { class: "cnnx-hyper" },
      controls,
      h(
        "div",
        { class: "cnnx-hyper-view" },
        this.formula,
        this.message,
        h("div", { class: "cnnx-hyper-grids" }, h("div", {}, this.inTitle, this.inGrid), h("div", {}, this.outTitle, this.outGrid)),
        this.stepper.root,
        h("p", { class: "cnnx-note" }, "Input numbers are a patch from the middle of the current image's first channel; each output here is the mean of its window (a k×k averaging kernel), so it stays meaningful for any kernel size. Hover the grids to move the window."),
      ),
    );
    this.rebuild();
  }

  setSource(map: ArrayLike<number>, h: number, w: number, grey: boolean, name: string): void {
    this.src = { map, h, w, grey, name };
    this.rebuild();
  }

  private value(iy: number, ix: number): number {
    if (!this.src) return 0;
    const { map, h, w } = this.src;
    // a patch from the middle of the map, so it shows something
    const oy = Math.max(0, Math.floor(h / 2) - Math.floor(this.v.n / 2));
    const ox = Math.max(0, Math.floor(w / 2) - Math.floor(this.v.n / 2));
    const y = Math.min(h - 1, oy + iy);
    const x = Math.min(w - 1, ox + ix);
    return map[y * w + x];
  }

  private rebuild(): void {
    const { n, p, k, s } = this.v;
    for (const [key, [range, num]] of this.inputs) {
      const val = String(this.v[key as keyof typeof this.v]);
      range.value = val;
      num.value = val;
    }
    const chk = checkHyper(n, p, k, s);
    this.valid = chk.valid;
    this.out = chk.output;
    const N = chk.padded;
    this.formula.textContent = `output size = ⌊(n + 2p − k) / s⌋ + 1 = ⌊(${n} + 2·${p} − ${k}) / ${s}⌋ + 1 = ${k > N ? "—" : chk.output}`;
    this.message.textContent = chk.reason;
    this.message.hidden = chk.valid;
    this.root.classList.toggle("cnnx-invalid", !chk.valid);
    // mark the inputs that make it invalid, as the original marks the stride box
    const culprits = !chk.valid ? (k > N ? ["k", "p"] : ["s"]) : [];
    for (const [key, [range, num]] of this.inputs) {
      const bad = culprits.includes(key);
      num.classList.toggle("cnnx-bad", bad);
      num.setAttribute("aria-invalid", bad ? "true" : "false");
      range.setAttribute("aria-invalid", bad ? "true" : "false");
    }
    this.inTitle.textContent = `Input ${n}×${n}${p ? `, after padding ${N}×${N}` : ""}`;
    this.outTitle.textContent = chk.valid ? `Output ${chk.output}×${chk.output}` : "Output: not valid";
    const cell = N > 11 ? 30 : 34; // room for "0.50" at 11 px
    this.inGrid.style.gridTemplateColumns = `repeat(${N}, ${cell}px)`;
    this.inGrid.setAttribute("aria-label", `padded input, ${N} by ${N} cells`);
    this.inCells = [];
    const frag: HTMLElement[] = [];
    let extent = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) extent = Math.max(extent, Math.abs(this.value(i, j)));
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        const pad = i < p || j < p || i >= p + n || j >= p + n;
        const v = pad ? 0 : this.value(i - p, j - p);
        const c = h("div", { class: `cnnx-hcell${pad ? " cnnx-pad" : ""}`, title: pad ? "padding (0)" : String(v) }, pad ? "0" : fmt(v, 2));
        if (!pad) {
          const bg = this.src?.grey ? `rgb(${grey(v)},${grey(v)},${grey(v)})` : divergingCss(v, extent || 1);
          c.style.background = bg;
          c.style.color = textColorOn(bg);
        }
        c.addEventListener("pointermove", () => this.hoverInput(i, j));
        frag.push(c);
      }
    }
    this.inCells = frag;
    this.inGrid.replaceChildren(...frag);
    this.outCells = [];
    const out = chk.valid ? chk.output : 0;
    this.outGrid.style.gridTemplateColumns = `repeat(${Math.max(out, 1)}, ${cell}px)`;
    this.outGrid.setAttribute("aria-label", chk.valid ? `output, ${out} by ${out} cells` : "no output: the settings are not valid");
    for (let y = 0; y < out; y++) {
      for (let x = 0; x < out; x++) {
        const c = h("div", { class: "cnnx-hcell cnnx-hout" }, fmt(this.mean(y, x), 2));
        c.addEventListener("pointermove", () => {
          this.stepper.pause();
          this.setPos(y, x);
        });
        this.outCells.push(c);
      }
    }
    this.outGrid.replaceChildren(...this.outCells);
    if (!chk.valid) {
      this.stepper.pause();
      this.stepper.root.querySelectorAll("button").forEach((b) => (b.disabled = true));
      this.inCells.forEach((c) => c.classList.remove("cnnx-in-window"));
      return;
    }
    this.stepper.root.querySelectorAll("button").forEach((b) => (b.disabled = false));
    this.stepper.setGrid(out, out);
    this.setPos(Math.min(this.y, out - 1), Math.min(this.x, out - 1));
  }

  private mean(y: number, x: number): number {
    const { n, p, k, s } = this.v;
    let sum = 0;
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        const yy = y * s + i - p;
        const xx = x * s + j - p;
        if (yy >= 0 && yy < n && xx >= 0 && xx < n) sum += this.value(yy, xx);
      }
    }
    return sum / (k * k);
  }

  private hoverInput(i: number, j: number): void {
    if (!this.valid) return;
    const { k, s } = this.v;
    this.stepper.pause();
    const clampOut = (v: number) => Math.max(0, Math.min(this.out - 1, v));
    this.setPos(clampOut(Math.round((i - (k - 1) / 2) / s)), clampOut(Math.round((j - (k - 1) / 2) / s)));
  }

  private setPos(y: number, x: number): void {
    if (!this.valid) return;
    this.y = y;
    this.x = x;
    this.stepper.y = y;
    this.stepper.x = x;
    const { k, s } = this.v;
    const N = this.v.n + 2 * this.v.p;
    this.inCells.forEach((c, idx) => {
      const i = Math.floor(idx / N);
      const j = idx % N;
      c.classList.toggle("cnnx-in-window", i >= y * s && i < y * s + k && j >= x * s && j < x * s + k);
    });
    this.outCells.forEach((c, idx) => c.classList.toggle("cnnx-in-window", idx === y * this.out + x));
  }

  destroy(): void {
    this.stepper.destroy();
  }
}

function grey(v: number): number {
  return Math.round(Math.min(1, Math.max(0, v)) * 255);
}
