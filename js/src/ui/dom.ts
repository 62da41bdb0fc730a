// Tiny DOM helpers (no framework), shared by every part of the front end.

type Attr = string | number | boolean | undefined;
export type Child = Node | string | null | undefined | false;

/**
 * Create an element with attributes (`class`, `aria-label`, `data-*`, ...) and children.
 * `true` sets an empty attribute, `false` and `undefined` leave it out; null/false children are
 * skipped, so optional parts can be written inline.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "class") e.className = String(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, Attr> = {}): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  return e;
}
