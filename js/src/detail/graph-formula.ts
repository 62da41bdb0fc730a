// The formula cards of the graph layers: add (its summands and the sum), batch norm (normalise,
// scale, shift, and the folded per-channel a·x + b), concat (where the channel comes from) and
// global pooling (a whole map reduced to one number). Same conventions as formula.ts: shown
// parts add up to the shown total, full values on hover, one `cnnx-math-output` per card.

import { divergingCss, safeExtent, textColorOn } from "../colors";
import { addAt, batchnormAt, concatParts, concatSource, fmt, getLayer, globalPoolAt, inputName, roundToSum } from "../math";
import type { Activations, LayerSpec, Network } from "../payload";
import { h } from "../ui/dom";
import type { Formula, FormulaOptions } from "./index";

function head(title: string, facts: string): HTMLElement[] {
  return [h("h4", { class: "cnnx-card-title" }, title), h("p", { class: "cnnx-facts" }, facts)];
}

function output(value: number, shown: string, y: number, x: number, title: string): HTMLElement {
  return h("span", { class: "cnnx-val cnnx-math-output", "data-value": String(value), "data-y": String(y), "data-x": String(x), title }, shown);
}

/** A labelled number tinted like its map (a term of a sum). */
function term(label: string, value: number, shown: string, extent: number, cls = ""): HTMLElement {
  const v = h("span", { class: "cnnx-val", title: String(value) }, shown);
  const css = divergingCss(value, safeExtent(extent));
  v.style.background = css;
  v.style.color = textColorOn(css);
  return h("span", { class: `cnnx-term ${cls}` }, h("small", {}, label), v);
}

const op = (t: string) => h("span", { class: "cnnx-op" }, t);

abstract class Card implements Formula {
  readonly root: HTMLElement;
  protected readonly layer: LayerSpec;
  protected readonly body: HTMLElement;
  protected y = 0;
  protected x = 0;

  constructor(
    protected network: Network,
    protected acts: Activations,
    protected readonly o: FormulaOptions,
    kind: string,
    facts: string,
  ) {
    this.layer = getLayer(network, o.layer);
    this.body = h("div", { class: "cnnx-graph-body" });
    this.root = h("div", { class: `cnnx-card cnnx-card-${kind}` }, ...head(`${o.layer} neuron ${o.index}`, facts), this.body);
  }

  protected get spatial(): boolean {
    return this.layer.output_shape.length === 3;
  }

  protected at(): string {
    return this.spatial ? `at (${this.y}, ${this.x})` : "";
  }

  abstract show(y: number, x: number): void;

  /** The card did not fit its room: drop the description (the numbers say it all). */
  shrink(): boolean {
    const facts = this.root.querySelector<HTMLElement>(".cnnx-facts");
    if (!facts || facts.hidden) return false;
    facts.hidden = true;
    return true;
  }

  update(network: Network, acts: Activations): void {
    this.network = network;
    this.acts = acts;
    this.show(this.y, this.x);
  }

  destroy(): void {}
}

// ---- add ---------------------------------------------------------------------------------------

export class AddFormula extends Card {
  constructor(network: Network, acts: Activations, o: FormulaOptions) {
    const m = addAt(network, acts, o.layer, o.index, 0, 0);
    super(network, acts, o, "add", `Adds the same position of its ${m.inputs.length} inputs (${m.inputs.join(" + ")}), element by element: a residual (skip) connection.`);
  }

  show(y: number, x: number): void {
    this.y = y;
    this.x = x;
    const m = addAt(this.network, this.acts, this.o.layer, this.o.index, y, x);
    const D = 4;
    const r = roundToSum(m.terms, m.total, D);
    const row: (Node | string)[] = [];
    m.terms.forEach((v, k) => {
      if (k) row.push(op("+"));
      row.push(term(`${m.inputs[k]}[${this.o.index}]`, v, fmt(r.parts[k], D), this.o.extent(m.inputs[k], this.o.index), "cnnx-add-term"));
    });
    row.push(op("="), h("span", { class: "cnnx-term cnnx-term-out" }, h("small", {}, "sum"), output(m.total, fmt(r.total, D), y, x, `${this.o.layer}[${this.o.index}] ${this.at()} = ${m.total}`)));
    this.body.replaceChildren(h("div", { class: "cnnx-eq-pos" }, this.spatial ? `at (${y}, ${x}):` : ""), h("div", { class: "cnnx-math-total cnnx-add-eq", role: "group", "aria-label": "the summands and their sum" }, ...row));
  }
}

// ---- batch norm --------------------------------------------------------------------------------

export class NormFormula extends Card {
  constructor(network: Network, acts: Activations, o: FormulaOptions) {
    super(network, acts, o, "batchnorm", "At inference: normalise with the running mean μ and variance σ², scale by γ, shift by β. Per channel, one straight line a·x + b.");
  }

  show(y: number, x: number): void {
    this.y = y;
    this.x = x;
    const m = batchnormAt(this.network, this.acts, this.o.layer, this.o.index, y, x);
    const D = 4;
    const v = (n: number, cls = "") => h("span", { class: `cnnx-val ${cls}`, title: String(n) }, fmt(n, D));
    // A negative number after an operator gets parentheses: "x − (−0.13)", not "x − −0.13".
    const p = (n: number, cls = ""): (Node | string)[] => (n < 0 ? ["(", v(n, cls), ")"] : [v(n, cls)]);
    const src = inputName(this.network, this.o.layer);
    const xv = term("", m.input, fmt(m.input, D), this.o.extent(src, this.o.index), "cnnx-bn-x");
    const folded = m.a * m.input + m.b;
    this.body.replaceChildren(
      h("div", { class: "cnnx-eq-pos" }, `x = ${src}[${this.o.index}]${this.spatial ? ` at (${y}, ${x})` : ""} = `, xv),
      h(
        "div",
        { class: "cnnx-bn-step", "data-step": "normalise" },
        h("span", { class: "cnnx-bn-label" }, "normalise"),
        "x̂ = (x − μ) / √(σ² + ε) = (",
        v(m.input),
        " − ",
        ...p(m.mean),
        ") / √(",
        v(m.variance),
        ` + ${m.epsilon}) = `,
        v(m.normalised, "cnnx-bn-norm"),
      ),
      h(
        "div",
        { class: "cnnx-bn-step", "data-step": "scale-shift" },
        h("span", { class: "cnnx-bn-label" }, "scale, shift"),
        "y = γ · x̂ + β = ",
        v(m.scale),
        " · ",
        ...p(m.normalised),
        " + ",
        ...p(m.shift),
        " = ",
        output(m.output, fmt(m.output, D), y, x, `${this.o.layer}[${this.o.index}] ${this.at()} = ${m.output}`),
      ),
      h(
        "div",
        { class: "cnnx-bn-step cnnx-bn-folded", "data-step": "folded" },
        h("span", { class: "cnnx-bn-label" }, "folded"),
        "y = a · x + b = ",
        v(m.a, "cnnx-bn-a"),
        " · ",
        ...p(m.input),
        " + ",
        ...p(m.b, "cnnx-bn-b"),
        " = ",
        h("span", { class: "cnnx-val cnnx-bn-folded-out", "data-value": String(folded), title: String(folded) }, fmt(folded, D)),
        h("div", { class: "cnnx-bn-def" }, "a = γ / √(σ² + ε), b = β − a·μ (one pair per channel)"),
      ),
    );
  }
}

// ---- concat ------------------------------------------------------------------------------------

export class ConcatFormula extends Card {
  constructor(network: Network, acts: Activations, o: FormulaOptions) {
    const parts = concatParts(network, o.layer);
    super(network, acts, o, "concat", `Concatenation stacks its inputs' channels: ${parts.map((p) => `${p.count === 1 ? `channel ${p.offset}` : `channels ${p.offset}–${p.offset + p.count - 1}`} from ${p.layer}`).join(", ")}. Nothing is computed: values are copied.`);
  }

  show(y: number, x: number): void {
    this.y = y;
    this.x = x;
    const s = concatSource(this.network, this.o.layer, this.o.index);
    const v = this.acts.layers.get(s.layer);
    let value = Number.NaN;
    if (v) {
      const [, hh, ww] = v.shape;
      value = v.shape.length === 3 ? v.values[(s.channel * hh + y) * ww + x] : v.values[s.channel];
    }
    const parts = concatParts(this.network, this.o.layer).map((p) =>
      h("li", { class: p.input === s.input ? "cnnx-concat-from" : "", "data-input": p.layer }, `${p.layer}: channels ${p.offset}–${p.offset + p.count - 1}`),
    );
    this.body.replaceChildren(
      h("div", { class: "cnnx-concat-src" }, `channel ${this.o.index} = channel ${s.channel} of ${s.layer} (input ${s.input + 1}, from channel ${s.offset} on)`),
      h(
        "div",
        { class: "cnnx-eq-val" },
        `${this.o.layer}[${this.o.index}] ${this.at()} = ${s.layer}[${s.channel}] ${this.at()} = `,
        output(value, fmt(value, 4), y, x, String(value)),
      ),
      h("ul", { class: "cnnx-concat-parts" }, ...parts),
    );
  }
}

// ---- global pooling ----------------------------------------------------------------------------

export class GlobalPoolFormula extends Card {
  constructor(network: Network, acts: Activations, o: FormulaOptions) {
    const layer = getLayer(network, o.layer);
    const [hh, ww] = layer.input_shape;
    const avg = layer.function !== "max";
    super(network, acts, o, "global_pool", `Global ${avg ? "average" : "max"} pooling: the whole ${hh}×${ww} map of ${inputName(network, o.layer)}[${o.index}] reduced to one number, its ${avg ? "mean" : "largest value"}.`);
  }

  show(y: number, x: number): void {
    this.y = y;
    this.x = x;
    const m = globalPoolAt(this.network, this.acts, this.o.layer, this.o.index);
    const out = output(m.result, fmt(m.result, 4), 0, 0, String(m.result));
    const line =
      m.op === "avg"
        ? h("div", { class: "cnnx-eq-val" }, `mean = Σ / ${m.h}×${m.w} = `, h("span", { class: "cnnx-val", title: String(m.sum) }, fmt(m.sum, 4)), ` / ${m.count} = `, out)
        : h("div", { class: "cnnx-eq-val" }, `max over ${m.h}×${m.w} = `, out, ` (at (${m.argY}, ${m.argX}))`);
    this.body.replaceChildren(line, h("p", { class: "cnnx-pool-detail" }, `The map's values range from ${fmt(Math.min(...m.map), 4)} to ${fmt(m.max, 4)}.`));
  }
}
