// @vitest-environment happy-dom
// The overview of a graph network: columns in the payload's order, connections from each
// layer's inputs, skip connections on lanes under the maps, ⊕ where an add's inputs meet; a
// sequential network's layout is unchanged (no lanes, nothing added under its maps).
import { describe, expect, it } from "vitest";
import { buildColumns, isSequential, sourcesFrom } from "../src/overview/columns";
import { computeLayout, skipLanes } from "../src/overview/layout";
import { Overview } from "../src/overview/overview";
import { graphNet } from "./graph-net";
import { loadFixture } from "./fixtures/load";

const { network, activations } = graphNet();
const tiny = loadFixture("tiny_vgg");

describe("graph columns", () => {
  const cols = buildColumns(network);
  it("keep the layer order and know their inputs as columns", () => {
    expect(cols.map((c) => c.layer)).toEqual(["input", "c1", "bn", "relu", "dw", "add", "proj", "cat", "gap", "out"]);
    const at = (n: string) => cols.findIndex((c) => c.layer === n);
    expect(cols[at("add")].inputs).toEqual([at("relu"), at("dw")]);
    expect(cols[at("cat")].inputs).toEqual([at("add"), at("proj")]);
    expect(cols[at("proj")].inputs).toEqual([at("c1")]);
    expect(cols.map((c) => c.link)).toEqual(["none", "full", "one", "one", "group", "one", "full", "concat", "one", "full"]);
    expect(cols[at("gap")].kind).toBe("vector");
    expect(isSequential(cols)).toBe(false);
    expect(isSequential(buildColumns(tiny.network))).toBe(true);
  });
  it("find each neuron's sources across the graph", () => {
    const at = (n: string) => cols.findIndex((c) => c.layer === n);
    // add: the same channel of both summands
    expect(sourcesFrom(cols, at("add"), 2)).toEqual([
      [at("relu"), 2],
      [at("dw"), 2],
    ]);
    // depthwise: only its own channel
    expect(sourcesFrom(cols, at("dw"), 3)).toEqual([[at("relu"), 3]]);
    // concat: channel 5 is proj's channel 1
    expect(sourcesFrom(cols, at("cat"), 5)).toEqual([[at("proj"), 1]]);
    expect(sourcesFrom(cols, at("cat"), 1)).toEqual([[at("add"), 1]]);
    // a full conv: every input channel
    expect(sourcesFrom(cols, at("c1"), 0)).toEqual([
      [0, 0],
      [0, 1],
    ]);
  });
  it("put skip connections on lanes under the maps, nested: the long one under the short ones it spans", () => {
    const at = (n: string) => cols.findIndex((c) => c.layer === n);
    const lanes = skipLanes(cols);
    expect(lanes).toEqual([
      { from: at("c1"), to: at("proj"), lane: 1 },
      { from: at("relu"), to: at("add"), lane: 0 },
      { from: at("add"), to: at("cat"), lane: 0 },
    ]);
    const L = computeLayout(cols, 1000);
    expect(L.skips.length).toBe(3);
    for (const k of L.skips) expect(k.y).toBeGreaterThan(L.bodyTop + L.bodyHeight);
    expect(L.pagerTop).toBeGreaterThanOrEqual(Math.max(...L.skips.map((k) => k.y)) + 5);
  });
  it("leave a sequential network's layout as it was", () => {
    const L = computeLayout(buildColumns(tiny.network), 1200);
    expect(L.skips).toEqual([]);
    expect(L.pagerTop).toBe(L.bodyTop + L.bodyHeight + 4);
  });
});

describe("graph overview", () => {
  function mount(net = network, acts = activations) {
    const parent = document.createElement("div");
    document.body.append(parent);
    const ov = new Overview(parent, { onSelect: () => undefined });
    ov.resize(1000);
    ov.setNetwork(net);
    ov.paint(acts, "unit");
    return ov;
  }
  it("draws skip edges along the lanes, ⊕ marks before each add neuron, and highlights both summands", () => {
    const ov = mount();
    const skip = ov.el.querySelector<SVGPathElement>('.cnnx-ov-edge-skip[data-to="add"]')!;
    const d = skip.getAttribute("d")!;
    // one edge per add neuron, each running along the lane (an H segment)
    expect(d.match(/M/g)!.length).toBe(4);
    const L = computeLayout(buildColumns(network), 1000);
    const lane = L.skips.find((k) => k.to === 5)!;
    expect(d).toContain(` ${lane.y}H`);
    expect(ov.el.querySelector('.cnnx-ov-edge-skip[data-to="bn"]')!.getAttribute("d")).toBe("");
    expect(ov.el.querySelectorAll(".cnnx-ov-merges circle").length).toBe(4);
    const n = ov.el.querySelector<HTMLElement>('[data-layer="add"][data-index="1"]')!;
    n.dispatchEvent(new PointerEvent("pointerover", { bubbles: true }));
    const src = [...ov.el.querySelectorAll<HTMLElement>(".cnnx-ov-src")].map((e) => `${e.dataset.layer}:${e.dataset.index}`);
    expect(src.sort()).toEqual(["dw:1", "relu:1"]);
    ov.destroy();
  });
  it("says what a graph layer's neurons read in their labels (sequential ones keep theirs)", () => {
    const ov = mount();
    const label = (layer: string, i: number) => ov.el.querySelector(`[data-layer="${layer}"][data-index="${i}"]`)!.getAttribute("aria-label");
    expect(label("add", 2)).toBe("add neuron 2 (sum of relu neuron 2 + dw neuron 2)");
    expect(label("cat", 5)).toBe("cat neuron 5 (copy of proj neuron 1)");
    expect(label("proj", 0)).toBe("proj neuron 0 (reads c1)");
    expect(label("bn", 0)).toBe("bn neuron 0");
    ov.destroy();
  });

  it("draws no skip edge or ⊕ for Tiny VGG", () => {
    const ov = mount(tiny.network, tiny.activations);
    for (const p of ov.el.querySelectorAll(".cnnx-ov-edge-skip")) expect(p.getAttribute("d")).toBe("");
    expect(ov.el.querySelectorAll(".cnnx-ov-merges *").length).toBe(0);
    ov.destroy();
  });
});
