import { describe, expect, it } from "vitest";
import { channelName } from "../src/names";

describe("channelName", () => {
  it("names an RGB input's channels Red, Green and Blue", () => {
    const rgb = { inputShape: [64, 64, 3] as [number, number, number] };
    expect([0, 1, 2].map((i) => channelName(rgb, "input", i))).toEqual(["Red", "Green", "Blue"]);
  });
  it("a one-channel input is grey; other layers' neurons are numbered", () => {
    const grey = { inputShape: [28, 28, 1] as [number, number, number] };
    expect(channelName(grey, "input", 0)).toBe("grey");
    expect(channelName(grey, "conv_1", 4)).toBe("conv_1 neuron 4");
  });
});
