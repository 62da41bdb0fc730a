// The detail panel ("elastic explanation views"): what one neuron computes, drawn from the
// weights and activations the front end already holds (no kernel round trip per hover).
//
// renderDetail(host, ctx) builds the panel for ctx.selection's neuron; update(ctx) redraws in
// place for a new image, colour scale or position, and rebuilds for another neuron.

import { type ColorRanges, colorRanges, extentOf } from "../colors";
import { getLayer } from "../math";
import type { Network } from "../payload";
import { ActivationView } from "./activation";
import { ConvView } from "./conv";
import { DenseView, isOutputLayer } from "./dense";
import { el, throttle } from "./dom";
import { InputView } from "./input";
import { PoolView } from "./pool";
import type { DetailContext, DetailView, KindView, Selection, ViewEnv } from "./types";
import "./detail.css";

export type { DetailContext, DetailView, Selection } from "./types";

export type DetailKind = "input" | "conv" | "activation" | "pool" | "dense" | "output";

/** Which view explains a neuron of `layer`. */
export function detailKind(network: Network, layer: string): DetailKind | null {
  if (layer === "input") return "input";
  const spec = network.layers.find((l) => l.name === layer);
  if (!spec) return null;
  if (spec.kind === "dense") return isOutputLayer(network, layer) ? "output" : "dense";
  if (spec.kind === "conv" || spec.kind === "activation" || spec.kind === "pool") return spec.kind;
  return null;
}

const TITLES: Record<DetailKind, string> = {
  input: "Input channel",
  conv: "Convolution",
  activation: "Activation",
  pool: "Pooling",
  dense: "Dense",
  output: "Output: logit and softmax",
};

export function renderDetail(host: HTMLElement, ctx: DetailContext): DetailView {
  const title = el("h3", { class: "cnnx-detail-title", id: `cnnx-detail-title-${Math.random().toString(36).slice(2, 8)}` });
  const close = el("button", { type: "button", class: "cnnx-detail-close", "aria-label": "close the detail view (Esc)", title: "close (Esc)" }, "×");
  const body = el("div", { class: "cnnx-detail-body" });
  const root = el(
    "section",
    { class: "cnnx-detail", tabindex: -1, role: "region", "aria-labelledby": title.id },
    el("header", { class: "cnnx-detail-head" }, title, close),
    body,
  );
  host.append(root);

  let current = ctx;
  let view: KindView | null = null;
  let key = "";
  let rangeCache: { seq: number; scale: string; network: Network; ranges: ColorRanges } | null = null;

  const sendPos = throttle((sel: Selection) => current.select(sel), 150);
  const env: ViewEnv = {
    report(y, x, now) {
      const sel = { layer: current.selection.layer, index: current.selection.index, y, x };
      sendPos(sel);
      if (now) sendPos.flush();
    },
    selectNeuron(layer, index) {
      sendPos.cancel();
      current.select({ layer, index });
    },
    extent(c, layer, index) {
      if (!rangeCache || rangeCache.seq !== c.activations.seq || rangeCache.scale !== c.colorScale || rangeCache.network !== c.network) {
        rangeCache = { seq: c.activations.seq, scale: c.colorScale, network: c.network, ranges: colorRanges(c.network, c.activations, c.colorScale) };
      }
      return extentOf(rangeCache.ranges, layer, index);
    },
  };

  const build = (c: DetailContext) => {
    view?.destroy();
    view = null;
    const kind = detailKind(c.network, c.selection.layer);
    root.dataset.layer = c.selection.layer;
    root.dataset.kind = kind ?? "none";
    root.dataset.index = String(c.selection.index);
    key = `${c.selection.layer}/${c.selection.index}/${kind}`;
    if (!kind) {
      title.textContent = c.selection.layer;
      body.replaceChildren(el("p", { class: "cnnx-note" }, `No detail view for layer ${c.selection.layer}.`));
      return;
    }
    const spec = kind === "input" ? null : getLayer(c.network, c.selection.layer);
    const what = kind === "output" ? `“${c.network.classes[c.selection.index] ?? c.selection.index}”` : `neuron ${c.selection.index}`;
    const fn = spec?.function ? ` (${spec.function})` : "";
    title.textContent = `${TITLES[kind]}${fn}: ${c.selection.layer} ${what}`;
    try {
      view =
        kind === "input" ? new InputView(c, env)
        : kind === "conv" ? new ConvView(c, env)
        : kind === "activation" ? new ActivationView(c, env)
        : kind === "pool" ? new PoolView(c, env)
        : new DenseView(c, env);
      body.replaceChildren(view.root);
    } catch (err) {
      body.replaceChildren(el("p", { class: "cnnx-error-inline", role: "alert" }, `Cannot explain this neuron: ${(err as Error).message}`));
    }
  };

  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      sendPos.cancel();
      current.select(null);
      return;
    }
    const t = e.target as HTMLElement | null;
    const tag = t?.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || t?.closest(".cnnx-hyper")) return;
    const d: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (d[e.key] && view?.move) {
      if (view.move(...d[e.key])) {
        e.preventDefault();
        e.stopPropagation();
      }
    } else if ((e.key === " " || e.key === "k") && tag !== "BUTTON" && view?.toggle) {
      if (view.toggle()) {
        e.preventDefault();
        e.stopPropagation();
      }
    }
  };
  root.addEventListener("keydown", onKey);
  close.addEventListener("click", () => {
    sendPos.cancel();
    current.select(null);
  });

  build(ctx);
  root.focus({ preventScroll: true });

  return {
    update(c: DetailContext) {
      current = c;
      const kind = detailKind(c.network, c.selection.layer);
      if (`${c.selection.layer}/${c.selection.index}/${kind}` !== key || !view) build(c);
      else view.update(c);
    },
    destroy() {
      sendPos.cancel();
      view?.destroy();
      view = null;
      root.removeEventListener("keydown", onKey);
      root.remove();
    },
  };
}
