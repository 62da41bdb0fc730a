// The picture reader's parsers: CSS gradients (legends, bars) and box-shadow rings (selection
// marks) as computed styles give them. The pictures themselves are checked in a real browser.
import { describe, expect, it } from "vitest";
import { parseGradient, rings } from "../src/export/picture";

describe("parseGradient", () => {
  it("reads a horizontal gradient with positions", () => {
    expect(parseGradient("linear-gradient(to right, rgb(103, 0, 31) 0%, rgb(247, 247, 247) 50%, rgb(5, 48, 97) 100%)")).toEqual({
      vertical: false,
      stops: [
        ["rgb(103, 0, 31)", 0],
        ["rgb(247, 247, 247)", 0.5],
        ["rgb(5, 48, 97)", 1],
      ],
    });
  });

  it("spreads stops without positions evenly and reverses 'to left'", () => {
    expect(parseGradient("linear-gradient(to left, red, lime, blue)")).toEqual({
      vertical: false,
      stops: [
        ["blue", 0],
        ["lime", 0.5],
        ["red", 1],
      ],
    });
  });

  it("defaults to top-to-bottom and refuses what is not a linear gradient", () => {
    expect(parseGradient("linear-gradient(rgb(0, 0, 0), rgb(255, 255, 255))")?.vertical).toBe(true);
    expect(parseGradient("none")).toBeNull();
    expect(parseGradient("radial-gradient(red, blue)")).toBeNull();
    expect(parseGradient('url("x.png")')).toBeNull();
  });
});

describe("rings", () => {
  it("keeps solid spread rings and drops blurred or inset shadows", () => {
    expect(rings("rgb(25, 118, 210) 0px 0px 0px 2px")).toEqual([{ color: "rgb(25, 118, 210)", spread: 2 }]);
    expect(rings("rgba(0, 0, 0, 0.25) 0px 1px 4px 0px")).toEqual([]);
    expect(rings("rgb(0, 0, 0) 0px 0px 0px 1px inset")).toEqual([]);
    expect(rings("none")).toEqual([]);
    expect(rings("rgb(1, 2, 3) 0px 0px 0px 1px, rgb(4, 5, 6) 0px 0px 0px 3px")).toHaveLength(2);
  });
});
