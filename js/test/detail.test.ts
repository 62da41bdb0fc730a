// DOM-free parts of the detail views: which view explains which layer, the throttle that limits
// hover reports to Python, and the colour helpers.
import { afterEach, describe, expect, it, vi } from "vitest";
import { detailKind } from "../src/detail/index";
import { isOutputLayer } from "../src/detail/dense";
import { isUnitRange, throttle } from "../src/detail/dom";
import { loadFixture } from "./fixtures/load";

describe("detailKind", () => {
  it("maps every Tiny VGG layer to its view", () => {
    const { network } = loadFixture("tiny_vgg");
    expect(detailKind(network, "input")).toBe("input");
    expect(detailKind(network, "conv_1_1")).toBe("conv");
    expect(detailKind(network, "relu_2_2")).toBe("activation");
    expect(detailKind(network, "max_pool_2")).toBe("pool");
    expect(detailKind(network, "output")).toBe("output");
    expect(detailKind(network, "flatten")).toBeNull();
    expect(detailKind(network, "nope")).toBeNull();
    expect(isOutputLayer(network, "output")).toBe(true);
  });
  it("works for any layer list (odd network)", () => {
    const { network } = loadFixture("odd");
    expect(detailKind(network, "conv_2")).toBe("conv");
    expect(detailKind(network, "gelu_1")).toBe("activation");
    expect(detailKind(network, "avg_pool_2")).toBe("pool");
    expect(detailKind(network, "output")).toBe("output");
  });
});

describe("throttle", () => {
  afterEach(() => vi.useRealTimers());
  it("reports at most every 150 ms, with the latest value last", () => {
    vi.useFakeTimers();
    const calls: number[] = [];
    const t = throttle((v: number) => calls.push(v), 150);
    for (let i = 0; i < 10; i++) {
      t(i);
      vi.advanceTimersByTime(20);
    }
    // 200 ms of hovering: the first call at once, then one after 150 ms
    expect(calls).toEqual([0, 7]);
    vi.advanceTimersByTime(200);
    expect(calls).toEqual([0, 7, 9]);
  });
  it("flush sends the pending value now (clicks), cancel drops it (close)", () => {
    vi.useFakeTimers();
    const calls: number[] = [];
    const t = throttle((v: number) => calls.push(v), 150);
    t(1);
    t(2);
    t.flush();
    expect(calls).toEqual([1, 2]);
    t(3);
    t.cancel();
    vi.advanceTimersByTime(500);
    expect(calls).toEqual([1, 2]);
  });
});

describe("colour helpers", () => {
  it("isUnitRange: [0, 1] images are grey, anything else diverging", () => {
    expect(isUnitRange([0, 0.1], [1, 0.9])).toBe(true);
    expect(isUnitRange([-0.5], [0.5])).toBe(false);
  });
});
