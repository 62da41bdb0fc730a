// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { LegendView, visibleTicks } from "../src/ui/legend";

describe("LegendView", () => {
  it("draws a tick label per value, at its position on the bar", () => {
    const lg = new LegendView({ kind: "activations", ticks: [-2.5, -1.25, 0, 1.25, 2.5] });
    const ticks = [...lg.el.querySelectorAll<HTMLElement>(".cnnx-legend-tick")];
    expect(ticks.map((t) => t.textContent)).toEqual(["-2.5", "-1.25", "0", "1.25", "2.5"]);
    expect(ticks.map((t) => t.style.left)).toEqual(["0.000%", "25.000%", "50.000%", "75.000%", "100.000%"]);
    expect(lg.el.dataset.palette).toBe("RdBu");
  });

  it("weights use BrBG, and update() redraws in place", () => {
    const lg = new LegendView({ kind: "activations", ticks: [-1, 0, 1] });
    const el = lg.el;
    lg.update({ kind: "weights", ticks: [-0.3, 0, 0.3] });
    expect(lg.el).toBe(el);
    expect(el.dataset.palette).toBe("BrBG");
    expect([...el.querySelectorAll(".cnnx-legend-tick")].map((t) => t.textContent)).toEqual(["-0.3", "0", "0.3"]);
  });
});

describe("visibleTicks", () => {
  const ticks = [-5.66, -2.83, 0, 2.83, 5.66];
  const labels = ticks.map(String);
  it("keeps every tick when there is room", () => {
    expect(visibleTicks(ticks, labels, 400)).toEqual([true, true, true, true, true]);
  });
  it("drops inner ticks first, never the ends", () => {
    expect(visibleTicks(ticks, labels, 110)).toEqual([true, false, true, false, true]);
    expect(visibleTicks(ticks, labels, 64)).toEqual([true, false, false, false, true]);
  });
});
