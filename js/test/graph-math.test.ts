// math.ts on a graph network (protocol 3): every neuron of every new kind, at every position,
// against a reference forward pass computed independently (graph-net.ts).
import { describe, expect, it } from "vitest";
import {
  addAt,
  batchnormAffine,
  batchnormAt,
  concatParts,
  concatSource,
  convAt,
  convIntermediate,
  dims,
  getValues,
  globalPoolAt,
  groupChannels,
  inputName,
  inputsOf,
  readWindow,
  windowAt,
  denseAt,
  getLayer,
} from "../src/math";
import { graphNet } from "./graph-net";

const TOL = 1e-5;
const { network, activations } = graphNet();

function value(layer: string, index: number, y: number, x: number): number {
  const v = getValues(activations, layer);
  const { h, w } = dims(v);
  return v.values[(index * h + y) * w + x];
}

function each(layer: string, fn: (c: number, y: number, x: number) => void): void {
  const [C, H, W] = getValues(activations, layer).shape;
  for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) fn(c, y, x);
}

describe("inputs of a graph layer", () => {
  it("follows the payload's inputs, not the layer order", () => {
    expect(inputsOf(network, "add")).toEqual(["relu", "dw"]);
    expect(inputsOf(network, "cat")).toEqual(["add", "proj"]);
    expect(inputsOf(network, "proj")).toEqual(["c1"]);
    expect(inputName(network, "c1")).toBe("input");
    expect(inputName(network, "out")).toBe("gap");
  });
});

describe("add", () => {
  it("shows each summand and their sum, equal to the layer's value everywhere", () => {
    each("add", (c, y, x) => {
      const m = addAt(network, activations, "add", c, y, x);
      expect(m.terms).toEqual([value("relu", c, y, x), value("dw", c, y, x)]);
      expect(Math.abs(m.total - value("add", c, y, x))).toBeLessThan(TOL);
    });
  });
  it("refuses a layer that is not an add", () => {
    expect(() => addAt(network, activations, "bn", 0, 0, 0)).toThrow(/not add/);
  });
});

describe("batch norm", () => {
  it("normalise, scale, shift equals the layer, and so does the folded a·x + b", () => {
    each("bn", (c, y, x) => {
      const m = batchnormAt(network, activations, "bn", c, y, x);
      const want = value("bn", c, y, x);
      expect(m.input).toBe(value("c1", c, y, x));
      expect(Math.abs(m.normalised - (m.input - m.mean) / Math.sqrt(m.variance + m.epsilon))).toBeLessThan(1e-12);
      expect(Math.abs(m.output - want)).toBeLessThan(TOL);
      expect(Math.abs(m.a * m.input + m.b - want)).toBeLessThan(TOL);
    });
    const f = batchnormAffine(network, "bn", 2);
    expect(f.epsilon).toBe(1e-3);
    expect(f.a).toBeCloseTo(f.scale / Math.sqrt(f.variance + 1e-3), 12);
  });
});

describe("depthwise dilated conv", () => {
  const layer = getLayer(network, "dw");
  it("reads only its group's input channel", () => {
    expect(groupChannels(layer, 0)).toEqual([0]);
    expect(groupChannels(layer, 3)).toEqual([3]);
    const full = getLayer(network, "c1");
    expect(groupChannels(full, 3)).toEqual([0, 1]);
  });
  it("places the window's taps dilation apart", () => {
    const p = windowAt(layer, 3, 2);
    expect([p.top, p.left, p.dy, p.dx, p.kh, p.kw]).toEqual([1, 0, 2, 2, 3, 3]);
    const map = Float32Array.from({ length: 49 }, (_, i) => i);
    const { values } = readWindow(map, 7, 7, p, 0);
    // rows 1, 3, 5 and columns 0, 2, 4 of a 7×7 map numbered row by row
    expect(values).toEqual([7, 9, 11, 21, 23, 25, 35, 37, 39]);
  });
  it("equals the layer at every position; its intermediate map plus the bias is the map", () => {
    each("dw", (c, y, x) => {
      const m = convAt(network, activations, "dw", c, y, x);
      expect(m.channels.map((t) => t.channel)).toEqual([c]);
      expect(Math.abs(m.total - value("dw", c, y, x))).toBeLessThan(TOL);
    });
    const inter = convIntermediate(network, activations, "dw", 1, 1);
    const b = network.biases.get("dw")![1];
    each("dw", (c, y, x) => {
      if (c === 1) expect(Math.abs(inter[y * 6 + x] + b - value("dw", 1, y, x))).toBeLessThan(TOL);
    });
    expect(() => convIntermediate(network, activations, "dw", 1, 0)).toThrow(/does not read input channel 0/);
  });
  it("a conv without groups still reads every channel, also from a layer further back", () => {
    each("c1", (c, y, x) => {
      const m = convAt(network, activations, "c1", c, y, x);
      expect(m.channels.length).toBe(2);
      expect(Math.abs(m.total - value("c1", c, y, x))).toBeLessThan(TOL);
    });
    each("proj", (c, y, x) => {
      const m = convAt(network, activations, "proj", c, y, x);
      expect(m.channels.map((t) => t.window[0])).toEqual([0, 1, 2, 3].map((k) => value("c1", k, y, x)));
      expect(Math.abs(m.total - value("proj", c, y, x))).toBeLessThan(TOL);
    });
  });
});

describe("concat", () => {
  it("says which input and channel every output channel comes from, and the values agree", () => {
    expect(concatParts(network, "cat").map((p) => [p.layer, p.offset, p.count])).toEqual([
      ["add", 0, 4],
      ["proj", 4, 3],
    ]);
    each("cat", (c, y, x) => {
      const s = concatSource(network, "cat", c);
      expect(value(s.layer, s.channel, y, x)).toBe(value("cat", c, y, x));
    });
    expect(concatSource(network, "cat", 5)).toMatchObject({ layer: "proj", channel: 1, input: 1 });
    expect(() => concatSource(network, "cat", 7)).toThrow(/no channel 7/);
  });
});

describe("global pool", () => {
  it("reduces each channel's map to its mean (the layer's value)", () => {
    const gap = getValues(activations, "gap").values;
    for (let c = 0; c < 7; c++) {
      const m = globalPoolAt(network, activations, "gap", c);
      expect(m.count).toBe(42);
      expect(Math.abs(m.result - gap[c])).toBeLessThan(TOL);
      expect(m.max).toBe(Math.max(...m.map));
    }
  });
  it("a dense layer reads the pooled vector directly", () => {
    const out = getValues(activations, "out").values;
    for (let i = 0; i < 3; i++) expect(Math.abs(denseAt(network, activations, "out", i).total - out[i])).toBeLessThan(TOL);
  });
});
