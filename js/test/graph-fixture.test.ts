// math.ts against JAX on the graph fixture (scripts/make_js_fixture.py `graph_network`: a network
// built from Layer records with a residual add of batch-normed convs, a depthwise conv with a
// channel multiplier, stride and asymmetric padding, a dilated conv, a concat, a batch norm
// without scale, a global average pool, on a 12×10 input): every neuron of every graph layer, at
// every position, within 1e-4 of the network's own activations.
import { describe, expect, it } from "vitest";
import { addAt, batchnormAt, concatSource, convAt, denseAt, dims, getLayer, getValues, globalPoolAt, groupChannels, inputsOf } from "../src/math";
import { buildColumns, sourcesFrom } from "../src/overview/columns";
import { loadFixture } from "./fixtures/load";

const TOL = 1e-4;
const { network, activations } = loadFixture("graph");

function value(layer: string, index: number, y: number, x: number): number {
  const v = getValues(activations, layer);
  const { h, w } = dims(v);
  return v.shape.length === 3 ? v.values[(index * h + y) * w + x] : v.values[index];
}

function close(actual: number, expected: number, what: string): void {
  if (!(Math.abs(actual - expected) <= TOL * Math.max(1, Math.abs(expected)))) {
    throw new Error(`${what}: math.ts gives ${actual}, JAX gives ${expected}`);
  }
}

function everyNeuron(kind: string, fn: (layer: string, c: number, y: number, x: number) => void): number {
  let n = 0;
  for (const l of network.layers.filter((l) => l.kind === kind)) {
    const [H, W, C] = l.output_shape.length === 3 ? l.output_shape : [1, 1, l.output_shape[0]];
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          fn(l.name, c, y, x);
          n++;
        }
      }
    }
  }
  return n;
}

describe("the graph fixture", () => {
  it("has every graph kind, a depthwise conv with groups and a dilated conv", () => {
    const kinds = new Set(network.layers.map((l) => l.kind));
    for (const k of ["batchnorm", "add", "concat", "global_pool", "conv", "dense"]) expect(kinds.has(k as never)).toBe(true);
    expect(network.layers.some((l) => (l.groups ?? 1) > 1)).toBe(true);
    expect(network.layers.some((l) => l.dilation && l.dilation[0] > 1)).toBe(true);
  });

  it("add: the summands from JAX's maps add up to JAX's sum", () => {
    const n = everyNeuron("add", (layer, c, y, x) => {
      const m = addAt(network, activations, layer, c, y, x);
      expect(m.inputs).toEqual(inputsOf(network, layer));
      close(m.total, value(layer, c, y, x), `${layer}[${c}] at (${y}, ${x})`);
    });
    expect(n).toBeGreaterThan(0);
  });

  it("batch norm: normalise-scale-shift and the folded a·x + b both give JAX's value", () => {
    const n = everyNeuron("batchnorm", (layer, c, y, x) => {
      const m = batchnormAt(network, activations, layer, c, y, x);
      close(m.output, value(layer, c, y, x), `${layer}[${c}] at (${y}, ${x})`);
      close(m.a * m.input + m.b, value(layer, c, y, x), `${layer}[${c}] folded at (${y}, ${x})`);
    });
    expect(n).toBeGreaterThan(0);
  });

  it("every conv (grouped, strided, dilated, asymmetric padding) reads only its group and gives JAX's value", () => {
    const n = everyNeuron("conv", (layer, c, y, x) => {
      const spec = getLayer(network, layer);
      const m = convAt(network, activations, layer, c, y, x);
      expect(m.channels.map((t) => t.channel)).toEqual(groupChannels(spec, c));
      close(m.total, value(layer, c, y, x), `${layer}[${c}] at (${y}, ${x})`);
    });
    expect(n).toBeGreaterThan(0);
    const dw = network.layers.find((l) => (l.groups ?? 1) > 1)!;
    expect(groupChannels(dw, 0).length).toBe(dw.input_shape[2] / dw.groups!);
  });

  it("concat: every channel is the channel of the input it names", () => {
    const n = everyNeuron("concat", (layer, c, y, x) => {
      const s = concatSource(network, layer, c);
      expect(value(s.layer, s.channel, y, x)).toBe(value(layer, c, y, x));
    });
    expect(n).toBeGreaterThan(0);
  });

  it("global pool and the dense layer after it give JAX's values", () => {
    for (const l of network.layers.filter((l) => l.kind === "global_pool")) {
      for (let c = 0; c < l.output_shape[0]; c++) close(globalPoolAt(network, activations, l.name, c).result, value(l.name, c, 0, 0), `${l.name}[${c}]`);
    }
    const out = network.layers.filter((l) => l.kind === "dense").pop()!;
    for (let i = 0; i < out.output_shape[0]; i++) close(denseAt(network, activations, out.name, i).total, value(out.name, i, 0, 0), `${out.name}[${i}]`);
  });

  it("the overview connects each column to the columns its layer reads", () => {
    const cols = buildColumns(network);
    for (const col of cols.slice(1)) {
      const spec = getLayer(network, col.layer);
      const names = inputsOf(network, spec.name);
      expect(col.inputs.map((p) => cols[p].layer)).toEqual(names);
      for (const [p] of sourcesFrom(cols, col.index, 0)) expect(names).toContain(cols[p].layer);
    }
  });
});
