// The elastic layout is generated from the layer list: every kind of neuron of Tiny VGG, of an
// odd own network (1-channel input, odd kernels, strides and paddings, many activations) and of
// small built networks (hidden dense layer, more channels than rows) opens into a layout whose
// parts stay inside the overview's area, do not overlap, and page what does not fit.
import { describe, expect, it } from "vitest";
import { buildColumns, pageGroups, type Column } from "../src/overview/columns";
import { elasticKind, elasticLayout, rowsFitting, type ElasticLayout } from "../src/overview/elastic-layout";
import { computeLayout, itemRect, pageRange, type Layout, type Rect } from "../src/overview/layout";
import { loadFixture } from "./fixtures/load";
import { layer, network, smallNet } from "./overview-builders";

function overviewRects(cols: Column[], L: Layout): (Rect | undefined)[][] {
  const group = pageGroups(cols);
  return cols.map((col, c) => {
    const [a, b] = pageRange(L.columns[group[c]], col.count, 0);
    return Array.from({ length: col.count }, (_, i) => (i >= a && i < b ? itemRect(L, c, i - a, b - a) : undefined));
  });
}

const overlaps = (a: Rect, b: Rect) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
const inside = (r: Rect, L: ElasticLayout) => r.x >= 0 && r.y >= 0 && r.x + r.w <= L.width + 0.5 && r.y + r.h <= L.height + 0.5;

function open(cols: Column[], width: number, sel: number, index: number, page = 0) {
  const base = computeLayout(cols, width);
  const L = elasticLayout({ cols, base, rects: overviewRects(cols, base), sel, index, page });
  return { base, L };
}

/** The parts the elastic view draws (not the faded context). */
function parts(L: ElasticLayout): Rect[] {
  const out: Rect[] = [...L.inputs, ...L.kernels, ...L.inters];
  for (const r of [L.plus, L.heroSrc, L.op, L.flatten, L.softmax, L.image]) if (r) out.push(r);
  if (L.kind !== "output" && L.kind !== "dense" && L.kind !== "input") out.push(L.hero);
  return out.filter((r) => r.w > 0);
}

function checkAll(cols: Column[], widths: number[]) {
  for (const width of widths) {
    cols.forEach((col, c) => {
      const kind = elasticKind(cols, c);
      if (!kind) return;
      for (const index of [0, col.count - 1]) {
        const { base, L } = open(cols, width, c, index);
        expect(L, `${col.layer} @${width}`).not.toBeNull();
        const l = L!;
        const what = `${col.layer}[${index}] @${width}px (${kind})`;
        // the explanation stays inside the overview's area: no growth at all here
        expect(l.height, what).toBeLessThanOrEqual(base.height * (4 / 3));
        expect(l.hero.w, what).toBeGreaterThan(0);
        for (const [key, r] of l.neurons) expect(inside(r, l), `${what} neuron ${key} ${JSON.stringify(r)}`).toBe(true);
        const ps = parts(l);
        for (const r of ps) expect(inside(r, l), `${what} part ${JSON.stringify(r)}`).toBe(true);
        for (let i = 0; i < ps.length; i++) {
          for (let j = i + 1; j < ps.length; j++) expect(overlaps(ps[i], ps[j]), `${what}: ${JSON.stringify(ps[i])} overlaps ${JSON.stringify(ps[j])}`).toBe(false);
        }
        expect(l.card.w, what).toBeGreaterThanOrEqual(Math.min(280, width - 20));
        expect(inside(l.card, l), what).toBe(true);
        // the selected neuron is drawn, large, at the hero place
        expect(l.neurons.get(`${c}:${index}`), what).toBeDefined();
        if (kind === "conv") {
          const src = cols[c - 1];
          expect(l.rows.length, what).toBe(Math.min(src.count, rowsFitting(base)));
          expect(l.inputs.length).toBe(l.rows.length);
          expect(l.kernels.length).toBe(l.rows.length);
          expect(l.inters.length).toBe(l.rows.length);
          for (const i of l.rows) expect(l.neurons.get(`${c - 1}:${i}`), what).toBeDefined();
        }
        if (kind === "output" || kind === "dense") {
          expect(l.marks.length).toBe(col.count);
          expect(l.marks[index].w, what).toBeGreaterThan(0);
          expect(l.weights!.w, what).toBeGreaterThan(40);
        }
        if (kind === "pair") expect(l.heroSrc!.w, what).toBeGreaterThan(0);
      }
    });
  }
}

describe("elasticKind", () => {
  it("names the view of each Tiny VGG column", () => {
    const cols = buildColumns(loadFixture("tiny_vgg").network);
    expect(cols.map((_, c) => elasticKind(cols, c))).toEqual(["input", "conv", "pair", "conv", "pair", "pair", "conv", "pair", "conv", "pair", "pair", "output"]);
  });
  it("a hidden dense layer is a dense view", () => {
    const cols = buildColumns(smallNet(4));
    expect(elasticKind(cols, cols.findIndex((c) => c.layer === "hidden"))).toBe("dense");
  });
});

describe("elasticLayout", () => {
  it("lays out every Tiny VGG neuron kind inside the overview", () => {
    checkAll(buildColumns(loadFixture("tiny_vgg").network), [420, 760, 1000, 1400]);
  });

  it("lays out an odd own network (1-channel input, odd kernels, strides, paddings)", () => {
    const cols = buildColumns(loadFixture("odd").network);
    checkAll(cols, [760, 1000]);
    const { L } = open(cols, 1000, 0, 0);
    expect(L!.kind).toBe("input");
    expect(L!.inputs).toHaveLength(1);
  });

  it("lays out a network with a hidden dense layer", () => {
    checkAll(buildColumns(smallNet(4)), [800, 1200]);
  });

  it("pages input channels that do not fit, every channel on some page", () => {
    const net = network(
      [
        layer("c1", "conv", [8, 8, 16], 0, [10, 10, 3]),
        layer("c2", "conv", [6, 6, 5], 1, [8, 8, 16]),
        layer("f", "flatten", [180]),
        layer("out", "dense", [3]),
      ],
      [10, 10, 3],
    );
    const cols = buildColumns(net);
    const { L } = open(cols, 1000, 2, 0);
    expect(L!.pages).toBe(2);
    const seen = new Set<number>();
    for (let p = 0; p < L!.pages; p++) for (const i of open(cols, 1000, 2, 0, p).L!.rows) seen.add(i);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    // an input channel that is not on the overview's first page is still drawn on page 2
    const p2 = open(cols, 1000, 2, 0, 1).L!;
    expect(p2.neurons.get("1:15")).toBeDefined();
  });

  it("other layers step aside: faded, smaller, still drawn", () => {
    const cols = buildColumns(loadFixture("tiny_vgg").network);
    const { base, L } = open(cols, 1000, 3, 2); // conv_1_2
    const far = L!.neurons.get("8:0")!; // conv_2_2, far to the right
    expect(far.opacity).toBeLessThan(0.5);
    expect(far.w).toBeLessThan(base.node);
    expect(L!.titles[8].opacity).toBe(0);
    expect(L!.titles[3].opacity).toBe(1);
  });
});
