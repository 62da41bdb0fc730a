// Painting one neuron's map into its canvas, from exact values or from a preview (payload.ts),
// with the same colours either way: a preview's 256 levels are coloured by `paintMap` itself.

import { paintMap } from "../colors";
import type { LayerValues } from "../payload";

export type MapKind = "grey" | "diverging";

const LEVELS = new Float32Array(256);
const TABLE = new Uint8ClampedArray(256 * 4);
const TABLE32 = new Uint32Array(TABLE.buffer);

/** Colour the uint8 `levels` (level q stands for min + q · (max − min) / 255) into `out`. */
export function paintLevels(levels: Uint8Array, out: Uint8ClampedArray, kind: MapKind, extent: number, min: number, max: number): void {
  const step = (max - min) / 255;
  for (let q = 0; q < 256; q++) LEVELS[q] = Number.isFinite(step) ? min + q * step : min;
  paintMap(LEVELS, TABLE, kind, extent);
  const px = new Uint32Array(out.buffer, out.byteOffset, levels.length);
  for (let p = 0; p < levels.length; p++) px[p] = TABLE32[levels[p]];
}

/** Size [h, w] of what neuron maps of `v` are painted from (a preview's, else the map's). */
export function paintSize(v: LayerValues): [number, number] {
  if (v.preview) return [v.preview.shape[1], v.preview.shape[2]];
  return v.shape.length === 3 ? [v.shape[1], v.shape[2]] : [0, 0];
}

/**
 * Paint neuron `i` of `v` into `canvas` (resized to what it is painted from) through the
 * scratch `image` cache (one ImageData per size, shared by a column's neurons).
 */
export function paintNeuron(canvas: HTMLCanvasElement, v: LayerValues, i: number, kind: MapKind, extent: number, images: Map<string, ImageData>): boolean {
  const [h, w] = paintSize(v);
  if (!h || !w) return false;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return false;
  const key = `${w}x${h}`;
  let image = images.get(key);
  if (!image) {
    image = ctx.createImageData(w, h);
    images.set(key, image);
  }
  const n = h * w;
  if (v.preview) paintLevels(v.preview.data.subarray(i * n, (i + 1) * n), image.data, kind, extent, v.min[i], v.max[i]);
  else paintMap(v.values.subarray(i * n, (i + 1) * n), image.data, kind, extent);
  ctx.putImageData(image, 0, 0);
  return true;
}
