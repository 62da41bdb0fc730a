// math.ts against the JAX activations of two real networks (fixtures from
// scripts/make_js_fixture.py): the shipped Tiny VGG on the espresso image, and "odd", a small
// random network with stride 2, SAME / asymmetric padding, a 2×3 kernel, avg pooling with and
// without counting padded cells, padded max pooling, six activation functions, 1 input channel.
import { describe, expect, it } from "vitest";
import {
  activationAt,
  activationFunction,
  channelMap,
  checkHyper,
  convAt,
  convIntermediate,
  denseAt,
  denseInput,
  dims,
  erf,
  flattenIndex,
  fmt,
  getValues,
  inputName,
  outputSize,
  poolAt,
  readWindow,
  roundToSum,
  softmax,
  topContributions,
  windowAt,
} from "../src/math";
import type { LayerSpec, Network } from "../src/payload";
import { loadFixture, type Fixture } from "./fixtures/load";

const TOL = 1e-4;

function close(actual: number, expected: number, what: string): void {
  const tol = TOL * Math.max(1, Math.abs(expected));
  if (!(Math.abs(actual - expected) <= tol)) {
    throw new Error(`${what}: math.ts gives ${actual}, JAX gives ${expected} (|diff| ${Math.abs(actual - expected)} > ${tol})`);
  }
}

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Random (index, y, x) positions of a spatial layer, plus the four corners (where padding is). */
function positions(layer: LayerSpec, count: number, seed: number): [number, number, number][] {
  const [oh, ow, c] = layer.output_shape;
  const r = rng(seed);
  const out: [number, number, number][] = [];
  for (let k = 0; k < c; k++) {
    out.push([k, 0, 0], [k, 0, ow - 1], [k, oh - 1, 0], [k, oh - 1, ow - 1]);
  }
  for (let i = 0; i < count; i++) out.push([r(c), r(oh), r(ow)]);
  return out;
}

function actual(f: Fixture, layer: string, index: number, y: number, x: number): number {
  const v = getValues(f.activations, layer);
  const { h, w } = dims(v);
  return v.values[(index * h + y) * w + x];
}

const fixtures: [string, Fixture][] = [
  ["tiny_vgg", loadFixture("tiny_vgg")],
  ["odd", loadFixture("odd")],
];

describe("fixtures", () => {
  it("hold the layer configurations the tests are meant to cover", () => {
    const tiny = fixtures[0][1].network;
    expect(tiny.layers.map((l) => l.kind)).toContain("conv");
    expect(getValues(fixtures[0][1].activations, "input").shape).toEqual([3, 64, 64]);
    const odd = fixtures[1][1].network;
    const conv1 = odd.layers[0];
    expect(conv1.stride).toEqual([2, 2]);
    expect(conv1.padding).toEqual([[1, 1], [1, 1]]);
    expect(odd.inputShape).toEqual([17, 17, 1]);
    const pools = odd.layers.filter((l) => l.kind === "pool");
    expect(pools.map((p) => [p.function, p.options.count_include_pad ?? null])).toEqual([
      ["avg", true],
      ["max", null],
      ["avg", false],
    ]);
    expect(new Set(odd.layers.filter((l) => l.kind === "activation").map((l) => l.function))).toEqual(
      new Set(["leaky_relu", "gelu", "elu", "silu", "tanh", "sigmoid"]),
    );
  });
});

for (const [name, f] of fixtures) {
  const { network, activations } = f;
  const layersOf = (kind: string) => network.layers.filter((l) => l.kind === kind);

  describe(`${name}: convolution`, () => {
    for (const layer of layersOf("conv")) {
      it(`${layer.name}: Σ window·kernel + bias equals the JAX output at random positions and the corners`, () => {
        let checked = 0;
        for (const [k, y, x] of positions(layer, 60, 1)) {
          const m = convAt(network, activations, layer.name, k, y, x);
          close(m.total, actual(f, layer.name, k, y, x), `${layer.name}[${k}] at (${y}, ${x})`);
          // The shown numbers add up: products → channel sums → total.
          for (const ch of m.channels) {
            expect(ch.products.reduce((a, b) => a + b, 0)).toBeCloseTo(ch.sum, 12);
            ch.products.forEach((p, i) => expect(p).toBe(ch.window[i] * ch.kernel[i]));
            ch.window.forEach((v, i) => {
              if (ch.padded[i]) expect(v).toBe(0);
            });
          }
          expect(m.channels.reduce((a, c) => a + c.sum, 0) + m.bias).toBeCloseTo(m.total, 12);
          expect(m.channels.length).toBe(layer.input_shape[2]);
          checked++;
        }
        expect(checked).toBeGreaterThan(60);
      });

      it(`${layer.name}: the window has kh×kw cells and its padded cells lie outside the input`, () => {
        const [kh, kw] = layer.kernel_size!;
        const [h, w] = layer.input_shape;
        const [oh, ow] = layer.output_shape;
        const pad = layer.padding!;
        const m = convAt(network, activations, layer.name, 0, oh - 1, ow - 1);
        expect(m.channels[0].window.length).toBe(kh * kw);
        const place = windowAt(layer, 0, 0);
        expect(place.top + pad[0][0]).toBe(0);
        expect(place.left + pad[1][0]).toBe(0);
        const paddedCount = convAt(network, activations, layer.name, 0, 0, 0).channels[0].padded.filter(Boolean).length;
        const expectedPadded = kh * kw - Math.min(kh, kh - pad[0][0]) * Math.min(kw, kw - pad[1][0]);
        expect(paddedCount).toBe(expectedPadded);
        expect(outputSize(h, kh, layer.stride![0], pad[0][0], pad[0][1])).toBe(oh);
        expect(outputSize(w, kw, layer.stride![1], pad[1][0], pad[1][1])).toBe(ow);
      });

      it(`${layer.name}: Σ intermediate maps + bias equals the neuron's whole map`, () => {
        const r = rng(7);
        const cin = layer.input_shape[2];
        const [oh, ow] = layer.output_shape;
        for (const k of [0, r(layer.output_shape[2]), layer.output_shape[2] - 1]) {
          const acc = new Float64Array(oh * ow);
          for (let c = 0; c < cin; c++) {
            const inter = convIntermediate(network, activations, layer.name, k, c);
            expect(inter.length).toBe(oh * ow);
            for (let i = 0; i < acc.length; i++) acc[i] += inter[i];
          }
          const bias = network.biases.get(layer.name)?.[k] ?? 0;
          const map = channelMap(getValues(activations, layer.name), k);
          for (let i = 0; i < acc.length; i++) close(acc[i] + bias, map[i], `${layer.name}[${k}] flat ${i}`);
          // and each intermediate value is that channel's sum in convAt
          const y = r(oh);
          const x = r(ow);
          const m = convAt(network, activations, layer.name, k, y, x);
          for (let c = 0; c < cin; c++) {
            expect(convIntermediate(network, activations, layer.name, k, c)[y * ow + x]).toBeCloseTo(m.channels[c].sum, 10);
          }
        }
      });
    }
  });

  describe(`${name}: activation`, () => {
    for (const layer of layersOf("activation")) {
      it(`${layer.name} (${layer.function}): f(input) equals the JAX output everywhere`, () => {
        const out = getValues(activations, layer.name);
        const { c, h, w } = dims(out);
        for (let k = 0; k < c; k++) {
          for (let y = 0; y < h; y++) {
            for (let x = 0; x < w; x++) {
              const m = activationAt(network, activations, layer.name, k, y, x);
              close(m.output, actual(f, layer.name, k, y, x), `${layer.name}[${k}] at (${y}, ${x})`);
              expect(m.input).toBe(actual(f, inputName(network, layer.name), k, y, x));
            }
          }
        }
      });
    }
  });

  describe(`${name}: pooling`, () => {
    for (const layer of layersOf("pool")) {
      it(`${layer.name} (${layer.function}): the window's ${layer.function} equals the JAX output`, () => {
        for (const [k, y, x] of positions(layer, 80, 3)) {
          const m = poolAt(network, activations, layer.name, k, y, x);
          close(m.result, actual(f, layer.name, k, y, x), `${layer.name}[${k}] at (${y}, ${x})`);
          const real = m.window.filter((_, i) => !m.padded[i]);
          m.window.forEach((v, i) => expect(Number.isNaN(v)).toBe(m.padded[i]));
          if (m.op === "max") expect(m.result).toBe(Math.max(...real));
          else expect(m.result).toBeCloseTo(real.reduce((a, b) => a + b, 0) / m.count, 12);
        }
      });
    }
  });

  describe(`${name}: dense and softmax`, () => {
    const dense = layersOf("dense");
    it("the flatten vector is the previous maps in (h, w, c) order, channels fastest", () => {
      const out = dense[0];
      const x = denseInput(network, activations, out.name);
      const prev = getValues(activations, inputName(network, out.name));
      const d = dims(prev);
      expect(x.length).toBe(d.c * d.h * d.w);
      expect(x.length).toBe(out.input_shape[0]);
      for (let i = 0; i < x.length; i += 7) {
        const p = flattenIndex(i, d);
        expect(x[i]).toBe(prev.values[(p.c * d.h + p.h) * d.w + p.w]);
        expect((p.h * d.w + p.w) * d.c + p.c).toBe(i);
      }
    });

    for (const layer of dense) {
      it(`${layer.name}: Σ flatten[i]·W[k, i] + b[k] equals every JAX logit`, () => {
        const n = layer.output_shape[0];
        for (let k = 0; k < n; k++) {
          const m = denseAt(network, activations, layer.name, k);
          close(m.total, getValues(activations, layer.name).values[k], `${layer.name}[${k}]`);
          const top = topContributions(m.products, 5);
          expect(Math.abs(m.products[top[0]])).toBe(Math.max(...Array.from(m.products, Math.abs)));
        }
      });
    }

    it("softmax of the logits equals the JAX probabilities", () => {
      const last = dense[dense.length - 1];
      const sm = network.layers[network.layers.length - 1];
      expect(sm.kind).toBe("softmax");
      const logits = getValues(activations, last.name).values;
      const m = softmax(logits);
      const probs = getValues(activations, sm.name).values;
      expect(m.probabilities.length).toBe(network.classes.length);
      m.probabilities.forEach((p, k) => close(p, probs[k], `softmax[${k}]`));
      m.exps.forEach((e, k) => expect(e / m.sum).toBe(m.probabilities[k]));
      expect(m.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    });
  });

  describe(`${name}: the checks can fail`, () => {
    // The same math with a wrong hyperparameter must disagree with JAX somewhere, or the
    // fixtures would not be testing what the math does with it.
    function withLayer(net: Network, layerName: string, change: Partial<LayerSpec>): Network {
      return { ...net, layers: net.layers.map((l) => (l.name === layerName ? { ...l, ...change } : l)) };
    }
    function mismatches(net: Network, layer: LayerSpec): number {
      let bad = 0;
      const [oh, ow, c] = layer.output_shape;
      for (let k = 0; k < c; k++) {
        for (let y = 0; y < oh; y++) {
          for (let x = 0; x < ow; x++) {
            let v: number;
            try {
              v = layer.kind === "conv" ? convAt(net, activations, layer.name, k, y, x).total : poolAt(net, activations, layer.name, k, y, x).result;
            } catch {
              bad++;
              continue;
            }
            const want = actual(f, layer.name, k, y, x);
            if (!(Math.abs(v - want) <= TOL * Math.max(1, Math.abs(want)))) bad++;
          }
        }
      }
      return bad;
    }
    it("the real hyperparameters match, shifted padding or stride do not", () => {
      for (const layer of network.layers.filter((l) => l.kind === "conv" || l.kind === "pool")) {
        expect(mismatches(network, layer)).toBe(0);
        const [[t, b], [l, r]] = layer.padding!;
        const shifted = withLayer(network, layer.name, { padding: [[t + 1, b], [l + 1, r]] });
        expect(mismatches(shifted, layer)).toBeGreaterThan(0);
        const [sh, sw] = layer.stride!;
        const strided = withLayer(network, layer.name, { stride: [sh + 1, sw + 1] });
        expect(mismatches(strided, layer)).toBeGreaterThan(0);
      }
    }, 30_000); // every output of every layer, three times: ~5 s alone, more on a shared machine
  });
}

describe("odd network specifics", () => {
  const f = fixtures[1][1];
  it("avg pool with count_include_pad=true divides padded windows by kh·kw", () => {
    const layer = f.network.layers.find((l) => l.name === "avg_pool_1")!;
    const [oh, ow] = layer.output_shape;
    const m = poolAt(f.network, f.activations, layer.name, 0, oh - 1, ow - 1);
    expect(m.padded.filter(Boolean).length).toBe(3);
    expect(m.count).toBe(4);
  });
  it("avg pool with count_include_pad=false divides by the real cells only", () => {
    const m = poolAt(f.network, f.activations, "avg_pool_2", 1, 0, 0);
    expect(m.padded.filter(Boolean).length).toBe(3);
    expect(m.count).toBe(1);
    expect(m.result).toBe(m.window[3]);
  });
  it("max pool ignores padded cells", () => {
    const m = poolAt(f.network, f.activations, "max_pool_1", 2, 0, 0);
    expect(m.padded.filter(Boolean).length).toBe(5);
    expect(m.argmax).toBeGreaterThanOrEqual(0);
    expect(m.padded[m.argmax]).toBe(false);
  });
  it("leaky_relu uses the layer's negative_slope", () => {
    const layer = f.network.layers.find((l) => l.name === "leaky_relu_1")!;
    expect(layer.options.negative_slope).toBe(0.1);
    expect(activationFunction("leaky_relu", layer.options)(-2)).toBeCloseTo(-0.2, 15);
    expect(activationFunction("leaky_relu")(-2)).toBeCloseTo(-0.02, 15);
  });
});

describe("helpers", () => {
  it("readWindow marks padding and fills it", () => {
    const map = [1, 2, 3, 4];
    const r = readWindow(map, 2, 2, { y: 0, x: 0, top: -1, left: -1, kh: 3, kw: 3 }, 0);
    expect(r.values).toEqual([0, 0, 0, 0, 1, 2, 0, 3, 4]);
    expect(r.padded).toEqual([true, true, true, true, false, false, true, false, false]);
  });
  it("activation functions at known points", () => {
    expect(activationFunction("relu")(-1)).toBe(0);
    expect(activationFunction("relu")(2.5)).toBe(2.5);
    expect(activationFunction("sigmoid")(0)).toBe(0.5);
    expect(activationFunction("sigmoid")(-800)).toBe(0);
    expect(activationFunction("elu")(-1)).toBeCloseTo(Math.exp(-1) - 1, 15);
    expect(activationFunction("silu")(1)).toBeCloseTo(1 / (1 + Math.exp(-1)), 15);
    expect(activationFunction("gelu", { approximate: false })(1)).toBeCloseTo(0.8413447460685429, 6);
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 6);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 6);
    expect(() => activationFunction("swish")).toThrow(/unknown activation/);
  });
  it("flattenIndex inverts (h·W + w)·C + c", () => {
    const d = { c: 10, h: 13, w: 13 };
    for (let i = 0; i < d.c * d.h * d.w; i++) {
      const p = flattenIndex(i, d);
      expect((p.h * d.w + p.w) * d.c + p.c).toBe(i);
    }
    expect(flattenIndex(1, d)).toEqual({ c: 1, h: 0, w: 0 });
    expect(flattenIndex(10, d)).toEqual({ c: 0, h: 0, w: 1 });
  });
  it("softmax survives huge logits", () => {
    const m = softmax([1000, 1000, 0]);
    expect(m.shift).toBe(1000);
    expect(m.probabilities[0]).toBeCloseTo(0.5, 12);
  });
  it("checkHyper: output size and invalid settings in words", () => {
    expect(checkHyper(5, 0, 2, 1)).toMatchObject({ padded: 5, output: 4, valid: true });
    expect(checkHyper(5, 1, 3, 2)).toMatchObject({ padded: 7, output: 3, valid: true });
    const stride = checkHyper(5, 0, 2, 2); // the original's invalid-stride screenshot
    expect(stride.valid).toBe(false);
    expect(stride.reason).toMatch(/stride 2/);
    const big = checkHyper(3, 0, 5, 1);
    expect(big.valid).toBe(false);
    expect(big.output).toBe(0);
    expect(big.reason).toMatch(/larger than/);
  });
  it("roundToSum: the shown parts add up to the shown total, each within a unit of the truth", () => {
    // Plain rounding to 2 decimals: 0.33 + 0.33 + 0.33 = 0.99, but the total 1.002 shows as 1.00.
    const r = roundToSum([0.334, 0.334, 0.334], 1.002, 2);
    expect(r.total).toBe(1);
    expect(Math.round(r.parts.reduce((a, b) => a + b, 0) * 100)).toBe(100);
    expect(r.parts.filter((p) => p === 0.34).length).toBe(1);
    expect(roundToSum([0.5, 0.25], 0.75, 2)).toEqual({ parts: [0.5, 0.25], total: 0.75 });
  });
  it("conv math on both networks adds up as shown (4 decimals), top down", () => {
    for (const [, f] of fixtures) {
      const r = rng(11);
      for (const layer of f.network.layers.filter((l) => l.kind === "conv")) {
        for (let t = 0; t < 40; t++) {
          const [oh, ow, c] = layer.output_shape;
          const m = convAt(f.network, f.activations, layer.name, r(c), r(oh), r(ow));
          const top = roundToSum([...m.channels.map((ch) => ch.sum), m.bias], m.total, 4);
          expect(Math.abs(top.total - m.total)).toBeLessThanOrEqual(0.5e-4 + 1e-12);
          const units = (xs: number[]) => xs.reduce((a, b) => a + Math.round(b * 1e4), 0);
          // `+ 0`: a total that rounds to −0 is the same shown number as a sum of 0.
          expect(units(top.parts)).toBe(Math.round(top.total * 1e4) + 0);
          m.channels.forEach((ch, i) => {
            const shown = roundToSum(ch.products, top.parts[i], 4);
            expect(units(shown.parts)).toBe(Math.round(top.parts[i] * 1e4) + 0);
            shown.parts.forEach((p, j) => expect(Math.abs(p - ch.products[j])).toBeLessThan(2e-4));
          });
        }
      }
    }
  });
  it("fmt", () => {
    expect(fmt(-0.00001, 4)).toBe("0.0000");
    expect(fmt(-1.5, 2)).toBe("−1.50");
    expect(fmt(Number.NaN)).toBe("pad");
  });
});
