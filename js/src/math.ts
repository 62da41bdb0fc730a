// The arithmetic behind every detail view, as pure functions (no DOM).
//
// Everything is generic over a layer's real kernel size, stride and padding, and reads the
// payload's own data: weights from `Network`, maps from `Activations` (channel first, [C, H, W]).
// Sums are accumulated in double precision, so the numbers a view shows add up to the total it
// shows; the total equals the network's (float32) activation to about 1e-6.

import type { Activations, LayerSpec, LayerValues, Network } from "./payload";

/** Anything indexable like a typed array. */
export type Values = ArrayLike<number>;

// ---------------------------------------------------------------------------------------------
// Layers and their inputs

/** The layer called `name`; throws naming the known layers otherwise. */
export function getLayer(network: Network, name: string): LayerSpec {
  const layer = network.layers.find((l) => l.name === name);
  if (!layer) throw new Error(`no layer ${name}; layers are ${network.layers.map((l) => l.name).join(", ")}`);
  return layer;
}

/**
 * Names of the activations entries a layer reads, in order: the payload's `inputs` (protocol 3),
 * else the previous layer ("input" for the first). A flatten has no entry of its own: a layer
 * reading one reads the spatial maps before it, in (h, w, c) order (see `flattenIndex`).
 */
export function inputsOf(network: Network, name: string): string[] {
  const i = network.layers.findIndex((l) => l.name === name);
  if (i < 0) throw new Error(`no layer ${name}`);
  const raw = network.layers[i].inputs;
  const names = raw && raw.length ? raw : [i > 0 ? network.layers[i - 1].name : "input"];
  return names.map((n) => {
    let cur = n;
    for (let guard = 0; guard < network.layers.length; guard++) {
      const l = network.layers.find((x) => x.name === cur);
      if (!l || l.kind !== "flatten") return cur;
      cur = inputsOf(network, l.name)[0];
    }
    return cur;
  });
}

/** Name of the (first) activations entry a layer reads; see `inputsOf`. */
export function inputName(network: Network, name: string): string {
  return inputsOf(network, name)[0];
}

/** Output shape of `name` ((H, W, C) or (N,)); "input" is the image's. */
export function shapeOf(network: Network, name: string): number[] {
  if (name === "input") return [...network.inputShape];
  return getLayer(network, name).output_shape;
}

/** The activations entry `name` ("input" or a layer); throws if missing. */
export function getValues(activations: Activations, name: string): LayerValues {
  const v = activations.layers.get(name);
  if (!v) throw new Error(`the activations have no entry ${name}`);
  return v;
}

/** Map dimensions of a channel-first entry: [C, H, W] (a vector [N] is [N, 1, 1]). */
export function dims(v: LayerValues): { c: number; h: number; w: number } {
  if (v.shape.length === 3) return { c: v.shape[0], h: v.shape[1], w: v.shape[2] };
  return { c: v.shape[0], h: 1, w: 1 };
}

/** One channel's map (a view, no copy), row major (H, W). */
export function channelMap(v: LayerValues, c: number): Float32Array {
  const { h, w } = dims(v);
  return v.values.subarray(c * h * w, (c + 1) * h * w);
}

/** Output length of a convolution or pooling along one axis: ⌊(n + p_before + p_after − k) / s⌋ + 1. */
export function outputSize(n: number, k: number, s: number, padBefore: number, padAfter: number): number {
  return Math.floor((n + padBefore + padAfter - k) / s) + 1;
}

// ---------------------------------------------------------------------------------------------
// Windows (conv and pool)

/** Where a window lies in the input: `top`/`left` may be negative (inside the padding). */
export interface WindowPlace {
  y: number;
  x: number;
  top: number;
  left: number;
  /** Taps of the window (a dilated kernel spans (kh − 1)·dy + 1 rows). */
  kh: number;
  kw: number;
  /** Distance between taps (conv dilation; absent or 1 for a solid window). */
  dy?: number;
  dx?: number;
}

/** A conv layer's dilation [dy, dx] ([1, 1] when none). */
export function dilationOf(layer: LayerSpec): [number, number] {
  const d = layer.kind === "conv" ? layer.dilation : null;
  return d ? [d[0], d[1]] : [1, 1];
}

function hyper(layer: LayerSpec): { kh: number; kw: number; sh: number; sw: number; pt: number; pl: number; dy: number; dx: number } {
  if (!layer.kernel_size || !layer.stride || !layer.padding) {
    throw new Error(`layer ${layer.name} (${layer.kind}) has no window`);
  }
  const [kh, kw] = layer.kernel_size;
  const [sh, sw] = layer.stride;
  const [[pt], [pl]] = layer.padding;
  const [dy, dx] = dilationOf(layer);
  return { kh, kw, sh, sw, pt, pl, dy, dx };
}

/** The input window under output position (y, x) of a conv or pool layer. */
export function windowAt(layer: LayerSpec, y: number, x: number): WindowPlace {
  const { kh, kw, sh, sw, pt, pl, dy, dx } = hyper(layer);
  const [oh, ow] = layer.output_shape;
  if (!(y >= 0 && y < oh && x >= 0 && x < ow && Number.isInteger(y) && Number.isInteger(x))) {
    throw new Error(`position (${y}, ${x}) is outside ${layer.name}'s ${oh}×${ow} map`);
  }
  return { y, x, top: y * sh - pt, left: x * sw - pl, kh, kw, dy, dx };
}

/**
 * The kh×kw values of one input map under a window, row major; `padded[i]` is true where the
 * cell lies in the padding (its value is then `fill`).
 */
export function readWindow(
  map: Values,
  h: number,
  w: number,
  place: WindowPlace,
  fill: number,
): { values: number[]; padded: boolean[] } {
  const values: number[] = [];
  const padded: boolean[] = [];
  const dy = place.dy ?? 1;
  const dx = place.dx ?? 1;
  for (let i = 0; i < place.kh; i++) {
    const yy = place.top + i * dy;
    for (let j = 0; j < place.kw; j++) {
      const xx = place.left + j * dx;
      const inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
      values.push(inside ? map[yy * w + xx] : fill);
      padded.push(!inside);
    }
  }
  return { values, padded };
}

// ---------------------------------------------------------------------------------------------
// Convolution

/** One input channel's part of a conv neuron's output at one position. */
export interface ConvChannelTerm {
  channel: number;
  /** kh×kw input values under the kernel, row major; 0 where padded. */
  window: number[];
  padded: boolean[];
  /** The kernel slice for this input channel, kh×kw, row major. */
  kernel: number[];
  /** window[i] · kernel[i]. */
  products: number[];
  /** Σ products (double precision). */
  sum: number;
}

export interface ConvMath {
  layer: string;
  index: number;
  place: WindowPlace;
  channels: ConvChannelTerm[];
  bias: number;
  /** Σ channel sums + bias: the neuron's output value at (y, x). */
  total: number;
}

/**
 * The input channels conv neuron `index` reads: all of them, or with `groups` > 1 only its
 * group's, `[g·C_in/groups, (g+1)·C_in/groups)` with `g = ⌊index / (C_out/groups)⌋`.
 */
export function groupChannels(layer: LayerSpec, index: number): number[] {
  const cin = layer.input_shape[2];
  const groups = Math.max(1, layer.groups ?? 1);
  const per = cin / groups;
  const g = Math.floor(index / (layer.output_shape[2] / groups));
  return Array.from({ length: per }, (_, k) => g * per + k);
}

/** The kh×kw kernel slice of output neuron `index` for input channel `c`, row major. */
export function kernelSlice(network: Network, layer: LayerSpec, index: number, c: number): Float32Array {
  const kernel = network.kernels.get(layer.name);
  if (!kernel || !layer.kernel) throw new Error(`layer ${layer.name} has no kernel`);
  const [, cin, kh, kw] = layer.kernel.shape;
  const first = groupChannels(layer, index)[0] ?? 0;
  const local = c - first;
  if (!(local >= 0 && local < cin)) throw new Error(`${layer.name} neuron ${index} does not read input channel ${c} (its group reads ${first}…${first + cin - 1})`);
  const start = (index * cin + local) * kh * kw;
  return kernel.subarray(start, start + kh * kw);
}

/** A conv layer's bias for neuron `index` (0 without bias). */
export function biasOf(network: Network, layer: LayerSpec, index: number): number {
  const b = network.biases.get(layer.name);
  return b ? b[index] : 0;
}

/** Everything a conv neuron computes at output position (y, x). */
export function convAt(network: Network, activations: Activations, layerName: string, index: number, y: number, x: number): ConvMath {
  const layer = getLayer(network, layerName);
  if (layer.kind !== "conv") throw new Error(`${layerName} is a ${layer.kind} layer, not conv`);
  const input = getValues(activations, inputName(network, layerName));
  const { h, w } = dims(input);
  const place = windowAt(layer, y, x);
  const channels: ConvChannelTerm[] = [];
  let total = 0;
  for (const c of groupChannels(layer, index)) {
    const { values, padded } = readWindow(channelMap(input, c), h, w, place, 0);
    const kernel = Array.from(kernelSlice(network, layer, index, c));
    const products = values.map((v, i) => v * kernel[i]);
    let sum = 0;
    for (const p of products) sum += p;
    channels.push({ channel: c, window: values, padded, kernel, products, sum });
    total += sum;
  }
  const bias = biasOf(network, layer, index);
  return { layer: layerName, index, place, channels, bias, total: total + bias };
}

/**
 * The "intermediate" map: input channel `c` convolved with neuron `index`'s kernel slice for
 * that channel, before the bias (outH × outW, row major). Summing these over all input channels
 * and adding the bias gives the neuron's map.
 */
export function convIntermediate(network: Network, activations: Activations, layerName: string, index: number, c: number): Float64Array {
  const layer = getLayer(network, layerName);
  const input = getValues(activations, inputName(network, layerName));
  const { h, w } = dims(input);
  const map = channelMap(input, c);
  const k = kernelSlice(network, layer, index, c);
  const { kh, kw, sh, sw, pt, pl, dy, dx } = hyper(layer);
  const [oh, ow] = layer.output_shape;
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    const top = y * sh - pt;
    for (let x = 0; x < ow; x++) {
      const left = x * sw - pl;
      let s = 0;
      for (let i = 0; i < kh; i++) {
        const yy = top + i * dy;
        if (yy < 0 || yy >= h) continue;
        const row = yy * w;
        for (let j = 0; j < kw; j++) {
          const xx = left + j * dx;
          if (xx < 0 || xx >= w) continue;
          s += map[row + xx] * k[i * kw + j];
        }
      }
      out[y * ow + x] = s;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Elementwise activations

/** The function `name` (relu, gelu, tanh, sigmoid, leaky_relu, elu, silu) with its options, as JAX defines it. */
export function activationFunction(name: string, options: Record<string, unknown> = {}): (x: number) => number {
  switch (name) {
    case "relu":
      return (x) => (x > 0 ? x : 0);
    case "leaky_relu": {
      const slope = typeof options.negative_slope === "number" ? options.negative_slope : 0.01;
      return (x) => (x >= 0 ? x : slope * x);
    }
    case "elu": {
      const alpha = typeof options.alpha === "number" ? options.alpha : 1;
      return (x) => (x > 0 ? x : alpha * Math.expm1(x));
    }
    case "sigmoid":
      return sigmoid;
    case "silu":
      return (x) => x * sigmoid(x);
    case "tanh":
      return Math.tanh;
    case "gelu":
      if (options.approximate === false) return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
      return (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    default:
      throw new Error(`unknown activation function ${name}`);
  }
}

/** The function as a formula of x, for display. */
export function activationFormula(name: string, options: Record<string, unknown> = {}): string {
  switch (name) {
    case "relu":
      return "max(0, x)";
    case "leaky_relu": {
      const slope = typeof options.negative_slope === "number" ? options.negative_slope : 0.01;
      return `x if x ≥ 0, else ${slope}·x`;
    }
    case "elu": {
      const alpha = typeof options.alpha === "number" ? options.alpha : 1;
      return `x if x > 0, else ${alpha === 1 ? "" : `${alpha}·`}(eˣ − 1)`;
    }
    case "sigmoid":
      return "1 / (1 + e⁻ˣ)";
    case "silu":
      return "x / (1 + e⁻ˣ)";
    case "tanh":
      return "tanh(x)";
    case "gelu":
      return options.approximate === false
        ? "x · Φ(x) = ½x(1 + erf(x/√2))"
        : "½x(1 + tanh(√(2/π)(x + 0.044715x³)))";
    default:
      return `${name}(x)`;
  }
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** The error function, |error| < 1.2e-7 (Numerical Recipes' erfc, Chebyshev fit). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

export interface ActivationMath {
  layer: string;
  index: number;
  y: number;
  x: number;
  function: string;
  formula: string;
  input: number;
  output: number;
}

/** An activation neuron at (y, x): its input value, the function and its output. */
export function activationAt(network: Network, activations: Activations, layerName: string, index: number, y: number, x: number): ActivationMath {
  const layer = getLayer(network, layerName);
  if (layer.kind !== "activation" || !layer.function) throw new Error(`${layerName} is not an activation layer`);
  const input = getValues(activations, inputName(network, layerName));
  const { h, w } = dims(input);
  if (!(y >= 0 && y < h && x >= 0 && x < w)) throw new Error(`position (${y}, ${x}) is outside ${layerName}'s ${h}×${w} map`);
  const v = input.values[(index * h + y) * w + x];
  const f = activationFunction(layer.function, layer.options);
  return { layer: layerName, index, y, x, function: layer.function, formula: activationFormula(layer.function, layer.options), input: v, output: f(v) };
}

// ---------------------------------------------------------------------------------------------
// Pooling

export interface PoolMath {
  layer: string;
  index: number;
  op: "max" | "avg";
  place: WindowPlace;
  /** kh×kw input values under the window, row major; NaN where padded. */
  window: number[];
  padded: boolean[];
  /** The cells the result is taken over (max: the real cells; avg: see `countIncludePad`). */
  count: number;
  countIncludePad: boolean;
  /** Σ of the real cells (avg only; padded cells add 0). */
  sum: number;
  /** Index into `window` of the maximum (max only; -1 for avg). */
  argmax: number;
  result: number;
}

/** A pooling neuron at output position (y, x). */
export function poolAt(network: Network, activations: Activations, layerName: string, index: number, y: number, x: number): PoolMath {
  const layer = getLayer(network, layerName);
  if (layer.kind !== "pool") throw new Error(`${layerName} is a ${layer.kind} layer, not pool`);
  const input = getValues(activations, inputName(network, layerName));
  const { h, w } = dims(input);
  const place = windowAt(layer, y, x);
  const { values, padded } = readWindow(channelMap(input, index), h, w, place, Number.NaN);
  const op = layer.function === "avg" ? "avg" : "max";
  const countIncludePad = op === "avg" && layer.options.count_include_pad !== false;
  let sum = 0;
  let real = 0;
  let argmax = -1;
  for (let i = 0; i < values.length; i++) {
    if (padded[i]) continue;
    real++;
    sum += values[i];
    if (argmax < 0 || values[i] > values[argmax]) argmax = i;
  }
  if (op === "max") {
    return { layer: layerName, index, op, place, window: values, padded, count: real, countIncludePad: false, sum, argmax, result: argmax < 0 ? -Infinity : values[argmax] };
  }
  const count = countIncludePad ? values.length : real;
  return { layer: layerName, index, op, place, window: values, padded, count, countIncludePad, sum, argmax: -1, result: sum / count };
}

// ---------------------------------------------------------------------------------------------
// Graph layers: add, batch norm, concat, global pooling

/** The value of neuron `index` of entry `v` at (y, x) (a vector: its element `index`). */
function valueAt(v: LayerValues, index: number, y: number, x: number): number {
  if (v.shape.length !== 3) return v.values[index];
  const { h, w } = dims(v);
  if (!(y >= 0 && y < h && x >= 0 && x < w)) throw new Error(`position (${y}, ${x}) is outside ${v.name}'s ${h}×${w} map`);
  return v.values[(index * h + y) * w + x];
}

export interface AddMath {
  layer: string;
  index: number;
  y: number;
  x: number;
  /** The summed layers, in `inputs` order. */
  inputs: string[];
  /** Each input's value at the position. */
  terms: number[];
  /** Σ terms (double precision). */
  total: number;
}

/** An add neuron at (y, x): its summands (one per input layer) and their sum. */
export function addAt(network: Network, activations: Activations, layerName: string, index: number, y: number, x: number): AddMath {
  const layer = getLayer(network, layerName);
  if (layer.kind !== "add") throw new Error(`${layerName} is a ${layer.kind} layer, not add`);
  const inputs = inputsOf(network, layerName);
  const terms = inputs.map((n) => valueAt(getValues(activations, n), index, y, x));
  let total = 0;
  for (const t of terms) total += t;
  return { layer: layerName, index, y, x, inputs, terms, total };
}

export interface NormMath {
  layer: string;
  index: number;
  y: number;
  x: number;
  input: number;
  mean: number;
  variance: number;
  epsilon: number;
  /** √(var + ε). */
  std: number;
  /** (x − mean) / std. */
  normalised: number;
  /** γ (1 when the layer has no scale). */
  scale: number;
  /** β (0 when the layer has no bias). */
  shift: number;
  /** normalised · γ + β. */
  output: number;
  /** The folded affine: output = a·x + b with a = γ/std, b = β − a·mean. */
  a: number;
  b: number;
}

/** A batch-norm layer's epsilon (Flax's default 1e-5 when the payload has none). */
export function epsilonOf(layer: LayerSpec): number {
  const e = layer.options.epsilon;
  return typeof e === "number" ? e : 1e-5;
}

/** The folded per-channel affine of a batch-norm layer: y = a·x + b for channel `index`. */
export function batchnormAffine(network: Network, layerName: string, index: number): { a: number; b: number; mean: number; variance: number; scale: number; shift: number; epsilon: number } {
  const layer = getLayer(network, layerName);
  const st = network.stats?.get(layerName);
  if (layer.kind !== "batchnorm" || !st) throw new Error(`${layerName} is not a batch-norm layer with statistics`);
  const epsilon = epsilonOf(layer);
  const mean = st.mean[index];
  const variance = st.var[index];
  const scale = st.scale ? st.scale[index] : 1;
  const shift = st.bias ? st.bias[index] : 0;
  const a = scale / Math.sqrt(variance + epsilon);
  return { a, b: shift - a * mean, mean, variance, scale, shift, epsilon };
}

/** A batch-norm neuron at (y, x): normalise with the running statistics, scale, shift. */
export function batchnormAt(network: Network, activations: Activations, layerName: string, index: number, y: number, x: number): NormMath {
  const f = batchnormAffine(network, layerName, index);
  const input = valueAt(getValues(activations, inputName(network, layerName)), index, y, x);
  const std = Math.sqrt(f.variance + f.epsilon);
  const normalised = (input - f.mean) / std;
  return {
    layer: layerName,
    index,
    y,
    x,
    input,
    mean: f.mean,
    variance: f.variance,
    epsilon: f.epsilon,
    std,
    normalised,
    scale: f.scale,
    shift: f.shift,
    output: normalised * f.scale + f.shift,
    a: f.a,
    b: f.b,
  };
}

export interface ConcatSource {
  /** Which input (position in `inputs`). */
  input: number;
  /** Its layer name. */
  layer: string;
  /** The channel of that layer. */
  channel: number;
  /** First channel of the concat that comes from this input. */
  offset: number;
  /** Channels it contributes. */
  count: number;
}

/** Every input of a concat layer with the channels it fills, in order. */
export function concatParts(network: Network, layerName: string): ConcatSource[] {
  const layer = getLayer(network, layerName);
  if (layer.kind !== "concat") throw new Error(`${layerName} is a ${layer.kind} layer, not concat`);
  let offset = 0;
  return inputsOf(network, layerName).map((name, input) => {
    const sh = shapeOf(network, name);
    const count = sh[sh.length - 1];
    const part = { input, layer: name, channel: 0, offset, count };
    offset += count;
    return part;
  });
}

/** Where channel `index` of a concat layer comes from. */
export function concatSource(network: Network, layerName: string, index: number): ConcatSource {
  for (const p of concatParts(network, layerName)) {
    if (index >= p.offset && index < p.offset + p.count) return { ...p, channel: index - p.offset };
  }
  throw new Error(`${layerName} has no channel ${index}`);
}

export interface GlobalPoolMath {
  layer: string;
  index: number;
  op: "max" | "avg";
  /** The input channel's whole map (h × w, row major). */
  map: Float32Array;
  h: number;
  w: number;
  /** Σ of the map (double precision). */
  sum: number;
  count: number;
  /** Position of the maximum (first on ties). */
  argY: number;
  argX: number;
  max: number;
  /** mean or max: the one number the map is reduced to. */
  result: number;
}

/** A global pooling neuron: channel `index`'s map reduced to its mean or maximum. */
export function globalPoolAt(network: Network, activations: Activations, layerName: string, index: number): GlobalPoolMath {
  const layer = getLayer(network, layerName);
  if (layer.kind !== "global_pool") throw new Error(`${layerName} is a ${layer.kind} layer, not global_pool`);
  const input = getValues(activations, inputName(network, layerName));
  const { h, w } = dims(input);
  const map = channelMap(input, index);
  let sum = 0;
  let best = 0;
  for (let i = 0; i < map.length; i++) {
    sum += map[i];
    if (map[i] > map[best]) best = i;
  }
  const op = layer.function === "max" ? "max" : "avg";
  const max = map[best];
  return { layer: layerName, index, op, map, h, w, sum, count: map.length, argY: Math.floor(best / w), argX: best % w, max, result: op === "max" ? max : sum / map.length };
}

// ---------------------------------------------------------------------------------------------
// Dense layers and softmax

/**
 * Position i of the flatten vector as (c, h, w) of the spatial maps it comes from: the order is
 * (h, w, c), channels fastest, so i = (h·W + w)·C + c.
 */
export function flattenIndex(i: number, shape: { c: number; h: number; w: number }): { c: number; h: number; w: number } {
  const c = i % shape.c;
  const hw = (i - c) / shape.c;
  return { c, h: Math.floor(hw / shape.w), w: hw % shape.w };
}

/** The dense layer's input vector: a 1-D entry as is, spatial maps flattened in (h, w, c) order. */
export function denseInput(network: Network, activations: Activations, layerName: string): Float64Array {
  const input = getValues(activations, inputName(network, layerName));
  if (input.shape.length !== 3) return Float64Array.from(input.values);
  const { c: C, h: H, w: W } = dims(input);
  const out = new Float64Array(C * H * W);
  let i = 0;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) out[i++] = input.values[(c * H + y) * W + x];
  return out;
}

export interface DenseMath {
  layer: string;
  index: number;
  /** The flatten vector (or previous 1-D layer). */
  inputs: Float64Array;
  /** Row `index` of the kernel: weights[i] multiplies inputs[i]. */
  weights: Float32Array;
  /** inputs[i] · weights[i]. */
  products: Float64Array;
  bias: number;
  /** Σ products + bias: the logit (or the hidden unit before its activation). */
  total: number;
}

/** Logit `index` of a dense layer: Σ flatten[i]·W[index, i] + b[index]. */
export function denseAt(network: Network, activations: Activations, layerName: string, index: number, inputs?: Float64Array): DenseMath {
  const layer = getLayer(network, layerName);
  if (layer.kind !== "dense" || !layer.kernel) throw new Error(`${layerName} is not a dense layer`);
  const x = inputs ?? denseInput(network, activations, layerName);
  const [, n] = layer.kernel.shape;
  if (x.length !== n) throw new Error(`${layerName} expects ${n} inputs, its input has ${x.length}`);
  const kernel = network.kernels.get(layerName)!;
  const weights = kernel.subarray(index * n, (index + 1) * n);
  const products = new Float64Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    products[i] = x[i] * weights[i];
    s += products[i];
  }
  const bias = biasOf(network, layer, index);
  return { layer: layerName, index, inputs: x, weights, products, bias, total: s + bias };
}

/** The `count` largest |products| of a dense neuron, largest first, as indices. */
export function topContributions(products: Values, count: number): number[] {
  const idx = Array.from({ length: products.length }, (_, i) => i);
  idx.sort((a, b) => Math.abs(products[b]) - Math.abs(products[a]));
  return idx.slice(0, count);
}

export interface SoftmaxMath {
  logits: number[];
  /** exp(logit − shift). */
  exps: number[];
  /** 0 unless a logit is so large exp overflows; then the largest logit (softmax is unchanged). */
  shift: number;
  sum: number;
  probabilities: number[];
}

/** Softmax of a vector: exp, their sum and each probability. */
export function softmax(logits: Values): SoftmaxMath {
  const ls = Array.from(logits);
  const max = Math.max(...ls);
  const shift = max > 700 ? max : 0;
  const exps = ls.map((l) => Math.exp(l - shift));
  let sum = 0;
  for (const e of exps) sum += e;
  return { logits: ls, exps, shift, sum, probabilities: exps.map((e) => e / sum) };
}

// ---------------------------------------------------------------------------------------------
// Hyperparameter explorer

export interface HyperCheck {
  /** Input size after padding on both sides: n + 2p. */
  padded: number;
  /** ⌊(n + 2p − k) / s⌋ + 1, or 0 if the kernel does not fit. */
  output: number;
  /** True if the kernel fits and the stride tiles the padded input exactly. */
  valid: boolean;
  /** Why not, in words ("" when valid). */
  reason: string;
}

/** Check one setting of the hyperparameter explorer (square input n, padding p, kernel k, stride s). */
export function checkHyper(n: number, p: number, k: number, s: number): HyperCheck {
  const padded = n + 2 * p;
  if (k > padded) {
    return { padded, output: 0, valid: false, reason: `The ${k}×${k} kernel is larger than the ${padded}×${padded} padded input, so it cannot be placed anywhere. Use a smaller kernel or more padding.` };
  }
  const output = Math.floor((padded - k) / s) + 1;
  const rest = (padded - k) % s;
  if (rest !== 0) {
    return {
      padded,
      output,
      valid: false,
      reason:
        `With stride ${s} the kernel does not tile the input evenly: (n + 2p − k) = ${padded - k} is not a multiple of ${s}, ` +
        `so the last ${rest} ${rest === 1 ? "row and column are" : "rows and columns are"} never reached (frameworks silently drop them). ` +
        `Pick a stride that divides ${padded - k}, or change the padding or kernel size.`,
    };
  }
  return { padded, output, valid: true, reason: "" };
}

// ---------------------------------------------------------------------------------------------
// Number formatting

/**
 * Round the parts of a sum to `digits` decimals so that the shown parts add up exactly to the
 * shown (correctly rounded) total. Plain rounding does not (the original's 2-decimal sums often
 * disagree); here each part is rounded to nearest and then, while the rounded parts miss the
 * rounded total, the part whose rounding error is largest in the needed direction moves by one
 * unit in the last digit. So every shown part is within about one unit of its true value and the
 * sum is exact. Returns the shown values (multiples of 10^-digits) and the shown total.
 */
export function roundToSum(parts: Values, total: number, digits: number): { parts: number[]; total: number } {
  const scale = 10 ** digits;
  const target = Math.round(total * scale);
  const units = Array.from(parts, (p) => Math.round(p * scale));
  const err = Array.from(parts, (p, i) => p * scale - units[i]); // > 0: rounded down
  let diff = target - units.reduce((a, b) => a + b, 0);
  const n = units.length;
  if (n > 0) {
    while (diff !== 0) {
      const up = diff > 0;
      let best = 0;
      for (let i = 1; i < n; i++) if (up ? err[i] > err[best] : err[i] < err[best]) best = i;
      units[best] += up ? 1 : -1;
      err[best] += up ? -1 : 1;
      diff += up ? -1 : 1;
    }
  }
  return { parts: units.map((u) => u / scale), total: target / scale };
}

/** A number with `digits` decimals and a real minus sign; "∞", and "pad" for NaN (a padded cell). */
export function fmt(v: number, digits = 4): string {
  if (Number.isNaN(v)) return "pad";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  const a = Math.abs(v);
  if (a >= 1e6) return v.toExponential(Math.max(digits - 1, 2)).replace("-", "−");
  let s = v.toFixed(digits);
  if (/^-0\.?0*$/.test(s)) s = s.slice(1);
  return s.replace("-", "−");
}
