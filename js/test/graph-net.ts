// A hand-built protocol-3 graph network for the front end's tests, with its activations
// computed here by a plain reference forward pass (HWC loops, written independently of
// src/math.ts): conv → batch norm → relu → depthwise dilated conv → add (a skip from relu) →
// concat (with a 1×1 conv reading the first conv, a branch) → global average pool → dense →
// softmax. Python's own graph
// fixture (scripts/make_js_fixture.py) checks the same math against JAX.

import type { Activations, LayerSpec, LayerValues, Network } from "../src/payload";

/** Deterministic values in [-1, 1) (a linear congruential sequence). */
function seq(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

type HWC = { h: number; w: number; c: number; v: Float64Array };

const at = (m: HWC, y: number, x: number, c: number) => m.v[(y * m.w + x) * m.c + c];

function conv(x: HWC, k: Float32Array, b: Float32Array, cout: number, kh: number, kw: number, pad: number, dil: number, groups: number): HWC {
  const cinG = x.c / groups;
  const coutG = cout / groups;
  const span = (kh - 1) * dil + 1;
  const oh = x.h + 2 * pad - span + 1;
  const ow = x.w + 2 * pad - ((kw - 1) * dil + 1) + 1;
  const out: HWC = { h: oh, w: ow, c: cout, v: new Float64Array(oh * ow * cout) };
  for (let o = 0; o < cout; o++) {
    const g = Math.floor(o / coutG);
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        let s = b[o];
        for (let ci = 0; ci < cinG; ci++) {
          for (let i = 0; i < kh; i++) {
            for (let j = 0; j < kw; j++) {
              const iy = y - pad + i * dil;
              const ix = xx - pad + j * dil;
              if (iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) continue;
              // kernel stored (C_out, C_in/groups, kh, kw) as in the payload
              s += at(x, iy, ix, g * cinG + ci) * k[((o * cinG + ci) * kh + i) * kw + j];
            }
          }
        }
        out.v[(y * ow + xx) * cout + o] = s;
      }
    }
  }
  return out;
}

function map(x: HWC, f: (v: number, c: number) => number): HWC {
  const v = new Float64Array(x.v.length);
  for (let i = 0; i < v.length; i++) v[i] = f(x.v[i], i % x.c);
  return { ...x, v };
}

function values(name: string, m: HWC | number[]): LayerValues {
  if (Array.isArray(m)) return { name, shape: [m.length], values: Float32Array.from(m), min: [Math.min(...m)], max: [Math.max(...m)] };
  const out = new Float32Array(m.h * m.w * m.c);
  const min: number[] = [];
  const max: number[] = [];
  for (let c = 0; c < m.c; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let p = 0; p < m.h * m.w; p++) {
      const v = m.v[p * m.c + c];
      out[c * m.h * m.w + p] = v;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    min.push(lo);
    max.push(hi);
  }
  return { name, shape: [m.c, m.h, m.w], values: out, min, max };
}

function spec(name: string, kind: LayerSpec["kind"], inputs: string[], input_shape: number[], output_shape: number[], extra: Partial<LayerSpec> = {}): LayerSpec {
  return {
    name,
    kind,
    function: null,
    input_shape,
    output_shape,
    kernel_size: null,
    stride: null,
    padding: null,
    options: {},
    module: 0,
    kernel: null,
    bias: null,
    inputs,
    dilation: null,
    groups: 1,
    source: null,
    ...extra,
  };
}

export interface GraphFixture {
  network: Network;
  activations: Activations;
}

/** The graph network on a 7×6×2 input (non-square), its weights and its activations. */
export function graphNet(): GraphFixture {
  const r = seq(7);
  const H = 7;
  const W = 6;
  const input: HWC = { h: H, w: W, c: 2, v: Float64Array.from({ length: H * W * 2 }, () => r()) };
  const floats = (n: number, scale = 1) => Float32Array.from({ length: n }, () => r() * scale);
  const kernels = new Map<string, Float32Array>();
  const biases = new Map<string, Float32Array>();
  // conv c1: 2 → 4, 3×3, SAME (pad 1)
  const k1 = floats(4 * 2 * 9, 0.5);
  const b1 = floats(4, 0.1);
  kernels.set("c1", k1);
  biases.set("c1", b1);
  const c1 = conv(input, k1, b1, 4, 3, 3, 1, 1, 1);
  // batch norm
  const mean = floats(4, 0.3);
  const variance = Float32Array.from({ length: 4 }, () => 0.5 + Math.abs(r()));
  const scale = floats(4);
  const shift = floats(4, 0.2);
  const eps = 1e-3;
  const bn = map(c1, (v, c) => ((v - mean[c]) / Math.sqrt(variance[c] + eps)) * scale[c] + shift[c]);
  const relu = map(bn, (v) => (v > 0 ? v : 0));
  // depthwise conv: groups 4, 3×3, dilation 2, pad 2 (SAME)
  const kd = floats(4 * 1 * 9, 0.6);
  const bd = floats(4, 0.1);
  kernels.set("dw", kd);
  biases.set("dw", bd);
  const dw = conv(relu, kd, bd, 4, 3, 3, 2, 2, 4);
  const add = { ...relu, v: relu.v.map((v, i) => v + dw.v[i]) };
  // proj: 1×1 conv 4 → 3 reading c1 (a branch from four layers back)
  const kp = floats(3 * 4, 0.7);
  const bp = floats(3, 0.1);
  kernels.set("proj", kp);
  biases.set("proj", bp);
  const proj = conv(c1, kp, bp, 3, 1, 1, 0, 1, 1);
  // concat(add, proj): 7 channels
  const C = 7;
  const cat: HWC = { h: H, w: W, c: C, v: new Float64Array(H * W * C) };
  for (let p = 0; p < H * W; p++) {
    for (let c = 0; c < 4; c++) cat.v[p * C + c] = add.v[p * 4 + c];
    for (let c = 0; c < 3; c++) cat.v[p * C + 4 + c] = proj.v[p * 3 + c];
  }
  const gp: number[] = [];
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let p = 0; p < H * W; p++) s += cat.v[p * C + c];
    gp.push(s / (H * W));
  }
  const kf = floats(3 * C, 0.5);
  const bf = floats(3, 0.1);
  kernels.set("out", kf);
  biases.set("out", bf);
  const logits = [0, 1, 2].map((o) => bf[o] + gp.reduce((s, v, i) => s + v * kf[o * C + i], 0));
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const probs = e.map((v) => v / e.reduce((a, b) => a + b, 0));

  const hwc = (c: number) => [H, W, c];
  const layers: LayerSpec[] = [
    spec("c1", "conv", ["input"], hwc(2), hwc(4), { kernel_size: [3, 3], stride: [1, 1], padding: [[1, 1], [1, 1]], kernel: { shape: [4, 2, 3, 3], offset: 0 }, bias: { shape: [4], offset: 0 } }),
    spec("bn", "batchnorm", ["c1"], hwc(4), hwc(4), { options: { epsilon: eps } }),
    spec("relu", "activation", ["bn"], hwc(4), hwc(4), { function: "relu" }),
    spec("dw", "conv", ["relu"], hwc(4), hwc(4), { kernel_size: [3, 3], stride: [1, 1], padding: [[2, 2], [2, 2]], dilation: [2, 2], groups: 4, kernel: { shape: [4, 1, 3, 3], offset: 0 }, bias: { shape: [4], offset: 0 } }),
    spec("add", "add", ["relu", "dw"], hwc(4), hwc(4), { module: 1 }),
    spec("proj", "conv", ["c1"], hwc(4), hwc(3), { kernel_size: [1, 1], stride: [1, 1], padding: [[0, 0], [0, 0]], kernel: { shape: [3, 4, 1, 1], offset: 0 }, bias: { shape: [3], offset: 0 }, module: 1 }),
    spec("cat", "concat", ["add", "proj"], hwc(4), hwc(7), { module: 1 }),
    spec("gap", "global_pool", ["cat"], hwc(7), [7], { function: "avg", module: 2 }),
    spec("out", "dense", ["gap"], [7], [3], { kernel: { shape: [3, 7], offset: 0 }, bias: { shape: [3], offset: 0 }, module: 2 }),
    spec("soft", "softmax", ["out"], [3], [3], { module: 2 }),
  ];
  const stats = new Map([["bn", { mean, var: variance, scale, bias: shift, epsilon: eps }]]);
  const network: Network = { name: "graph", inputShape: [H, W, 2], classes: ["a", "b", "c"], layers, kernels, biases, stats };
  const entries: LayerValues[] = [
    values("input", input),
    values("c1", c1),
    values("bn", bn),
    values("relu", relu),
    values("dw", dw),
    values("add", add),
    values("proj", proj),
    values("cat", cat),
    values("gap", gp),
    values("out", logits),
    values("soft", probs),
  ];
  return { network, activations: { seq: 1, image: { name: "random", source: "default" }, layers: new Map(entries.map((v) => [v.name, v])) } };
}
