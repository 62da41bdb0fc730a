// Which dense layer is the network's output (the last dense layer).

import type { Network } from "../payload";

export function isOutputLayer(network: Network, name: string): boolean {
  const i = network.layers.findIndex((l) => l.name === name);
  let last = -1;
  network.layers.forEach((l, j) => {
    if (l.kind === "dense") last = j;
  });
  return i === last;
}
