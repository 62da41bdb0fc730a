// Exact values for the views of large layers. An update too large to send exactly carries
// previews of its maps (payload.ts); before a view opens, the maps it reads must be exact, so
// the page asks the kernel for exactly those channels (the `fetch` message, documented in
// cnn_explainer_widget/_fetch.py) and fills them into the layer's `values`. Only the layers of
// the view being opened stay filled: memory is bounded by one view's needs.

import type { Activations, LayerSpec, LayerValues, Network } from "./payload";

/** Channels of one activations entry. */
export interface Want {
  layer: string;
  channels: number[];
}

/** Kinds whose neuron i reads only channel i of each input. */
const ONE_TO_ONE = new Set(["activation", "pool", "batchnorm", "add", "global_pool"]);

/** The entries `layer` reads: its `inputs` (graph networks) or the layer before, through flatten. */
export function sourcesOf(network: Network, layer: LayerSpec): string[] {
  const byName = new Map(network.layers.map((l) => [l.name, l]));
  const before = (name: string): string => {
    const i = network.layers.findIndex((l) => l.name === name);
    return i <= 0 ? "input" : network.layers[i - 1].name;
  };
  const resolve = (name: string): string => {
    const l = byName.get(name);
    if (!l || l.kind !== "flatten") return name;
    const ins = (l as { inputs?: string[] }).inputs;
    return resolve(ins && ins.length ? ins[0] : before(name));
  };
  const ins = (layer as { inputs?: string[] }).inputs;
  return (ins && ins.length ? ins : [before(layer.name)]).map(resolve);
}

/** The previewed maps the view of neuron `index` of `layer` reads (exact layers need nothing). */
export function viewNeeds(network: Network, acts: Activations, layer: string, index: number): Want[] {
  const wants = new Map<string, Set<number>>();
  const add = (name: string, channels: number[] | null) => {
    const v = acts.layers.get(name);
    if (!v?.exact) return; // sent exactly
    const set = wants.get(name) ?? new Set<number>();
    for (const c of channels ?? Array.from({ length: v.exact.length }, (_, i) => i)) {
      if (c >= 0 && c < v.exact.length) set.add(c);
    }
    if (set.size) wants.set(name, set);
  };
  if (layer === "input") add("input", null);
  const spec = network.layers.find((l) => l.name === layer);
  if (spec) {
    add(layer, [index]);
    const one = ONE_TO_ONE.has(spec.kind);
    for (const src of sourcesOf(network, spec)) add(src, one ? [index] : null);
  }
  return [...wants].map(([name, set]) => ({ layer: name, channels: [...set].sort((a, b) => a - b) }));
}

interface Pending {
  id: number;
  acts: Activations;
  wants: Want[];
  needs: Want[];
  parts: number;
  got: number;
  done: (error: string | null) => void;
}

interface ValuesMessage {
  type: "values";
  id: number;
  seq: number;
  layer?: string;
  channels?: number[];
  rows?: [number, number];
  shape?: [number, number, number];
  part?: number;
  parts?: number;
  error?: string;
}

type Listener = (...args: unknown[]) => void;

/** The model's side of fetching: `send` a request, `msg:custom` for the answers. */
export interface FetchModel {
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
  on(event: string, fn: Listener): void;
  off(event: string, fn: Listener): void;
}

/**
 * Asks the kernel for exact maps, one request at a time (a newer request replaces an older
 * one: its answer is dropped). `done(null)` once every piece is in; `done("stale")` when the
 * kernel shows another image by now (an update is on its way); otherwise the kernel's reason.
 */
export class Fetcher {
  private next = 1;
  private pending: Pending | null = null;
  /** Requests answered in full (a test hook: the root's `data-fetched`). */
  fetched = 0;

  constructor(private readonly model: FetchModel) {
    model.on("msg:custom", this.onMessage as Listener);
  }

  get busy(): boolean {
    return this.pending !== null;
  }

  /**
   * Fetch what `acts` misses of `needs` (only what is missing is asked for); once it is in,
   * the other previewed layers of `acts` give their exact values back (`keepOnly`).
   */
  request(acts: Activations, needs: Want[], done: (error: string | null) => void): void {
    const wants = missing(acts, needs);
    const prev = this.pending;
    const id = this.next++;
    this.pending = { id, acts, wants, needs, parts: -1, got: 0, done };
    prev?.done("replaced");
    this.model.send({ type: "fetch", id, seq: acts.seq, layers: wants });
  }

  cancel(): void {
    this.pending = null;
  }

  private onMessage = (msg: unknown, buffers?: unknown) => {
    if (typeof msg !== "object" || msg === null || (msg as { type?: unknown }).type !== "values") return;
    const m = msg as ValuesMessage;
    const p = this.pending;
    if (!p || m.id !== p.id) return;
    if (m.error !== undefined || !m.layer || !m.channels || !m.rows || !m.shape || !m.parts) {
      this.pending = null;
      p.done(m.error ?? "the kernel's answer was malformed");
      return;
    }
    const v = p.acts.layers.get(m.layer);
    const buf = Array.isArray(buffers) ? buffers[0] : undefined;
    const [C, H, W] = m.shape;
    const [y0, y1] = m.rows;
    const n = m.channels.length * (y1 - y0) * W;
    if (!v || !v.exact || v.shape.join() !== m.shape.join() || !ArrayBuffer.isView(buf) || buf.byteLength !== 4 * n) {
      this.pending = null;
      p.done(`the kernel's values for ${m.layer} do not fit its map`);
      return;
    }
    if (v.values.length !== C * H * W) v.values = new Float32Array(C * H * W);
    // The buffer may start at any byte: copy it once into aligned floats.
    const src = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const rows = (y1 - y0) * W;
    m.channels.forEach((c, k) => v.values.set(src.subarray(k * rows, (k + 1) * rows), (c * H + y0) * W));
    p.parts = m.parts;
    p.got += 1;
    if (p.got < p.parts) return;
    for (const w of p.wants) {
      const lv = p.acts.layers.get(w.layer);
      for (const c of w.channels) if (lv?.exact) lv.exact[c] = 1;
    }
    keepOnly(p.acts, p.needs);
    this.pending = null;
    this.fetched += 1;
    p.done(null);
  };

  destroy(): void {
    this.pending = null;
    this.model.off("msg:custom", this.onMessage as Listener);
  }
}

/** The channels of `needs` that `acts` does not hold exactly. */
export function missing(acts: Activations, needs: Want[]): Want[] {
  const out: Want[] = [];
  for (const w of needs) {
    const exact = acts.layers.get(w.layer)?.exact;
    const channels = exact ? w.channels.filter((c) => !exact[c]) : [];
    if (channels.length) out.push({ layer: w.layer, channels });
  }
  return out;
}

/** Give back the exact values of every previewed layer of `acts` that `needs` does not name. */
export function keepOnly(acts: Activations, needs: Want[]): void {
  const keep = new Set(needs.map((w) => w.layer));
  for (const v of acts.layers.values()) if (v.exact && !keep.has(v.name)) release(v);
}

/** Drop a previewed layer's exact values (the preview stays). */
export function release(v: LayerValues): void {
  if (!v.exact) return;
  v.values = new Float32Array(0);
  v.exact.fill(0);
}
