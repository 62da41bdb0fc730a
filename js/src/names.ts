// The names the widget gives channels and neurons, in one place, so every view says the same:
// an RGB input's channels are Red, Green and Blue (never "channel 0" in one view and "Red" in
// another); a one-channel input's is "grey"; other layers' neurons are numbered.

import type { Network } from "./payload";

export const RGB_NAMES = ["Red", "Green", "Blue"] as const;

/** Number of channels of the network's input. */
function inputChannels(network: Pick<Network, "inputShape">): number {
  return network.inputShape[2];
}

/**
 * Short name of neuron `index` of `layer`: "Red" / "Green" / "Blue" for an RGB input,
 * "grey" for a one-channel input, else "<layer> neuron <index>".
 */
export function channelName(network: Pick<Network, "inputShape">, layer: string, index: number): string {
  if (layer === "input") {
    const c = inputChannels(network);
    if (c === 3 && index >= 0 && index < 3) return RGB_NAMES[index];
    if (c === 1) return "grey";
    return `input channel ${index}`;
  }
  return `${layer} neuron ${index}`;
}
