import { PROTOCOL_VERSION } from "../src/payload";
// Small builders of fake networks and activations for the overview tests.

import type { Activations, ActivationsMessage, LayerSpec, LayerValues, Network, NetworkMessage } from "../src/payload";

type Kind = LayerSpec["kind"];

export function layer(name: string, kind: Kind, output_shape: number[], module = 0, input_shape: number[] = output_shape): LayerSpec {
  return {
    name,
    kind,
    function: kind === "activation" ? "relu" : kind === "pool" ? "max" : null,
    input_shape,
    output_shape,
    kernel_size: kind === "conv" || kind === "pool" ? [3, 3] : null,
    stride: kind === "conv" || kind === "pool" ? [1, 1] : null,
    padding: null,
    options: {},
    module,
    inputs: [], // filled in by network(): the layer before
    dilation: null,
    groups: 1,
    source: null,
    kernel: null,
    bias: null,
  };
}

export function network(layers: LayerSpec[], inputShape: [number, number, number] = [8, 8, 3], classes?: string[]): Network {
  const last = [...layers].reverse().find((l) => l.kind === "dense");
  const n = last ? last.output_shape[0] : 0;
  // Small deterministic weights for every conv and dense layer (the elastic views read them).
  const kernels = new Map<string, Float32Array>();
  const biases = new Map<string, Float32Array>();
  let prev: number[] = inputShape;
  let prevName = "input";
  for (const l of layers) {
    if (!l.inputs || l.inputs.length === 0) l.inputs = [prevName];
    prevName = l.name;
    let shape: number[] | null = null;
    if (l.kind === "conv") shape = [l.output_shape[2], prev[2], ...(l.kernel_size ?? [3, 3])];
    else if (l.kind === "dense") shape = [l.output_shape[0], prev.reduce((a, b) => a * b, 1)];
    if (shape) {
      const size = shape.reduce((a, b) => a * b, 1);
      kernels.set(l.name, Float32Array.from({ length: size }, (_, i) => ((i % 7) - 3) / 10));
      biases.set(l.name, Float32Array.from({ length: shape[0] }, (_, i) => i / 10));
      l.kernel = { shape, offset: 0 };
      l.bias = { shape: [shape[0]], offset: 0 };
      if (l.kind === "conv") {
        l.input_shape = [...prev];
        if (!l.padding) l.padding = [[0, 0], [0, 0]];
      }
    }
    if (l.kind === "pool" && !l.padding) l.padding = [[0, 0], [0, 0]];
    prev = l.output_shape;
  }
  return {
    name: "fake",
    inputShape,
    classes: classes ?? Array.from({ length: n }, (_, i) => `class${i}`),
    layers,
    kernels,
    biases,
    stats: new Map(),
  };
}

/** A small Tiny-VGG-like network: 2 modules, a hidden dense layer, 4 classes. */
export function smallNet(channels = 4): Network {
  return network([
    layer("c1", "conv", [6, 6, channels], 0),
    layer("r1", "activation", [6, 6, channels], 0),
    layer("p1", "pool", [3, 3, channels], 0),
    layer("c2", "conv", [2, 2, channels], 1),
    layer("r2", "activation", [2, 2, channels], 1),
    layer("flat", "flatten", [4 * channels], 2),
    layer("hidden", "dense", [5], 2),
    layer("out", "dense", [4], 2),
    layer("soft", "softmax", [4], 2),
  ]);
}

/** Values of a spatial layer [C, H, W] where channel c is filled by fn(c, p). */
export function spatial(name: string, c: number, hh: number, ww: number, fn: (ch: number, p: number) => number): LayerValues {
  const values = new Float32Array(c * hh * ww);
  const min: number[] = [];
  const max: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let p = 0; p < hh * ww; p++) {
      const v = fn(ch, p);
      values[ch * hh * ww + p] = v;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    min.push(lo);
    max.push(hi);
  }
  return { name, shape: [c, hh, ww], values, min, max };
}

export function vector(name: string, vals: number[]): LayerValues {
  return { name, shape: [vals.length], values: Float32Array.from(vals), min: [Math.min(...vals)], max: [Math.max(...vals)] };
}

/** Activations for `net` where every hidden value of channel c is `scale * (c + 1) * sign`. */
export function activationsFor(net: Network, opts: { seq?: number; scale?: number; image?: string } = {}): Activations {
  const scale = opts.scale ?? 1;
  const layers = new Map<string, LayerValues>();
  const [ih, iw, ic] = net.inputShape;
  layers.set("input", spatial("input", ic, ih, iw, (_c, p) => (p % 10) / 10));
  for (const l of net.layers) {
    if (l.kind === "flatten") continue;
    if (l.output_shape.length === 3) {
      const [hh, ww, c] = l.output_shape;
      layers.set(l.name, spatial(l.name, c, hh, ww, (ch, p) => scale * (ch + 1) * (p % 2 === 0 ? 1 : -0.5) * (l.module + 1)));
    } else if (l.kind === "softmax") {
      const n = l.output_shape[0];
      layers.set(l.name, vector(l.name, Array.from({ length: n }, (_, i) => (i === 1 ? 0.7 : 0.3 / (n - 1)))));
    } else {
      layers.set(l.name, vector(l.name, Array.from({ length: l.output_shape[0] }, (_, i) => scale * (i - 1))));
    }
  }
  return { seq: opts.seq ?? 1, image: { name: opts.image ?? "fake", source: "test" }, layers };
}

/** The wire messages (as the kernel sends them) for a fake network and its activations. */
export function messages(net: Network, acts: Activations): { network: NetworkMessage; activations: ActivationsMessage } {
  const network: NetworkMessage = {
    version: PROTOCOL_VERSION,
    name: net.name,
    input_shape: net.inputShape,
    classes: net.classes,
    layers: net.layers,
    data: new DataView(new ArrayBuffer(0)),
  };
  let total = 0;
  for (const v of acts.layers.values()) total += v.values.length;
  const all = new Float32Array(total);
  const layers: ActivationsMessage["layers"] = [];
  let offset = 0;
  for (const v of acts.layers.values()) {
    all.set(v.values, offset);
    layers.push({ name: v.name, shape: v.shape, offset, min: v.min, max: v.max });
    offset += v.values.length;
  }
  return {
    network,
    activations: { version: PROTOCOL_VERSION, seq: acts.seq, image: acts.image, layers, data: new DataView(all.buffer) },
  };
}
