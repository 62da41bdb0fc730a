// Input neuron: one channel of the image; the channel's value and the RGB pixel at the chosen
// position.

import { channelMap, dims, getValues, fmt } from "../math";
import { el, figure, isUnitRange, MapView } from "./dom";
import { clamp } from "./conv";
import type { DetailContext, KindView, ViewEnv } from "./types";

const NAMES = ["red", "green", "blue"];

export class InputView implements KindView {
  readonly root: HTMLElement;
  private readonly index: number;
  private readonly map: MapView;
  private readonly rgb: HTMLCanvasElement;
  private readonly rgbBox: HTMLDivElement;
  private readonly info: HTMLElement;
  private readonly swatch: HTMLElement;
  private readonly h: number;
  private readonly w: number;
  private ctx: DetailContext;
  private y = 0;
  private x = 0;
  private seq = -1;

  constructor(ctx: DetailContext, private env: ViewEnv) {
    this.ctx = ctx;
    this.index = ctx.selection.index;
    const v = getValues(ctx.activations, "input");
    const d = dims(v);
    this.h = d.h;
    this.w = d.w;
    const cname = d.c === 3 ? `${NAMES[this.index]} channel` : `channel ${this.index}`;
    this.map = new MapView({ h: d.h, w: d.w, size: 224, label: `input ${cname}; arrow keys move the position` });
    const scale = Math.max(1, Math.round(224 / Math.max(d.h, d.w)));
    this.rgb = el("canvas", { class: "cnnx-canvas", width: d.w, height: d.h, "aria-hidden": "true" });
    this.rgb.style.width = `${d.w * scale}px`;
    this.rgb.style.height = `${d.h * scale}px`;
    this.rgbBox = el("div", { class: "cnnx-window" });
    const rgbWrap = el("div", { class: "cnnx-map", role: "img", "aria-label": "the input image", tabindex: 0 }, this.rgb, this.rgbBox);
    this.map.root.tabIndex = 0;
    for (const target of [this.map.root, rgbWrap]) {
      const at = (e: MouseEvent): [number, number] => {
        const r = target.getBoundingClientRect();
        return [clamp(Math.floor(((e.clientY - r.top) / r.height) * d.h), 0, d.h - 1), clamp(Math.floor(((e.clientX - r.left) / r.width) * d.w), 0, d.w - 1)];
      };
      target.addEventListener("pointermove", (e) => this.setPos(...at(e), false));
      target.addEventListener("click", (e) => this.setPos(...at(e), true));
    }
    this.info = el("div", { class: "cnnx-input-info", "aria-live": "polite" });
    this.swatch = el("span", { class: "cnnx-swatch", "aria-hidden": "true" });
    this.root = el(
      "div",
      { class: "cnnx-input" },
      el("p", { class: "cnnx-facts" }, `The ${cname} of the ${d.h}×${d.w} input image, values in [0, 1] (0 black, 1 full ${d.c === 3 ? NAMES[this.index] : "white"}). Hover or click to read a pixel.`),
      el("div", { class: "cnnx-row" }, figure(`input ${cname}`, this.map.root), figure("the image (all channels)", rgbWrap), el("div", { class: "cnnx-input-side" }, this.swatch, this.info)),
    );
    this.update(ctx);
  }

  private setPos(y: number, x: number, now: boolean): void {
    if (!now && y === this.y && x === this.x) return;
    this.y = y;
    this.x = x;
    this.render();
    this.env.report(y, x, now);
  }

  move(dy: number, dx: number): boolean {
    this.setPos(clamp(this.y + dy, 0, this.h - 1), clamp(this.x + dx, 0, this.w - 1), true);
    return true;
  }

  update(ctx: DetailContext): void {
    this.ctx = ctx;
    const v = getValues(ctx.activations, "input");
    if (ctx.activations.seq !== this.seq) {
      this.seq = ctx.activations.seq;
      const unit = isUnitRange(v.min, v.max);
      const m = Math.max(...v.min.map(Math.abs), ...v.max.map(Math.abs));
      this.map.draw(channelMap(v, this.index), unit ? "grey" : "diverging", unit ? 1 : m);
      const c2d = this.rgb.getContext("2d");
      const d = dims(v);
      if (c2d) {
        const img = c2d.createImageData(d.w, d.h);
        for (let p = 0; p < d.h * d.w; p++) {
          for (let k = 0; k < 3; k++) img.data[p * 4 + k] = Math.round(Math.min(1, Math.max(0, v.values[(d.c === 3 ? k : 0) * d.h * d.w + p])) * 255);
          img.data[p * 4 + 3] = 255;
        }
        c2d.putImageData(img, 0, 0);
      }
    }
    this.y = clamp(ctx.selection.y ?? this.y, 0, this.h - 1);
    this.x = clamp(ctx.selection.x ?? this.x, 0, this.w - 1);
    this.render();
  }

  private render(): void {
    const v = getValues(this.ctx.activations, "input");
    const d = dims(v);
    const at = (c: number) => v.values[(c * d.h + this.y) * d.w + this.x];
    this.map.setBox(this.y, this.x, 1, 1);
    const r = this.rgb.getBoundingClientRect();
    const cw = r.width / d.w || parseFloat(this.rgb.style.width) / d.w;
    const s = this.rgbBox.style;
    s.display = "block";
    s.left = `${this.x * cw}px`;
    s.top = `${this.y * cw}px`;
    s.width = s.height = `${cw}px`;
    const vals = Array.from({ length: d.c }, (_, c) => at(c));
    const b = (x: number) => Math.round(Math.min(1, Math.max(0, x)) * 255);
    const rgb = d.c === 3 ? vals.map(b) : [b(vals[0]), b(vals[0]), b(vals[0])];
    this.swatch.style.background = `rgb(${rgb.join(",")})`;
    this.info.replaceChildren(
      el("div", {}, `pixel (y ${this.y}, x ${this.x})`),
      el("div", { class: "cnnx-val cnnx-input-value", "data-value": String(vals[this.index]), title: String(vals[this.index]) }, `${d.c === 3 ? NAMES[this.index] : "value"} = ${fmt(vals[this.index], 4)}`),
      d.c === 3 ? el("div", {}, `RGB = (${vals.map((x) => fmt(x, 3)).join(", ")}) = (${rgb.join(", ")}) / 255`) : "",
    );
  }

  destroy(): void {}
}
