import { describe, expect, it } from "vitest";
import {
  DIVERGING_LUT,
  INVALID_RGB,
  computeLegends,
  computeRanges,
  formatValue,
  paintMap,
  type RangeSource,
} from "../src/colors";
import { buildColumns, rangeSources } from "../src/overview/columns";
import { activationsFor, smallNet } from "./overview-builders";

const src = (layer: string, module: number, min: number[], max: number[], count = min.length): RangeSource => ({
  layer,
  module,
  min,
  max,
  count,
});

const sources = [
  src("a", 0, [-1, -0.5], [2, 0.25]),
  src("b", 0, [0, 0], [3, 1]),
  src("c", 1, [-8, 0], [1, 0.5]),
  src("v", 2, [-0.5], [4], 3), // 1-D layer: one range for all 3 neurons
];

describe("computeRanges", () => {
  it("unit: each neuron its own max |value|", () => {
    const r = computeRanges(sources, "unit");
    expect([...r.get("a")!.extents]).toEqual([2, 0.5]);
    expect([...r.get("b")!.extents]).toEqual([3, 1]);
    expect([...r.get("c")!.extents]).toEqual([8, 0.5]);
  });

  it("unit: a 1-D layer shares its single range", () => {
    expect([...computeRanges(sources, "unit").get("v")!.extents]).toEqual([4, 4, 4]);
  });

  it("module: one extent per module", () => {
    const r = computeRanges(sources, "module");
    expect([...r.get("a")!.extents]).toEqual([3, 3]);
    expect([...r.get("b")!.extents]).toEqual([3, 3]);
    expect([...r.get("c")!.extents]).toEqual([8, 8]);
    expect([...r.get("v")!.extents]).toEqual([4, 4, 4]);
  });

  it("global: one extent for every hidden layer", () => {
    const r = computeRanges(sources, "global");
    for (const name of ["a", "b", "c", "v"]) {
      expect(new Set(r.get(name)!.extents)).toEqual(new Set([8]));
    }
  });

  it("keeps each layer's true min and max", () => {
    const r = computeRanges(sources, "global");
    expect(r.get("a")).toMatchObject({ min: -1, max: 2 });
    expect(r.get("c")).toMatchObject({ min: -8, max: 1 });
  });

  it("ignores non-finite ranges instead of poisoning the extent", () => {
    const r = computeRanges([src("x", 0, [NaN, -2], [Infinity, 1])], "module");
    expect([...r.get("x")!.extents]).toEqual([2, 2]);
  });
});

describe("computeLegends", () => {
  it("unit and module: one legend per module, in order", () => {
    for (const policy of ["unit", "module"] as const) {
      const legends = computeLegends(sources, policy);
      expect(legends.map((l) => l.layers)).toEqual([["a", "b"], ["c"], ["v"]]);
    }
  });

  it("module legends show the module's symmetric extent and true range", () => {
    const [m0, m1] = computeLegends(sources, "module");
    expect(m0).toMatchObject({ extent: 3, min: -1, max: 3 });
    expect(m1).toMatchObject({ extent: 8, min: -8, max: 1 });
  });

  it("unit legends have no shared extent", () => {
    expect(computeLegends(sources, "unit").every((l) => l.extent === null)).toBe(true);
  });

  it("global: a single legend spanning every hidden layer", () => {
    const legends = computeLegends(sources, "global");
    expect(legends).toHaveLength(1);
    expect(legends[0]).toMatchObject({ layers: ["a", "b", "c", "v"], extent: 8, min: -8, max: 4 });
  });

  it("follows the current image (no stale range after an image switch)", () => {
    const net = smallNet();
    const cols = buildColumns(net);
    const first = computeLegends(rangeSources(cols, activationsFor(net, { scale: 2 })), "global")[0];
    const second = computeLegends(rangeSources(cols, activationsFor(net, { scale: 1 })), "global")[0];
    expect(second.extent).toBeCloseTo(first.extent! / 2);
    expect(second.max).toBeCloseTo(first.max / 2);
  });
});

describe("paintMap", () => {
  const rgb = (out: Uint8ClampedArray, p: number) => [out[p * 4], out[p * 4 + 1], out[p * 4 + 2]];
  const lut = (i: number) => [DIVERGING_LUT[i * 4], DIVERGING_LUT[i * 4 + 1], DIVERGING_LUT[i * 4 + 2]];

  it("diverging: -extent red, 0 white, +extent blue, clamped beyond", () => {
    const out = new Uint8ClampedArray(5 * 4);
    paintMap([-2, 0, 2, 10, -10], out, "diverging", 2);
    const last = DIVERGING_LUT.length / 4 - 1;
    expect(rgb(out, 0)).toEqual(lut(0));
    expect(rgb(out, 2)).toEqual(lut(last));
    expect(rgb(out, 3)).toEqual(lut(last));
    expect(rgb(out, 4)).toEqual(lut(0));
    const [r, g, b] = rgb(out, 1);
    expect(Math.min(r, g, b)).toBeGreaterThan(240); // near white
    expect(rgb(out, 0)[0]).toBeGreaterThan(rgb(out, 0)[2]); // reddish
    expect(rgb(out, 2)[2]).toBeGreaterThan(rgb(out, 2)[0]); // bluish
    expect(out[3]).toBe(255);
  });

  it("an all-zero map is white, not NaN", () => {
    const out = new Uint8ClampedArray(4);
    paintMap([0], out, "diverging", 0);
    expect(Math.min(...rgb(out, 0))).toBeGreaterThan(240);
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

describe("formatValue", () => {
  it("is short and readable", () => {
    expect(formatValue(5.7612)).toBe("5.76");
    expect(formatValue(-11.52)).toBe("-11.5");
    expect(formatValue(0)).toBe("0");
    expect(formatValue(0.5)).toBe("0.5");
    expect(formatValue(123456)).toBe("1.23e+5");
  });
});
