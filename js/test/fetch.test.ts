// Large layers in the page: previews decoded and painted with the exact maps' colours, what a
// view must fetch, and the fetch answers assembled into exact values (memory: one view's layers).
import { describe, expect, it } from "vitest";
import { paintMap } from "../src/colors";
import { Fetcher, keepOnly, missing, viewNeeds } from "../src/fetch";
import { paintLevels } from "../src/overview/paint";
import { type Activations, type ActivationsMessage, PROTOCOL_VERSION, PayloadError, decodeActivations } from "../src/payload";
import { loadFixture } from "./fixtures/load";

const { network, activations: exact } = loadFixture("tiny_vgg");

/** Tiny VGG's activations with every map but the input sent as a 4×4 preview (levels 0…15). */
function previewed(seq = 5): ActivationsMessage {
  const layers: ActivationsMessage["layers"] = [];
  const floats: number[] = [];
  const bytes: number[] = [];
  for (const [name, v] of exact.layers) {
    if (v.shape.length === 3 && name !== "input") {
      const c = v.shape[0];
      layers.push({ name, shape: v.shape, min: v.min, max: v.max, preview: { shape: [c, 4, 4], offset: bytes.length } });
      for (let i = 0; i < c * 16; i++) bytes.push(i % 16);
    } else {
      layers.push({ name, shape: v.shape, min: v.min, max: v.max, offset: floats.length });
      floats.push(...v.values);
    }
  }
  const data = new Float32Array(floats);
  const previews = new Uint8Array(bytes);
  return { version: PROTOCOL_VERSION, seq, image: { name: "x", source: "python" }, layers, data: new DataView(data.buffer), previews: new DataView(previews.buffer) };
}

describe("previews", () => {
  it("are decoded as views of the message, with no exact values yet", () => {
    const acts = decodeActivations(previewed());
    const conv = acts.layers.get("conv_1_1")!;
    expect(conv.values.length).toBe(0);
    expect(conv.preview!.shape).toEqual([10, 4, 4]);
    expect(Array.from(conv.preview!.data.subarray(16, 20))).toEqual([0, 1, 2, 3]);
    expect(Array.from(conv.exact!)).toEqual(new Array(10).fill(0));
    expect(acts.layers.get("input")!.values).toEqual(exact.layers.get("input")!.values);
  });

  it("outside the message are a readable error", () => {
    const msg = previewed();
    const layers = msg.layers.map((e) => (e.preview ? { ...e, preview: { ...e.preview, offset: 1e6 } } : e));
    expect(() => decodeActivations({ ...msg, layers })).toThrow(PayloadError);
    expect(() => decodeActivations({ ...msg, previews: undefined })).toThrow(/preview lies outside/);
  });

  it("are painted in the colours of the values their levels stand for", () => {
    const levels = Uint8Array.from([0, 1, 128, 200, 255, 7]);
    const [min, max, extent] = [-2.5, 4, 3.2];
    const got = new Uint8ClampedArray(levels.length * 4);
    paintLevels(levels, got, "diverging", extent, min, max);
    const values = Array.from(levels, (q) => min + (q * (max - min)) / 255);
    const want = new Uint8ClampedArray(levels.length * 4);
    paintMap(values, want, "diverging", extent);
    expect(Array.from(got)).toEqual(Array.from(want));
    paintLevels(levels, got, "grey", 1, 0, 1);
    paintMap(Array.from(levels, (q) => q / 255), want, "grey", 1);
    expect(Array.from(got)).toEqual(Array.from(want));
  });
});

describe("what a view fetches", () => {
  const acts = () => decodeActivations(previewed());

  it("a conv neuron: its own channel and every channel it reads", () => {
    expect(viewNeeds(network, acts(), "conv_1_2", 3)).toEqual([
      { layer: "conv_1_2", channels: [3] },
      { layer: "relu_1_1", channels: [...Array(10).keys()] },
    ]);
  });

  it("an activation or pool neuron: one channel of each; the input's conv: nothing of the input", () => {
    expect(viewNeeds(network, acts(), "max_pool_1", 7)).toEqual([
      { layer: "max_pool_1", channels: [7] },
      { layer: "relu_1_2", channels: [7] },
    ]);
    expect(viewNeeds(network, acts(), "conv_1_1", 0)).toEqual([{ layer: "conv_1_1", channels: [0] }]);
  });

  it("a class reads the last maps through flatten; exact data needs nothing", () => {
    const out = network.layers.filter((l) => l.kind === "dense").pop()!.name;
    expect(viewNeeds(network, acts(), out, 2)).toEqual([{ layer: "max_pool_2", channels: [...Array(10).keys()] }]);
    expect(viewNeeds(network, exact, "conv_1_2", 3)).toEqual([]);
  });
});

function fakeModel() {
  const listeners: ((msg: unknown, buffers?: unknown) => void)[] = [];
  const sent: unknown[] = [];
  return {
    sent,
    answer: (msg: unknown, buffers?: unknown) => listeners.forEach((f) => f(msg, buffers)),
    model: {
      send: (content: unknown) => sent.push(content),
      on: (_: string, f: (...a: unknown[]) => void) => listeners.push(f),
      off: () => {},
    },
  };
}

/** The kernel's answer to `req`, as `cnn_explainer_widget._fetch` cuts it (rows of `rows`). */
function answer(truth: Activations, req: { id: number; seq: number; layers: { layer: string; channels: number[] }[] }, rows: number) {
  const out: [unknown, DataView[]][] = [];
  for (const w of req.layers) {
    const [C, H, W] = truth.layers.get(w.layer)!.shape;
    for (const c of w.channels) {
      for (let y = 0; y < H; y += rows) {
        const y1 = Math.min(H, y + rows);
        const part = truth.layers.get(w.layer)!.values.slice((c * H + y) * W, (c * H + y1) * W);
        // at an odd byte offset, as a websocket frame may put it
        const bytes = new Uint8Array(part.byteLength + 1);
        bytes.set(new Uint8Array(part.buffer), 1);
        out.push([{ type: "values", id: req.id, seq: req.seq, layer: w.layer, channels: [c], rows: [y, y1], shape: [C, H, W] }, [new DataView(bytes.buffer, 1)]]);
      }
    }
  }
  return out.map(([m, b], part) => [{ ...(m as object), part, parts: out.length }, b] as const);
}

describe("the fetcher", () => {
  it("fills exactly what was asked for, in pieces, and keeps only one view's layers", () => {
    const acts = decodeActivations(previewed(5));
    const fake = fakeModel();
    const f = new Fetcher(fake.model);
    const needs = viewNeeds(network, acts, "conv_1_2", 3);
    const results: (string | null)[] = [];
    f.request(acts, needs, (e) => results.push(e));
    const req = fake.sent[0] as { type: string; id: number; seq: number; layers: { layer: string; channels: number[] }[] };
    expect(req).toMatchObject({ type: "fetch", seq: 5, layers: needs });
    const pieces = answer(exact, req, 25);
    expect(pieces.length).toBeGreaterThan(11);
    pieces.forEach(([m, b]) => fake.answer(m, b));
    expect(results).toEqual([null]);
    expect(f.fetched).toBe(1);
    expect(missing(acts, needs)).toEqual([]);
    const relu = acts.layers.get("relu_1_1")!;
    expect(Array.from(relu.values)).toEqual(Array.from(exact.layers.get("relu_1_1")!.values));
    const conv = acts.layers.get("conv_1_2")!;
    const [, H, W] = conv.shape;
    expect(Array.from(conv.values.subarray(3 * H * W, 4 * H * W))).toEqual(Array.from(exact.layers.get("conv_1_2")!.values.subarray(3 * H * W, 4 * H * W)));
    expect(Array.from(conv.exact!)).toEqual([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    // the next view keeps what it needs and gives the rest back
    keepOnly(acts, viewNeeds(network, acts, "relu_1_2", 3));
    expect(relu.values.length).toBe(0);
    expect(conv.values.length).toBe(10 * H * W);
  });

  it("drops answers to an older request and reports the kernel's refusals", () => {
    const acts = decodeActivations(previewed(5));
    const fake = fakeModel();
    const f = new Fetcher(fake.model);
    const results: (string | null)[] = [];
    f.request(acts, viewNeeds(network, acts, "conv_1_2", 3), (e) => results.push(`a:${e}`));
    f.request(acts, viewNeeds(network, acts, "max_pool_1", 0), (e) => results.push(`b:${e}`));
    const [first, second] = fake.sent as { id: number; seq: number; layers: { layer: string; channels: number[] }[] }[];
    answer(exact, first, 100).forEach(([m, b]) => fake.answer(m, b));
    expect(acts.layers.get("relu_1_1")!.values.length).toBe(0);
    fake.answer({ type: "values", id: second.id, seq: 5, error: "stale" });
    expect(results).toEqual(["a:replaced", "b:stale"]);
    expect(f.busy).toBe(false);
    // a piece that does not fit its map is refused, not written
    f.request(acts, viewNeeds(network, acts, "max_pool_1", 0), (e) => results.push(`c:${e}`));
    const third = fake.sent[2] as { id: number };
    fake.answer({ type: "values", id: third.id, seq: 5, layer: "relu_1_2", channels: [0], rows: [0, 2], shape: [10, 60, 60], part: 0, parts: 2 }, [new DataView(new ArrayBuffer(8))]);
    expect(results[2]).toMatch(/^c:the kernel's values for relu_1_2 do not fit/);
  });
});
