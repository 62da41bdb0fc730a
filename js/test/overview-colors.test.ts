import { describe, expect, it } from "vitest";
import {
  ACTIVATION_PALETTE,
  COLOR_SCALES,
  DIVERGING_LUT,
  INVALID_RGB,
  WEIGHT_PALETTE,
  colorRanges,
  computeRanges,
  divergingCss,
  formatValue,
  isColorScale,
  paintMap,
  rangeGroups,
  type RangeSource,
  luminance,
  textColorOn,
  weightCss,
} from "../src/colors";
import { activationsFor, layer, network, smallNet, spatial } from "./overview-builders";

// Reference values printed by d3-scale-chromatic 3.1.1 (interpolateRdBu(t), interpolateBrBG(t)),
// the library the original CNN Explainer draws with; our palettes must reproduce them exactly.
const D3_REFERENCE: [number, string, string][] = [
  [0, "rgb(103, 0, 31)", "rgb(84, 48, 5)"],
  [0.05, "rgb(140, 13, 37)", "rgb(112, 65, 8)"],
  [0.1, "rgb(172, 32, 47)", "rgb(139, 84, 15)"],
  [0.25, "rgb(228, 130, 104)", "rgb(206, 161, 86)"],
  [1 / 3, "rgb(246, 182, 154)", "rgb(230, 205, 148)"],
  [0.45, "rgb(249, 232, 221)", "rgb(244, 237, 218)"],
  [0.5, "rgb(242, 239, 238)", "rgb(238, 241, 234)"],
  [0.55, "rgb(227, 237, 242)", "rgb(221, 239, 235)"],
  [0.7, "rgb(143, 194, 221)", "rgb(127, 201, 191)"],
  [0.9, "rgb(34, 101, 163)", "rgb(10, 103, 95)"],
  [0.97, "rgb(13, 64, 119)", "rgb(1, 73, 62)"],
  [1, "rgb(5, 48, 97)", "rgb(0, 60, 48)"],
];

const css = (rgb: number[]) => `rgb(${rgb.join(", ")})`;

describe("palettes interpolate as d3-scale-chromatic", () => {
  it("RdBu (activations) equals interpolateRdBu", () => {
    for (const [t, rdbu] of D3_REFERENCE) expect(css(ACTIVATION_PALETTE.at(t)), `t=${t}`).toBe(rdbu);
  });

  it("BrBG (weights) equals interpolateBrBG", () => {
    for (const [t, , brbg] of D3_REFERENCE) expect(css(WEIGHT_PALETTE.at(t)), `t=${t}`).toBe(brbg);
  });

  it("0 is rgb(242, 239, 238) on the activation scale, not the stop's (247, 247, 247)", () => {
    expect(divergingCss(0, 3)).toBe("rgb(242,239,238)");
    const out = new Uint8ClampedArray(4);
    paintMap([0], out, "diverging", 5);
    expect([...out.slice(0, 3)]).toEqual([242, 239, 238]);
  });

  it("weights and activations use different palettes", () => {
    expect(weightCss(-1, 1)).toBe("rgb(84,48,5)");
    expect(divergingCss(-1, 1)).toBe("rgb(103,0,31)");
    const w = new Uint8ClampedArray(4);
    paintMap([1], w, "weights", 1);
    expect([...w.slice(0, 3)]).toEqual([0, 60, 48]);
  });
});

const src = (layer: string, kind: RangeSource["kind"], min: number[], max: number[], count = min.length, spatial = true): RangeSource => ({
  layer,
  kind,
  spatial,
  min,
  max,
  count,
});

// A Tiny-VGG-like list of hidden layers with known per-neuron ranges.
const tiny = [
  src("conv_1_1", "conv", [-1, -0.5], [2, 0.25]),
  src("relu_1_1", "activation", [0, 0], [2, 0.25]),
  src("conv_1_2", "conv", [-3, 0], [1, 0.5]),
  src("relu_1_2", "activation", [0, 0], [1, 0.5]),
  src("max_pool_1", "pool", [0, 0], [1, 0.5]),
  src("conv_2_1", "conv", [-0.5, -8], [1, 0.5]),
  src("relu_2_1", "activation", [0, 0], [1, 0.5]),
  src("max_pool_2", "pool", [0, 0], [1, 0.5]),
  src("hidden", "dense", [-0.5], [4], 3, false), // 1-D layer: one range for all 3 neurons
];

const extents = (r: ReturnType<typeof computeRanges>, name: string) => [...r.layers.get(name)!.extents];

describe("rangeGroups", () => {
  it("units start at each conv or dense; blocks after each pooling and at maps → vectors", () => {
    const { unit, block } = rangeGroups(tiny);
    expect(unit).toEqual([0, 0, 1, 1, 1, 2, 2, 2, 3]);
    expect(block).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 2]);
  });
});

describe("computeRanges", () => {
  it("unit (default): one range per conv layer, shared with its ReLU and pooling", () => {
    const r = computeRanges(tiny, "unit");
    expect(extents(r, "conv_1_1")).toEqual([2, 2]);
    expect(extents(r, "relu_1_1")).toEqual([2, 2]);
    for (const name of ["conv_1_2", "relu_1_2", "max_pool_1"]) expect(extents(r, name)).toEqual([3, 3]);
    for (const name of ["conv_2_1", "relu_2_1", "max_pool_2"]) expect(extents(r, name)).toEqual([8, 8]);
    expect(extents(r, "hidden")).toEqual([4, 4, 4]);
  });

  it("module: one range per block of convolutions (up to the pooling)", () => {
    const r = computeRanges(tiny, "module");
    for (const name of ["conv_1_1", "relu_1_1", "conv_1_2", "relu_1_2", "max_pool_1"]) expect(extents(r, name)).toEqual([3, 3]);
    for (const name of ["conv_2_1", "relu_2_1", "max_pool_2"]) expect(extents(r, name)).toEqual([8, 8]);
  });

  it("global: one range for every hidden layer", () => {
    const r = computeRanges(tiny, "global");
    for (const s of tiny) expect(new Set(extents(r, s.layer))).toEqual(new Set([8]));
  });

  it("neuron: each neuron its own max |value|, a 1-D layer its single range", () => {
    const r = computeRanges(tiny, "neuron");
    expect(extents(r, "conv_1_1")).toEqual([2, 0.5]);
    expect(extents(r, "conv_2_1")).toEqual([1, 8]);
    expect(extents(r, "hidden")).toEqual([4, 4, 4]);
  });

  it("keeps each layer's true min and max", () => {
    const r = computeRanges(tiny, "global");
    expect(r.layers.get("conv_1_1")).toMatchObject({ min: -1, max: 2 });
    expect(r.layers.get("conv_2_1")).toMatchObject({ min: -8, max: 1 });
  });

  it("ignores non-finite ranges instead of poisoning the extent", () => {
    const r = computeRanges([src("x", "conv", [NaN, -2], [Infinity, 1])], "unit");
    expect(extents(r, "x")).toEqual([2, 2]);
  });
});

describe("legends", () => {
  it("unit: one legend per conv layer with its ReLU and pool, ticks ±its largest |value|", () => {
    const { legends } = computeRanges(tiny, "unit");
    expect(legends.map((l) => l.layers)).toEqual([
      ["conv_1_1", "relu_1_1"],
      ["conv_1_2", "relu_1_2", "max_pool_1"],
      ["conv_2_1", "relu_2_1", "max_pool_2"],
      ["hidden"],
    ]);
    expect(legends.map((l) => l.ticks)).toEqual([
      [-2, 0, 2],
      [-3, 0, 3],
      [-8, 0, 8],
      [-4, 0, 4],
    ]);
    expect(legends[1]).toMatchObject({ min: -3, max: 1, perNeuron: false });
  });

  it("module: one legend per block, five ticks as the original's", () => {
    const { legends } = computeRanges(tiny, "module");
    expect(legends.map((l) => l.layers[0])).toEqual(["conv_1_1", "conv_2_1", "hidden"]);
    expect(legends[0].ticks).toEqual([-3, -1.5, 0, 1.5, 3]);
    expect(legends[1].ticks).toEqual([-8, -4, 0, 4, 8]);
  });

  it("global: a single legend spanning every hidden layer", () => {
    const { legends } = computeRanges(tiny, "global");
    expect(legends).toHaveLength(1);
    expect(legends[0]).toMatchObject({ extent: 8, min: -8, max: 4, ticks: [-8, -4, 0, 4, 8] });
    expect(legends[0].layers).toEqual(tiny.map((s) => s.layer));
  });

  it("neuron: legends per unit, marked per-neuron, ticks of the strongest neuron", () => {
    const { legends } = computeRanges(tiny, "neuron");
    expect(legends.every((l) => l.perNeuron)).toBe(true);
    expect(legends[2].ticks).toEqual([-8, 0, 8]);
  });

  it("every layer knows its legend", () => {
    const r = computeRanges(tiny, "unit");
    expect(r.layers.get("max_pool_1")!.legend).toBe(1);
    expect(r.layers.get("hidden")!.legend).toBe(3);
  });

  it("follows the current image (no stale range after an image switch)", () => {
    const net = smallNet();
    const first = colorRanges(net, activationsFor(net, { scale: 2 }), "global").legends[0];
    const second = colorRanges(net, activationsFor(net, { scale: 1 }), "global").legends[0];
    expect(second.extent).toBeCloseTo(first.extent / 2);
    expect(second.max).toBeCloseTo(first.max / 2);
  });
});

describe("colorRanges", () => {
  it("covers the hidden layers only (not input, flatten, output or softmax)", () => {
    const net = smallNet();
    const r = colorRanges(net, activationsFor(net), "unit");
    expect([...r.layers.keys()]).toEqual(["c1", "r1", "p1", "c2", "r2", "hidden"]);
  });

  it("unit ranges equal the largest |value| of the conv layer and what follows it", () => {
    const net = network([layer("c", "conv", [2, 2, 2]), layer("r", "activation", [2, 2, 2]), layer("o", "dense", [2])]);
    const acts = activationsFor(net);
    acts.layers.set("c", spatial("c", 2, 2, 2, (ch, p) => (ch === 0 ? [-5, 1, 2, 0][p] : 0.5)));
    acts.layers.set("r", spatial("r", 2, 2, 2, (ch, p) => (ch === 0 ? [0, 1, 2, 0][p] : 0.5)));
    const r = colorRanges(net, acts, "unit");
    expect(extents(r, "c")).toEqual([5, 5]);
    expect(extents(r, "r")).toEqual([5, 5]);
    expect(r.legends[0].ticks).toEqual([-5, 0, 5]);
  });
});

describe("paintMap", () => {
  const rgb = (out: Uint8ClampedArray, p: number) => [out[p * 4], out[p * 4 + 1], out[p * 4 + 2]];
  const lut = (i: number) => [DIVERGING_LUT[i * 4], DIVERGING_LUT[i * 4 + 1], DIVERGING_LUT[i * 4 + 2]];

  it("diverging: -extent dark red, +extent dark blue, clamped beyond", () => {
    const out = new Uint8ClampedArray(5 * 4);
    paintMap([-2, 0, 2, 10, -10], out, "diverging", 2);
    const last = DIVERGING_LUT.length / 4 - 1;
    expect(rgb(out, 0)).toEqual([103, 0, 31]);
    expect(rgb(out, 2)).toEqual([5, 48, 97]);
    expect(rgb(out, 3)).toEqual(lut(last));
    expect(rgb(out, 4)).toEqual(lut(0));
    expect(out[3]).toBe(255);
  });

  it("an all-zero map is drawn at the middle colour, not NaN", () => {
    const out = new Uint8ClampedArray(4);
    paintMap([0], out, "diverging", 0);
    expect(rgb(out, 0)).toEqual([242, 239, 238]);
  });

  it("grey: 0 black, 1 white, NaN marked", () => {
    const out = new Uint8ClampedArray(4 * 4);
    paintMap([0, 0.5, 1, NaN], out, "grey", 1);
    expect(rgb(out, 0)).toEqual([0, 0, 0]);
    expect(rgb(out, 1)).toEqual([128, 128, 128]);
    expect(rgb(out, 2)).toEqual([255, 255, 255]);
    expect(rgb(out, 3)).toEqual(INVALID_RGB);
  });
});

describe("colour scale names", () => {
  it("unit, module, global and neuron are the four policies", () => {
    expect([...COLOR_SCALES]).toEqual(["unit", "module", "global", "neuron"]);
    expect(isColorScale("neuron")).toBe(true);
    expect(isColorScale("local")).toBe(false);
    expect(isColorScale(3)).toBe(false);
  });
});

describe("formatValue", () => {
  it("is short and readable", () => {
    expect(formatValue(5.7612)).toBe("5.76");
    expect(formatValue(-11.52)).toBe("-11.5");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(0.5)).toBe("0.5");
    expect(formatValue(123456)).toBe("1.23e+5");
  });
});

describe("textColorOn", () => {
  const ratio = (a: number, b: number) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  it("gives at least 4.5:1 on every colour of both palettes and the grey scale", () => {
    for (const palette of [ACTIVATION_PALETTE, WEIGHT_PALETTE]) {
      for (let i = 0; i <= 100; i++) {
        const bg = palette.at(i / 100);
        const fg = textColorOn(bg) === "#000" ? 0 : 1;
        expect(ratio(luminance(bg), fg), `${palette.name} ${i}`).toBeGreaterThanOrEqual(4.5);
      }
    }
    for (let g = 0; g <= 255; g++) {
      const fg = textColorOn(`rgb(${g},${g},${g})`) === "#000" ? 0 : 1;
      expect(ratio(luminance([g, g, g]), fg)).toBeGreaterThanOrEqual(4.5);
    }
  });
});
