// Sending a file to the kernel in pieces. JupyterLab's websocket drops any message over 10 MiB
// (and the kernel connection with it), so a file travels as `upload-chunk` messages of at most
// CHUNK_BYTES each. Python keeps them by upload id and index (the kernel may handle them out of
// order, on two threads: cnn_explainer_widget/_uploads.py), reassembles them (size-capped) and
// decodes the whole.

import type { AnyModel } from "@anywidget/types";

/** Bytes per piece: well under the 10 MiB websocket limit, and under Python's MAX_CHUNK_BYTES. */
export const CHUNK_BYTES = 4 * 1024 * 1024;

// An upload's id must differ from every other upload to the same widget, also one from another
// page showing it (a second tab, a reloaded page): each page starts counting at a random id.
let nextId = 1 + Math.floor(Math.random() * 2 ** 40);

/** Send `buf` (the file `name`) as one or more `upload-chunk` messages. Returns the piece count. */
export function sendUpload(model: Pick<AnyModel, "send">, name: string, buf: ArrayBuffer): number {
  const id = nextId++;
  const size = buf.byteLength;
  const count = Math.max(1, Math.ceil(size / CHUNK_BYTES));
  for (let index = 0; index < count; index++) {
    const piece = buf.slice(index * CHUNK_BYTES, Math.min(size, (index + 1) * CHUNK_BYTES));
    model.send({ type: "upload-chunk", id, index, count, size, name }, undefined, [piece]);
  }
  return count;
}
