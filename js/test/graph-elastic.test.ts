// @vitest-environment happy-dom
// The elastic views and formula cards of the graph layers, on the hand-built graph network:
// what each view lays out (an add's summands, a depthwise conv's one channel, a conv reading a
// layer further back, a dilated window's taps) and the numbers its card shows.
import { describe, expect, it } from "vitest";
import { elasticKind, elasticLayout } from "../src/overview/elastic-layout";
import { ElasticView, type ElasticHost } from "../src/overview/elastic";
import { Overview } from "../src/overview/overview";
import { dims, getValues, globalPoolAt } from "../src/math";
import { graphNet } from "./graph-net";

const { network, activations } = graphNet();

const host: ElasticHost = { report: () => undefined, select: () => undefined, back: () => undefined, close: () => undefined, page: () => undefined, level: () => undefined };

function open(layer: string, index: number, pos: { y?: number; x?: number } = {}, net = network) {
  const parent = document.createElement("div");
  document.body.append(parent);
  const ov = new Overview(parent, { onSelect: () => undefined });
  ov.resize(1100);
  ov.setNetwork(net);
  ov.paint(activations, "unit");
  const geo = ov.geometry()!;
  const sel = geo.cols.findIndex((c) => c.layer === layer);
  const L = elasticLayout({ cols: geo.cols, base: geo.layout, rects: geo.rects, sel, index })!;
  const view = new ElasticView(ov.el, L, geo.cols, { network: net, acts: activations, scale: "unit", extent: () => 1 }, host, pos);
  return { ov, L, view, cols: geo.cols, sel };
}

function value(layer: string, index: number, y: number, x: number): number {
  const v = getValues(activations, layer);
  const { h, w } = dims(v);
  return v.shape.length === 3 ? v.values[(index * h + y) * w + x] : v.values[index];
}

/** The card's output value (the formula level). */
function cardOutput(view: ElasticView): number {
  view.openFormula();
  const out = view.root.querySelectorAll<HTMLElement>(".cnnx-math-output");
  expect(out.length).toBe(1);
  return Number(out[0].dataset.value);
}

describe("graph elastic views", () => {
  it("every new kind has a view, named by its kind", () => {
    const { cols } = open("add", 0);
    expect(cols.map((_, c) => elasticKind(cols, c))).toEqual(["input", "conv", "pair", "pair", "conv", "pair", "conv", "pair", "pair", "output"]);
    for (const [layer, kind] of [
      ["add", "add"],
      ["bn", "batchnorm"],
      ["cat", "concat"],
      ["gap", "global_pool"],
      ["dw", "conv"],
    ]) {
      const { view } = open(layer, 1);
      expect(view.root.dataset.kind).toBe(kind);
      expect(view.root.getAttribute("aria-label")).toBe(`how ${layer} neuron 1 is computed; Esc goes back`);
    }
  });

  it("add: both summands enlarged, stacked, and its card sums them to the value", () => {
    const { L, view, cols } = open("add", 2, { y: 3, x: 4 });
    expect(L.srcs.map(([c, j]) => `${cols[c].layer}:${j}`)).toEqual(["relu:2", "dw:2"]);
    expect(L.heroSrcs.length).toBe(2);
    expect(L.heroSrcs[1].y).toBeGreaterThan(L.heroSrcs[0].y + L.heroSrcs[0].h);
    const labels = [...view.root.querySelectorAll(".cnnx-el-hit")].map((e) => e.getAttribute("aria-label"));
    expect(labels.some((t) => t?.startsWith("summand 1: relu neuron 2"))).toBe(true);
    expect(labels.some((t) => t?.startsWith("summand 2: dw neuron 2"))).toBe(true);
    const out = cardOutput(view);
    expect(Math.abs(out - value("add", 2, 3, 4))).toBeLessThan(1e-5);
    const terms = [...view.root.querySelectorAll(".cnnx-add-term small")].map((e) => e.textContent);
    expect(terms).toEqual(["relu[2]", "dw[2]"]);
  });

  it("batch norm: normalise, scale-shift and the folded a·x + b all give the value", () => {
    const { view } = open("bn", 1, { y: 2, x: 5 });
    const want = value("bn", 1, 2, 5);
    expect(Math.abs(cardOutput(view) - want)).toBeLessThan(1e-5);
    const folded = view.root.querySelector<HTMLElement>(".cnnx-bn-folded-out")!;
    expect(Math.abs(Number(folded.dataset.value) - want)).toBeLessThan(1e-5);
    expect([...view.root.querySelectorAll(".cnnx-bn-step")].map((e) => (e as HTMLElement).dataset.step)).toEqual(["normalise", "scale-shift", "folded"]);
  });

  it("depthwise dilated conv: one input row (its own channel), the window's nine taps two cells apart", () => {
    const { L, view } = open("dw", 3, { y: 3, x: 2 });
    expect(L.rows).toEqual([3]);
    expect(view.root.querySelector(".cnnx-el-window-dilated")).not.toBeNull();
    const taps = [...view.root.querySelectorAll<HTMLElement>(".cnnx-el-window-dilated .cnnx-el-tap")];
    expect(taps.length).toBe(9);
    const xs = [...new Set(taps.map((t) => parseFloat(t.style.left)))].sort((a, b) => a - b);
    expect(xs.length).toBe(3);
    expect(Math.abs(xs[2] - xs[1] - (xs[1] - xs[0]))).toBeLessThan(0.25); // evenly spaced
    expect(xs[1] - xs[0]).toBeGreaterThan(parseFloat(taps[0].style.width) * 1.5); // holes between taps
    expect(Math.abs(cardOutput(view) - value("dw", 3, 3, 2))).toBeLessThan(1e-5);
    expect(view.root.querySelector(".cnnx-facts")!.textContent).toMatch(/dilation 2 .*reads only input channel 3 \(depthwise\)/);
  });

  it("a conv reading a layer further back lays out that layer's channels as its inputs", () => {
    const { L, cols, view } = open("proj", 0, { y: 1, x: 1 });
    expect(cols[L.src].layer).toBe("c1");
    expect(L.rows).toEqual([0, 1, 2, 3]);
    // the columns between its input and itself are out of the way
    for (const between of ["bn", "relu", "dw", "add"]) {
      const c = cols.findIndex((col) => col.layer === between);
      expect(L.neurons.has(`${c}:0`)).toBe(false);
    }
    expect(Math.abs(cardOutput(view) - value("proj", 0, 1, 1))).toBeLessThan(1e-5);
  });

  it("concat: where the channel comes from", () => {
    const { L, cols, view } = open("cat", 5, { y: 0, x: 0 });
    expect(L.srcs.map(([c, j]) => `${cols[c].layer}:${j}`)).toEqual(["proj:1"]);
    expect(view.root.querySelector(".cnnx-el-op")!.textContent).toContain("ch 1 of proj");
    expect(cardOutput(view)).toBe(value("proj", 1, 0, 0));
    expect(view.root.querySelector(".cnnx-concat-src")!.textContent).toBe("channel 5 = channel 1 of proj (input 2, from channel 4 on)");
  });

  it("global pool: the whole map outlined, reduced to its mean", () => {
    const { L, view } = open("gap", 6);
    const win = view.root.querySelector<HTMLElement>(".cnnx-el-window")!;
    const src = L.heroSrcs[0];
    expect(parseFloat(win.style.width)).toBeCloseTo(src.w + 4, 0);
    expect(view.root.querySelector(".cnnx-el-readout")!.textContent).toMatch(/^mean of cat 6 = -?\d/);
    expect(Math.abs(cardOutput(view) - value("gap", 6, 0, 0))).toBeLessThan(1e-5);
  });

  it("global max pool: the cell holding the maximum is outlined too", () => {
    const net = { ...network, layers: network.layers.map((l) => (l.name === "gap" ? { ...l, function: "max" } : l)) };
    const { L, view } = open("gap", 2, {}, net);
    const boxes = [...view.root.querySelectorAll<HTMLElement>(".cnnx-el-window")];
    expect(boxes.length).toBe(2);
    const m = globalPoolAt(net, activations, "gap", 2);
    const src = L.heroSrcs[0];
    const cw = src.w / m.w;
    // the small box sits on the maximum's column
    expect(parseFloat(boxes[1].style.left)).toBeCloseTo(src.x + m.argX * cw + cw / 2 - Math.max(6, cw + 4) / 2, 0);
    view.openFormula();
    expect(view.root.querySelector(".cnnx-eq-val")!.textContent).toContain(`(at (${m.argY}, ${m.argX}))`);
    expect(Number(view.root.querySelector<HTMLElement>(".cnnx-math-output")!.dataset.value)).toBe(m.max);
  });
});
