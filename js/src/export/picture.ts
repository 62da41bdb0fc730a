// Pictures of what the widget shows, for slides: the overview or the open explanation view as
// SVG (vector text and shapes, heatmaps as embedded images) or PNG (2× by default).
//
// The page is read, not re-drawn: every visible box with a background or border becomes a
// rectangle, every canvas and image an image, every inline SVG a copy with its computed styles,
// and every piece of text a <text> at the place it is shown, with its font and colour. The same
// list of shapes is written as SVG or painted on a canvas for PNG (no SVG-to-canvas round trip,
// so the canvas is never tainted). `light` reads the colours of the light theme whatever the
// notebook's theme (JupyterLab's variables are set to nothing, so the CSS fallbacks apply).

export type PictureTarget = "overview" | "detail";
export type PictureFormat = "png" | "svg";

export interface PictureOptions {
  /** Pixels per CSS pixel for PNG (default 2). */
  scale?: number;
  /** Light background and colours whatever the theme (default false: colours as on screen). */
  light?: boolean;
}

export interface Picture {
  blob: Blob;
  width: number;
  height: number;
}

type Box = { x: number; y: number; w: number; h: number };

type Shape =
  | { kind: "rect"; box: Box; fill: string; stroke: string; strokeWidth: number; radius: number; opacity: number }
  | { kind: "gradient"; box: Box; vertical: boolean; stops: [string, number][]; radius: number; opacity: number }
  | { kind: "line"; x1: number; y1: number; x2: number; y2: number; stroke: string; width: number; opacity: number }
  | { kind: "image"; box: Box; source: HTMLCanvasElement | HTMLImageElement; smooth: boolean; opacity: number }
  | { kind: "svg"; box: Box; markup: string; opacity: number }
  | { kind: "text"; x: number; y: number; text: string; font: string; color: string; opacity: number };

/** The explanation opens in place, inside the overview's area: both pictures take that area. */
const AREA = ".cnnx-overview-wrap";

/** Parts of the widget that are not part of a picture. */
const SKIP = ".cnnx-connection, .cnnx-ov-tooltip, .cnnx-tooltip, .cnnx-detail-anchor, .cnnx-picture-menu, .cnnx-drop-hint";

/** The element a picture of `target` is taken of, or a reason why there is none. */
export function pictureElement(root: HTMLElement, target: PictureTarget): HTMLElement | string {
  if (target === "detail" && !root.dataset.detail) return "no explanation view is open: click a neuron (or set w.selected) first";
  const el = root.querySelector<HTMLElement>(AREA);
  if (!el || el.hidden || el.getBoundingClientRect().width === 0) return "the overview is not drawn yet";
  return el;
}

function visibleColor(c: string): boolean {
  return !!c && c !== "transparent" && !/rgba\([^)]*,\s*0\)$/.test(c);
}

function fontOf(cs: CSSStyleDeclaration): string {
  return `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
}

/** Collect the shapes of `target` (coordinates relative to it). */
function collect(target: HTMLElement): { shapes: Shape[]; width: number; height: number; background: string } {
  const origin = target.getBoundingClientRect();
  const shapes: Shape[] = [];
  const rel = (r: DOMRect): Box => ({ x: r.left - origin.left, y: r.top - origin.top, w: r.width, h: r.height });
  const inside = (r: DOMRect, clip: DOMRect | null) =>
    r.width > 0 && r.height > 0 && (!clip || (r.right > clip.left && r.left < clip.right && r.bottom > clip.top && r.top < clip.bottom));

  const walk = (el: Element, opacity: number, clip: DOMRect | null): void => {
    if (el.matches(SKIP)) return;
    const cs = getComputedStyle(el);
    if (cs.display === "none" || (el as HTMLElement).hidden) return;
    const op = opacity * Number(cs.opacity || 1);
    if (op <= 0.001) return;
    const r = el.getBoundingClientRect();
    const visible = cs.visibility !== "hidden" && inside(r, clip);
    if (visible && el !== target) {
      const bg = cs.backgroundColor;
      const bw = [cs.borderTopWidth, cs.borderRightWidth, cs.borderBottomWidth, cs.borderLeftWidth].map((v) => parseFloat(v) || 0);
      const bc = [cs.borderTopColor, cs.borderRightColor, cs.borderBottomColor, cs.borderLeftColor];
      const bs = [cs.borderTopStyle, cs.borderRightStyle, cs.borderBottomStyle, cs.borderLeftStyle];
      const box = rel(r);
      const sides = bw.map((w, i) => w > 0 && bs[i] !== "none" && bs[i] !== "hidden" && visibleColor(bc[i]));
      const uniform = sides.every((s) => s) && bw.every((w) => w === bw[0]) && bc.every((c) => c === bc[0]);
      const radius = parseFloat(cs.borderTopLeftRadius) || 0;
      if (visibleColor(bg) || uniform) {
        shapes.push({ kind: "rect", box, fill: visibleColor(bg) ? bg : "none", stroke: uniform ? bc[0] : "none", strokeWidth: uniform ? bw[0] : 0, radius, opacity: op });
      }
      if (!uniform) {
        const { x, y, w, h } = box;
        const lines: [number, number, number, number][] = [
          [x, y + bw[0] / 2, x + w, y + bw[0] / 2],
          [x + w - bw[1] / 2, y, x + w - bw[1] / 2, y + h],
          [x, y + h - bw[2] / 2, x + w, y + h - bw[2] / 2],
          [x + bw[3] / 2, y, x + bw[3] / 2, y + h],
        ];
        lines.forEach(([x1, y1, x2, y2], i) => {
          if (sides[i]) shapes.push({ kind: "line", x1, y1, x2, y2, stroke: bc[i], width: bw[i], opacity: op });
        });
      }
      const gradient = parseGradient(cs.backgroundImage);
      if (gradient) shapes.push({ kind: "gradient", box, ...gradient, radius, opacity: op });
      for (const ring of rings(cs.boxShadow)) {
        const g = ring.spread;
        const b = { x: box.x - g, y: box.y - g, w: box.w + 2 * g, h: box.h + 2 * g };
        shapes.push({ kind: "rect", box: b, fill: "none", stroke: ring.color, strokeWidth: g, radius: radius ? radius + g : 0, opacity: op });
      }
      if (el instanceof HTMLCanvasElement && el.width > 0 && el.height > 0) {
        shapes.push({ kind: "image", box, source: el, smooth: cs.imageRendering !== "pixelated", opacity: op });
        return;
      }
      if (el instanceof HTMLImageElement && el.complete && el.naturalWidth > 0) {
        shapes.push({ kind: "image", box, source: el, smooth: cs.imageRendering !== "pixelated", opacity: op });
        return;
      }
      if (el instanceof SVGSVGElement) {
        shapes.push({ kind: "svg", box, markup: inlineSvg(el, r), opacity: op });
        return;
      }
      if (el instanceof HTMLSelectElement || (el instanceof HTMLInputElement && !["checkbox", "radio", "file", "hidden", "range"].includes(el.type))) {
        const text = el instanceof HTMLSelectElement ? (el.selectedOptions[0]?.text ?? "") : el.value;
        const pad = parseFloat(cs.paddingLeft) || 2;
        shapes.push({ kind: "text", x: box.x + pad + bw[3], y: box.y + box.h / 2 + parseFloat(cs.fontSize) * 0.35, text, font: fontOf(cs), color: cs.color, opacity: op });
        return;
      }
    }
    const clips = cs.overflowX !== "visible" || cs.overflowY !== "visible";
    const childClip = clips ? (clip ? intersect(clip, r) : r) : clip;
    for (const node of el.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) {
        if (visible || cs.visibility !== "hidden") textShapes(node as Text, cs, op, childClip, rel, shapes);
      } else if (node instanceof Element) walk(node, op, childClip);
    }
  };

  walk(target, 1, null);
  return { shapes, width: Math.ceil(origin.width), height: Math.ceil(origin.height), background: "" };
}

/** Split at top-level commas (not inside parentheses). */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "(") depth++;
    else if (s[i] === ")") depth--;
    else if (s[i] === "," && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(s.slice(start).trim());
  return out;
}

/** A horizontal or vertical `linear-gradient(...)` background (legends, bars), else null. */
export function parseGradient(image: string): { vertical: boolean; stops: [string, number][] } | null {
  const m = /^linear-gradient\((.*)\)$/.exec(image.trim());
  if (!m) return null;
  const parts = splitTop(m[1]);
  let vertical = true;
  let reverse = false;
  if (/^(to |-?[\d.]+deg)/.test(parts[0])) {
    const dir = parts.shift() ?? "";
    vertical = /bottom|top|^-?(0|180)deg/.test(dir);
    reverse = /to (left|top)|^-?(270|0)deg/.test(dir) && !/^180deg|^90deg/.test(dir);
  }
  if (parts.length < 2) return null;
  const stops = parts.map((p, i): [string, number] => {
    const pm = /^(.*?)\s+(-?[\d.]+)%$/.exec(p);
    const color = pm ? pm[1] : p;
    const at = pm ? Number(pm[2]) / 100 : i / (parts.length - 1);
    return [color, reverse ? 1 - at : at];
  });
  if (reverse) stops.reverse();
  return { vertical, stops };
}

/** Solid rings drawn with `box-shadow: 0 0 0 <spread> <colour>` (selection marks). */
export function rings(shadow: string): { color: string; spread: number }[] {
  if (!shadow || shadow === "none") return [];
  const out: { color: string; spread: number }[] = [];
  for (const part of splitTop(shadow)) {
    if (part.includes("inset")) continue;
    const color = /(rgba?\([^)]*\)|#[0-9a-f]+|[a-z]+)/i.exec(part)?.[1] ?? "";
    const lengths = part.replace(color, "").trim().split(/\s+/).map((v) => parseFloat(v));
    const [x, y, blur, spread] = lengths;
    if (x === 0 && y === 0 && (blur || 0) === 0 && spread > 0 && visibleColor(color)) out.push({ color, spread });
  }
  return out;
}

function intersect(a: DOMRect, b: DOMRect): DOMRect {
  const left = Math.max(a.left, b.left);
  const top = Math.max(a.top, b.top);
  return new DOMRect(left, top, Math.max(0, Math.min(a.right, b.right) - left), Math.max(0, Math.min(a.bottom, b.bottom) - top));
}

/** One <text> per line of a text node (a wrapped node is split by words). */
function textShapes(node: Text, cs: CSSStyleDeclaration, opacity: number, clip: DOMRect | null, rel: (r: DOMRect) => Box, out: Shape[]): void {
  const raw = node.data;
  if (!raw.trim() || cs.visibility === "hidden") return;
  const range = document.createRange();
  range.selectNodeContents(node);
  const rects = [...range.getClientRects()].filter((r) => r.width > 0);
  if (rects.length === 0) return;
  const size = parseFloat(cs.fontSize) || 12;
  const push = (text: string, r: DOMRect) => {
    if (clip && (r.right <= clip.left || r.left >= clip.right || r.bottom <= clip.top || r.top >= clip.bottom)) return;
    const b = rel(r);
    // baseline: the middle of the line box plus about a third of the font size
    out.push({ kind: "text", x: b.x, y: b.y + b.h / 2 + size * 0.35, text, font: fontOf(cs), color: cs.color, opacity });
  };
  const collapse = (s: string) => (cs.whiteSpace.startsWith("pre") ? s : s.replace(/\s+/g, " "));
  if (rects.length === 1) {
    push(collapse(raw).trim(), rects[0]);
    return;
  }
  // wrapped: measure word by word and group the words by line
  const lines: { top: number; rect: DOMRect; words: string[] }[] = [];
  const re = /\S+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(raw))) {
    range.setStart(node, m.index);
    range.setEnd(node, m.index + m[0].length);
    const r = range.getBoundingClientRect();
    if (r.width === 0) continue;
    const line = lines.find((l) => Math.abs(l.top - r.top) < size * 0.5);
    if (line) {
      line.words.push(m[0]);
      line.rect = new DOMRect(line.rect.left, line.rect.top, r.right - line.rect.left, line.rect.height);
    } else lines.push({ top: r.top, rect: r, words: [m[0]] });
  }
  for (const l of lines) push(l.words.join(" "), l.rect);
}

const SVG_PROPS = ["fill", "fill-opacity", "stroke", "stroke-width", "stroke-opacity", "stroke-dasharray", "opacity", "font-family", "font-size", "font-weight", "text-anchor", "dominant-baseline", "visibility", "display"];

/** A standalone copy of an inline SVG: computed styles written as attributes, classes dropped. */
function inlineSvg(el: SVGSVGElement, r: DOMRect): string {
  const copy = el.cloneNode(true) as SVGSVGElement;
  const src = [el, ...el.querySelectorAll("*")];
  const dst = [copy, ...copy.querySelectorAll("*")];
  src.forEach((s, i) => {
    const cs = getComputedStyle(s);
    const d = dst[i];
    for (const p of SVG_PROPS) {
      const v = cs.getPropertyValue(p);
      if (v) d.setAttribute(p, v);
    }
    d.removeAttribute("class");
    d.removeAttribute("style");
  });
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.setAttribute("width", String(r.width));
  copy.setAttribute("height", String(r.height));
  if (!copy.getAttribute("viewBox")) copy.setAttribute("viewBox", `0 0 ${r.width} ${r.height}`);
  return new XMLSerializer().serializeToString(copy);
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function n(v: number): string {
  return String(Math.round(v * 100) / 100);
}

function dataUrl(source: HTMLCanvasElement | HTMLImageElement): string {
  if (source instanceof HTMLCanvasElement) return source.toDataURL("image/png");
  const c = document.createElement("canvas");
  c.width = source.naturalWidth;
  c.height = source.naturalHeight;
  c.getContext("2d")?.drawImage(source, 0, 0);
  return c.toDataURL("image/png");
}

function toSvg(shapes: Shape[], width: number, height: number, background: string): string {
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="${esc(background)}"/>`,
  ];
  let gradients = 0;
  for (const s of shapes) {
    const op = s.opacity < 1 ? ` opacity="${n(s.opacity)}"` : "";
    if (s.kind === "rect") {
      const rr = s.radius ? ` rx="${n(s.radius)}"` : "";
      const inset = s.strokeWidth / 2;
      parts.push(
        `<rect x="${n(s.box.x + inset)}" y="${n(s.box.y + inset)}" width="${n(Math.max(0, s.box.w - s.strokeWidth))}" height="${n(Math.max(0, s.box.h - s.strokeWidth))}"${rr} fill="${esc(s.fill)}" stroke="${esc(s.stroke)}" stroke-width="${n(s.strokeWidth)}"${op}/>`,
      );
    } else if (s.kind === "gradient") {
      const id = `g${gradients++}`;
      const [x2, y2] = s.vertical ? ["0", "1"] : ["1", "0"];
      const stops = s.stops.map(([c, at]) => `<stop offset="${n(at)}" stop-color="${esc(c)}"/>`).join("");
      const rr = s.radius ? ` rx="${n(s.radius)}"` : "";
      parts.push(`<linearGradient id="${id}" x1="0" y1="0" x2="${x2}" y2="${y2}">${stops}</linearGradient>`);
      parts.push(`<rect x="${n(s.box.x)}" y="${n(s.box.y)}" width="${n(s.box.w)}" height="${n(s.box.h)}"${rr} fill="url(#${id})"${op}/>`);
    } else if (s.kind === "line") {
      parts.push(`<line x1="${n(s.x1)}" y1="${n(s.y1)}" x2="${n(s.x2)}" y2="${n(s.y2)}" stroke="${esc(s.stroke)}" stroke-width="${n(s.width)}"${op}/>`);
    } else if (s.kind === "image") {
      const style = s.smooth ? "" : ` style="image-rendering:pixelated" image-rendering="optimizeSpeed"`;
      parts.push(`<image x="${n(s.box.x)}" y="${n(s.box.y)}" width="${n(s.box.w)}" height="${n(s.box.h)}" preserveAspectRatio="none" href="${dataUrl(s.source)}"${style}${op}/>`);
    } else if (s.kind === "svg") {
      parts.push(`<g transform="translate(${n(s.box.x)} ${n(s.box.y)})"${op}>${s.markup}</g>`);
    } else {
      parts.push(`<text x="${n(s.x)}" y="${n(s.y)}" style="font:${esc(s.font)}" fill="${esc(s.color)}" xml:space="preserve"${op}>${esc(s.text)}</text>`);
    }
  }
  parts.push("</svg>");
  return parts.join("\n");
}

function loadSvgImage(markup: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    const url = URL.createObjectURL(new Blob([markup], { type: "image/svg+xml" }));
    img.onload = () => {
      URL.revokeObjectURL(url);
      resolve(img);
    };
    img.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error("could not draw an SVG part"));
    };
    img.src = url;
  });
}

async function toPng(shapes: Shape[], width: number, height: number, background: string, scale: number): Promise<Blob> {
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(width * scale);
  canvas.height = Math.round(height * scale);
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("this browser cannot draw a PNG (no 2D canvas)");
  ctx.scale(scale, scale);
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, width, height);
  const svgImages = await Promise.all(shapes.map((s) => (s.kind === "svg" ? loadSvgImage(s.markup) : Promise.resolve(null))));
  shapes.forEach((s, i) => {
    ctx.save();
    ctx.globalAlpha = s.opacity;
    if (s.kind === "rect") {
      const inset = s.strokeWidth / 2;
      const [x, y, w, h] = [s.box.x + inset, s.box.y + inset, Math.max(0, s.box.w - s.strokeWidth), Math.max(0, s.box.h - s.strokeWidth)];
      ctx.beginPath();
      if (s.radius && ctx.roundRect) ctx.roundRect(x, y, w, h, s.radius);
      else ctx.rect(x, y, w, h);
      if (s.fill !== "none") {
        ctx.fillStyle = s.fill;
        ctx.fill();
      }
      if (s.stroke !== "none" && s.strokeWidth > 0) {
        ctx.strokeStyle = s.stroke;
        ctx.lineWidth = s.strokeWidth;
        ctx.stroke();
      }
    } else if (s.kind === "gradient") {
      const { x, y, w, h } = s.box;
      const g = s.vertical ? ctx.createLinearGradient(x, y, x, y + h) : ctx.createLinearGradient(x, y, x + w, y);
      for (const [c, at] of s.stops) {
        try {
          g.addColorStop(Math.max(0, Math.min(1, at)), c);
        } catch {
          // a colour the canvas does not parse: leave that stop out
        }
      }
      ctx.fillStyle = g;
      ctx.beginPath();
      if (s.radius && ctx.roundRect) ctx.roundRect(x, y, w, h, s.radius);
      else ctx.rect(x, y, w, h);
      ctx.fill();
    } else if (s.kind === "line") {
      ctx.strokeStyle = s.stroke;
      ctx.lineWidth = s.width;
      ctx.beginPath();
      ctx.moveTo(s.x1, s.y1);
      ctx.lineTo(s.x2, s.y2);
      ctx.stroke();
    } else if (s.kind === "image") {
      ctx.imageSmoothingEnabled = s.smooth;
      ctx.drawImage(s.source, s.box.x, s.box.y, s.box.w, s.box.h);
    } else if (s.kind === "svg") {
      const img = svgImages[i];
      if (img) ctx.drawImage(img, s.box.x, s.box.y, s.box.w, s.box.h);
    } else {
      ctx.font = s.font;
      ctx.fillStyle = s.color;
      ctx.textBaseline = "alphabetic";
      ctx.fillText(s.text, s.x, s.y);
    }
    ctx.restore();
  });
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the PNG could not be encoded"))), "image/png"));
}

/** JupyterLab's theme variables the widget's stylesheets use (found in the loaded CSS). */
function themeVariables(): string[] {
  const names = new Set<string>();
  for (const sheet of document.styleSheets) {
    let rules: CSSRuleList;
    try {
      rules = sheet.cssRules;
    } catch {
      continue; // another origin's sheet
    }
    for (const rule of rules) {
      const text = rule.cssText;
      if (!text.includes("cnnx")) continue;
      for (const m of text.matchAll(/var\((--jp-[a-z0-9-]+)/g)) names.add(m[1]);
    }
  }
  return [...names];
}

/**
 * A picture of the overview or the open explanation view of the widget whose root is `root`.
 * Throws with a readable reason when there is nothing to take a picture of.
 */
export async function takePicture(root: HTMLElement, target: PictureTarget, format: PictureFormat, opts: PictureOptions = {}): Promise<Picture> {
  const el = pictureElement(root, target);
  if (typeof el === "string") throw new Error(el);
  // An explanation opens with an animation: take the picture once it has settled (at most 5 s).
  for (let waited = 0; root.dataset.detail && root.dataset.settled === "0" && waited < 5000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // The overview paints only the maps on screen: a picture takes every map of its pages.
  for (const ov of root.querySelectorAll(".cnnx-overview")) ov.dispatchEvent(new Event("cnnx-paint-all"));
  const scale = Math.min(8, Math.max(0.25, opts.scale ?? 2));
  const vars = opts.light ? themeVariables() : [];
  // `initial` makes each var() fall back to the light-theme value written in the CSS
  for (const v of vars) root.style.setProperty(v, "initial");
  try {
    const { shapes, width, height } = collect(el);
    const background = opts.light ? "#ffffff" : getComputedStyle(root).backgroundColor || "#ffffff";
    const bg = visibleColor(background) ? background : "#ffffff";
    if (format === "svg") {
      const markup = toSvg(shapes, width, height, bg);
      return { blob: new Blob([markup], { type: "image/svg+xml" }), width, height };
    }
    const blob = await toPng(shapes, width, height, bg, scale);
    return { blob, width: Math.round(width * scale), height: Math.round(height * scale) };
  } finally {
    for (const v of vars) root.style.removeProperty(v);
  }
}
