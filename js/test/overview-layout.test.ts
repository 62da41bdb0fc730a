import { describe, expect, it } from "vitest";
import { argmax, buildColumns, pageGroups, probabilities, sourcesOf } from "../src/overview/columns";
import { DEFAULT_LAYOUT, computeLayout, itemRect, pageRange } from "../src/overview/layout";
import { activationsFor, layer, network, smallNet } from "./overview-builders";
import { loadFixture } from "./fixtures/load";

describe("buildColumns", () => {
  it("derives columns from the layer list", () => {
    const cols = buildColumns(smallNet(4));
    expect(cols.map((c) => [c.layer, c.kind, c.count, c.link])).toEqual([
      ["input", "input", 3, "none"],
      ["c1", "map", 4, "full"],
      ["r1", "map", 4, "one"],
      ["p1", "map", 4, "one"],
      ["c2", "map", 4, "full"],
      ["r2", "map", 4, "one"],
      ["hidden", "vector", 5, "full"],
      ["out", "output", 4, "full"],
    ]);
  });

  it("reads the real Tiny VGG payload: input, 10 map columns, output", () => {
    const { network: net } = loadFixture("tiny_vgg");
    const cols = buildColumns(net);
    expect(cols[0]).toMatchObject({ layer: "input", count: 3 });
    expect(cols.filter((c) => c.kind === "map")).toHaveLength(10);
    expect(cols[cols.length - 1]).toMatchObject({ layer: "output", kind: "output", count: 10 });
  });

  it("handles an unusual network (1 channel, odd sizes, many activations)", () => {
    const { network: net } = loadFixture("odd");
    const cols = buildColumns(net);
    expect(cols[0].count).toBe(1);
    expect(cols.map((c) => c.layer)).not.toContain("flatten");
    expect(cols.map((c) => c.layer)).not.toContain("softmax");
    expect(cols[cols.length - 1].count).toBe(net.classes.length);
  });
});

describe("sourcesOf", () => {
  const cols = buildColumns(smallNet(4));
  it("conv and dense: every neuron of the previous column", () => {
    expect(sourcesOf(cols[1], cols[0], 2)).toEqual([0, 1, 2]);
    expect(sourcesOf(cols[6], cols[5], 0)).toEqual([0, 1, 2, 3]);
  });
  it("activation and pool: the same neuron", () => {
    expect(sourcesOf(cols[2], cols[1], 3)).toEqual([3]);
  });
  it("input: none", () => {
    expect(sourcesOf(cols[0], undefined, 0)).toEqual([]);
  });
});

describe("pageGroups", () => {
  it("pages a conv with the one-to-one layers after it", () => {
    const cols = buildColumns(smallNet(4));
    // input | c1 r1 p1 | c2 r2 | hidden | out
    expect(pageGroups(cols)).toEqual([0, 1, 1, 1, 4, 4, 6, 7]);
  });
});

describe("probabilities", () => {
  it("uses the softmax entry when there is one", () => {
    const net = smallNet();
    const p = probabilities(net, activationsFor(net), "out");
    expect(argmax(p)).toBe(1);
  });
  it("falls back to softmax(logits) without a softmax layer", () => {
    const net = network([layer("c", "conv", [2, 2, 2]), layer("f", "flatten", [8]), layer("o", "dense", [3])], [4, 4, 1]);
    const acts = activationsFor(net);
    const p = probabilities(net, acts, "o");
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(argmax(p)).toBe(2);
  });
});

describe("computeLayout", () => {
  const tiny = buildColumns(loadFixture("tiny_vgg").network);

  for (const width of [420, 700, 1000, 1400, 2200]) {
    it(`keeps every column inside ${width}px, in order, without overlap`, () => {
      const L = computeLayout(tiny, width);
      expect(L.columns).toHaveLength(tiny.length);
      for (let i = 0; i < L.columns.length; i++) {
        const c = L.columns[i];
        expect(c.x).toBeGreaterThanOrEqual(0);
        expect(c.x + c.width).toBeLessThanOrEqual(width + 0.5);
        if (i > 0) expect(c.x).toBeGreaterThanOrEqual(L.columns[i - 1].x + L.columns[i - 1].width);
      }
    });
  }

  it("grows the heatmaps with the width, up to a maximum", () => {
    const a = computeLayout(tiny, 700);
    const b = computeLayout(tiny, 1400);
    const c = computeLayout(tiny, 4000);
    expect(b.node).toBeGreaterThan(a.node);
    expect(c.node).toBeLessThanOrEqual(DEFAULT_LAYOUT.maxNode);
  });

  it("all-to-all links get wider gaps than one-to-one links", () => {
    const L = computeLayout(tiny, 1400);
    const gap = (i: number) => L.columns[i].x - (L.columns[i - 1].x + L.columns[i - 1].width);
    const full = tiny.findIndex((c, i) => i > 1 && c.link === "full");
    const one = tiny.findIndex((c) => c.link === "one");
    expect(gap(full)).toBeGreaterThan(gap(one));
  });

  it("keeps 11 px titles on one row in a wide cell, staggers them in narrower ones", () => {
    expect(computeLayout(tiny, 1400).stagger).toBe(false);
    expect(computeLayout(tiny, 1200).stagger).toBe(false);
    expect(computeLayout(tiny, 950).titleRows).toBe(2);
    expect(computeLayout(tiny, 500).titleRows).toBeGreaterThan(2);
    for (const width of [1400, 950, 500]) expect(computeLayout(tiny, width).titleFont).toBeGreaterThanOrEqual(11);
  });

  it("title boxes of one row never overlap and stay inside the cell, down to 360 px", () => {
    for (const width of [360, 420, 500, 700, 950, 1400]) {
      const L = computeLayout(tiny, width);
      L.columns.forEach((b, i) => {
        expect(b.titleLeft).toBeGreaterThanOrEqual(0);
        expect(b.titleLeft + b.titleBoxWidth).toBeLessThanOrEqual(L.width + 0.5);
        const a = L.columns[i - L.titleRows];
        if (a) expect(b.titleLeft, `${tiny[i].layer} at ${width}px`).toBeGreaterThanOrEqual(a.titleLeft + a.titleBoxWidth);
      });
    }
  });

  it("one-row titles do not overlap", () => {
    for (const width of [800, 950, 1200]) {
      const L = computeLayout(tiny, width);
      if (L.stagger) continue;
      for (let i = 1; i < L.columns.length; i++) {
        const a = L.columns[i - 1];
        const b = L.columns[i];
        const gap = b.x + b.width / 2 - b.titleWidth / 2 - (a.x + a.width / 2 + a.titleWidth / 2);
        expect(gap, `${tiny[i].layer} at ${width}px`).toBeGreaterThan(0);
      }
    }
  });

  it("pages wide layers and keeps narrow ones on one page", () => {
    const cols = buildColumns(smallNet(64));
    const L = computeLayout(cols, 1200);
    const c1 = L.columns[1];
    expect(c1.perPage).toBeLessThanOrEqual(DEFAULT_LAYOUT.rowsCap);
    expect(c1.pages).toBe(Math.ceil(64 / c1.perPage));
    expect(pageRange(c1, 64, c1.pages - 1)[1]).toBe(64);
    expect(pageRange(c1, 64, 99)[0]).toBe((c1.pages - 1) * c1.perPage);
    expect(L.columns[0].pages).toBe(1);
    expect(computeLayout(tiny, 1200).columns.every((c) => c.pages === 1)).toBe(true);
  });

  it("places items inside the body, spread evenly", () => {
    const L = computeLayout(tiny, 1200);
    const rs = Array.from({ length: 10 }, (_, i) => itemRect(L, 1, i, 10));
    for (const r of rs) {
      expect(r.y).toBeGreaterThanOrEqual(L.bodyTop - 1);
      expect(r.y + r.h).toBeLessThanOrEqual(L.bodyTop + L.bodyHeight + 1);
    }
    for (let i = 1; i < rs.length; i++) expect(rs[i].y).toBeGreaterThan(rs[i - 1].y + rs[i - 1].h);
    const input = Array.from({ length: 3 }, (_, i) => itemRect(L, 0, i, 3));
    // centred to the whole pixel (rects are rounded)
    expect(Math.abs(input[1].y + input[1].h / 2 - (L.bodyTop + L.bodyHeight / 2))).toBeLessThanOrEqual(1);
  });

  it("keeps the aspect ratio of non-square maps", () => {
    const { network: net } = loadFixture("odd");
    const cols = buildColumns(net);
    const L = computeLayout(cols, 1100);
    const c = cols.findIndex((col) => col.shape[0] === 5 && col.shape[1] === 3);
    expect(c).toBeGreaterThan(0);
    expect(L.columns[c].itemH).toBe(L.node);
    expect(L.columns[c].itemW).toBe(Math.round((L.node * 3) / 5));
    const r = itemRect(L, c, 0, 1);
    expect(r.x - L.columns[c].x).toBeCloseTo((L.node - L.columns[c].itemW) / 2, 5);
  });

  it("puts legends below the body and pagers", () => {
    const L = computeLayout(buildColumns(smallNet(64)), 1000);
    expect(L.pagerTop).toBeGreaterThanOrEqual(L.bodyTop + L.bodyHeight);
    expect(L.legendTop).toBeGreaterThan(L.pagerTop);
    expect(L.height).toBeGreaterThan(L.legendTop);
  });
});
