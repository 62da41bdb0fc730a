// Types and decoding of the kernel's payload. The schema is documented in
// cnn_explainer_widget/_protocol.py; PROTOCOL_VERSION must equal the Python constant
// (tests/test_widget.py checks it).

export const PROTOCOL_VERSION = 3;

export type LayerKind =
  | "conv"
  | "activation"
  | "pool"
  | "flatten"
  | "dense"
  | "softmax"
  | "batchnorm"
  | "add"
  | "concat"
  | "global_pool";

export interface TensorRef {
  shape: number[];
  offset: number; // in float32 values into the message's data buffer
}

export interface LayerSpec {
  name: string;
  kind: LayerKind;
  function: string | null; // activation name ("relu", ...) or pool op ("max" | "avg")
  input_shape: number[]; // (H, W, C) or (N,)
  output_shape: number[];
  kernel_size: [number, number] | null;
  stride: [number, number] | null;
  padding: [[number, number], [number, number]] | null; // ((top, bottom), (left, right))
  options: Record<string, unknown>;
  module: number;
  kernel: TensorRef | null; // conv: (C_out, C_in / groups, kh, kw); dense: (out, in), in = flatten (h, w, c)
  bias: TensorRef | null;
  /** Protocol 3: the layers it reads ("input" for the image), in order. Absent: the layer before. */
  inputs?: string[];
  /** Conv kernel dilation (dy, dx); null or absent: (1, 1). */
  dilation?: [number, number] | null;
  /** Conv feature groups (absent: 1). */
  groups?: number;
  /** Where the layer comes from in the user's code (for tooltips). */
  source?: string | null;
  /** Batch norm: running statistics and affine parameters, per channel. */
  stats?: { mean: TensorRef; var: TensorRef; scale: TensorRef | null; bias: TensorRef | null } | null;
}

/** A batch-norm layer's per-channel parameters (scale / bias null when the layer has none). */
export interface NormStats {
  mean: Float32Array;
  var: Float32Array;
  scale: Float32Array | null;
  bias: Float32Array | null;
}

export interface NetworkMessage {
  version: number;
  name: string;
  input_shape: [number, number, number];
  classes: string[];
  layers: LayerSpec[];
  data: DataView;
}

/** A layer the kernel did not send because it is rebuilt here bit for bit from another. */
export interface Derivation {
  op: "relu" | "max_pool";
  from: string; // the layer it is computed from (already decoded: entries come in order)
  window?: [number, number];
  stride?: [number, number];
  padding?: [[number, number], [number, number]];
}

export interface ActivationEntry {
  name: string;
  shape: number[]; // [C, H, W] for spatial maps, [N] for vectors
  offset?: number; // absent when `derived` or `preview` is given
  derived?: Derivation;
  /** A large map sent reduced: uint8 [C, h, w] at `offset` bytes into the message's `previews`. */
  preview?: { shape: [number, number, number]; offset: number };
  min: number[];
  max: number[];
}

export interface ActivationsMessage {
  version: number;
  seq: number;
  image: { name: string; source: string };
  layers: ActivationEntry[];
  data: DataView;
  /** Only in updates too large to send exactly (see `ActivationEntry.preview`). */
  previews?: DataView;
}

/**
 * A map sent reduced: each channel's block means at `shape` [C, h, w], quantised over the
 * channel's true range (level q stands for min + q · (max − min) / 255).
 */
export interface Preview {
  shape: [number, number, number];
  data: Uint8Array;
}

/** A decoded layer's values: `values` is channel-first. */
export interface LayerValues {
  name: string;
  shape: number[];
  /**
   * Every value, channel first. For a layer sent as a `preview` it is empty until a view
   * fetches exact values (js/src/fetch.ts): then full size, exact for the channels in `exact`.
   */
  values: Float32Array;
  min: number[];
  max: number[];
  preview?: Preview;
  /** Layers sent as a preview: 1 for each channel whose exact values `values` holds. */
  exact?: Uint8Array;
}

/** The network with its weights as typed arrays. */
export interface Network {
  name: string;
  inputShape: [number, number, number];
  classes: string[];
  layers: LayerSpec[];
  kernels: Map<string, Float32Array>;
  biases: Map<string, Float32Array>;
  /** Batch-norm statistics by layer name. */
  stats?: Map<string, NormStats>;
}

export interface Activations {
  seq: number;
  image: { name: string; source: string };
  layers: Map<string, LayerValues>; // "input" and every layer but flatten
}

export class PayloadError extends Error {}

function floats(view: DataView): Float32Array {
  // Buffers may start at any byte offset inside the websocket frame; Float32Array needs a
  // multiple of 4, so copy once into an aligned buffer.
  const copy = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  return new Float32Array(copy);
}

function toView(data: unknown): DataView {
  if (data instanceof DataView) return data;
  if (data instanceof ArrayBuffer) return new DataView(data);
  if (ArrayBuffer.isView(data)) return new DataView(data.buffer, data.byteOffset, data.byteLength);
  throw new PayloadError("payload data is not binary");
}

function checkVersion(version: unknown): void {
  if (version !== PROTOCOL_VERSION) {
    throw new PayloadError(
      `this front end reads payload version ${PROTOCOL_VERSION}, the kernel sent ${String(version)}: ` +
        "reinstall cnn-explainer-widget and restart the kernel",
    );
  }
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function decodeNetwork(msg: NetworkMessage): Network {
  checkVersion(msg.version);
  const all = floats(toView(msg.data));
  const kernels = new Map<string, Float32Array>();
  const biases = new Map<string, Float32Array>();
  const stats = new Map<string, NormStats>();
  const slice = (t: TensorRef) => all.subarray(t.offset, t.offset + size(t.shape));
  for (const layer of msg.layers) {
    if (layer.kernel) kernels.set(layer.name, slice(layer.kernel));
    if (layer.bias) biases.set(layer.name, slice(layer.bias));
    if (layer.stats) {
      const st = layer.stats;
      stats.set(layer.name, { mean: slice(st.mean), var: slice(st.var), scale: st.scale ? slice(st.scale) : null, bias: st.bias ? slice(st.bias) : null });
    }
  }
  return { name: msg.name, inputShape: msg.input_shape, classes: msg.classes, layers: msg.layers, kernels, biases, stats };
}

/** Rebuild a ReLU or max-pool layer from its input, exactly as XLA computes it in float32. */
export function derive(d: Derivation, src: LayerValues, shape: number[]): Float32Array {
  const v = src.values;
  const out = new Float32Array(size(shape));
  if (d.op === "relu") {
    for (let i = 0; i < v.length; i++) out[i] = v[i] > 0 ? v[i] : 0;
    return out;
  }
  if (d.op !== "max_pool" || !d.window || !d.stride || !d.padding || src.shape.length !== 3) {
    throw new PayloadError(`cannot derive a layer with op ${String(d.op)}`);
  }
  const [C, H, W] = src.shape;
  const [, OH, OW] = shape;
  const [kh, kw] = d.window;
  const [sh, sw] = d.stride;
  const top = d.padding[0][0];
  const left = d.padding[1][0];
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        let m = -Infinity; // padded cells never win, as in lax.reduce_window with -inf
        for (let i = 0; i < kh; i++) {
          const y = oy * sh - top + i;
          if (y < 0 || y >= H) continue;
          for (let j = 0; j < kw; j++) {
            const x = ox * sw - left + j;
            if (x < 0 || x >= W) continue;
            const value = v[base + y * W + x];
            if (value > m) m = value;
          }
        }
        out[(c * OH + oy) * OW + ox] = m;
      }
    }
  }
  return out;
}

export function decodeActivations(msg: ActivationsMessage): Activations {
  checkVersion(msg.version);
  const all = floats(toView(msg.data));
  const previews = msg.previews === undefined ? null : toView(msg.previews);
  const layers = new Map<string, LayerValues>();
  for (const e of msg.layers) {
    let values: Float32Array;
    if (e.preview) {
      const [c, h, w] = e.preview.shape;
      const n = c * h * w;
      if (!previews || e.preview.offset + n > previews.byteLength || e.shape[0] !== c) {
        throw new PayloadError(`layer ${e.name}'s preview lies outside the message`);
      }
      const data = new Uint8Array(previews.buffer, previews.byteOffset + e.preview.offset, n);
      const preview: Preview = { shape: [c, h, w], data };
      layers.set(e.name, { name: e.name, shape: e.shape, values: new Float32Array(0), min: e.min, max: e.max, preview, exact: new Uint8Array(c) });
      continue;
    }
    if (e.derived) {
      const src = layers.get(e.derived.from);
      if (!src) throw new PayloadError(`layer ${e.name} is derived from unknown layer ${e.derived.from}`);
      values = derive(e.derived, src, e.shape);
    } else {
      const offset = e.offset ?? 0;
      values = all.subarray(offset, offset + size(e.shape));
    }
    layers.set(e.name, { name: e.name, shape: e.shape, values, min: e.min, max: e.max });
  }
  return { seq: msg.seq, image: msg.image, layers };
}
