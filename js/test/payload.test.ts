// The kernel sends ReLU and max-pool maps as recipes; the rebuilt maps must equal JAX's own
// numbers bit for bit (the `activations` fixtures carry every map as JAX computed it).
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeActivations, derive, PayloadError, type ActivationsMessage } from "../src/payload";
import { loadFixture } from "./fixtures/load";

const here = join(dirname(fileURLToPath(import.meta.url)), "fixtures");

function derivedMessage(name: string): ActivationsMessage {
  const header = JSON.parse(readFileSync(join(here, `${name}.derived.json`), "utf8"));
  const bytes = gunzipSync(readFileSync(join(here, `${name}.derived.bin.gz`)));
  return { ...header, data: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

describe.each(["tiny_vgg", "odd"])("derived layers of %s", (name) => {
  const truth = loadFixture(name).activations;
  const msg = derivedMessage(name);

  it("sends at least one layer as a recipe", () => {
    expect(msg.layers.some((e) => e.derived)).toBe(true);
  });

  it("rebuilds every layer exactly", () => {
    const got = decodeActivations(msg);
    expect([...got.layers.keys()]).toEqual([...truth.layers.keys()]);
    for (const [layer, want] of truth.layers) {
      const have = got.layers.get(layer)!;
      expect(have.shape, layer).toEqual(want.shape);
      expect(Array.from(have.values), layer).toEqual(Array.from(want.values));
    }
  });

  it("a wrong recipe would be caught", () => {
    const pool = msg.layers.find((e) => e.derived?.op === "max_pool");
    if (!pool?.derived) return;
    const src = truth.layers.get(pool.derived.from)!;
    const shifted = { ...pool.derived, stride: [pool.derived.stride![0] + 1, pool.derived.stride![1]] as [number, number] };
    const wrong = derive(shifted, src, pool.shape);
    expect(Array.from(wrong)).not.toEqual(Array.from(truth.layers.get(pool.name)!.values));
  });
});

it("an unknown source layer is a readable error", () => {
  const msg = derivedMessage("tiny_vgg");
  const layers = msg.layers.map((e) => (e.derived ? { ...e, derived: { ...e.derived, from: "nope" } } : e));
  expect(() => decodeActivations({ ...msg, layers })).toThrow(PayloadError);
});
