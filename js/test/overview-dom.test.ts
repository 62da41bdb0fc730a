// @vitest-environment happy-dom
// The widget in a DOM with a fake anywidget model: the test hooks of docs/widget-spec.md, what a
// click sends back, coalescing of updates, and readable payload errors.

import { afterEach, describe, expect, it, vi } from "vitest";
import widget from "../src/index";
import { activationsFor, messages, smallNet } from "./overview-builders";
import { PROTOCOL_VERSION } from "../src/payload";

type Listener = () => void;

function fakeModel(state: Record<string, unknown>) {
  const listeners = new Map<string, Listener[]>();
  const sent: { content: unknown; buffers?: unknown[] }[] = [];
  const model = {
    get: (k: string) => state[k],
    set: (k: string, v: unknown) => {
      state[k] = v;
      for (const f of listeners.get(`change:${k}`) ?? []) f();
    },
    on: (e: string, f: Listener) => listeners.set(e, [...(listeners.get(e) ?? []), f]),
    off: (e: string, f: Listener) => listeners.set(e, (listeners.get(e) ?? []).filter((g) => g !== f)),
    save_changes: vi.fn(),
    // the connection watch's pings (ui/connection.ts, connection.test.ts) and the picture
    // feature's view hello/goodbye (export/menu.ts) are not what these tests look at
    send: (content: unknown, _cb?: unknown, buffers?: unknown[]) =>
      ["ping", "view"].includes((content as { type?: string }).type ?? "") || sent.push({ content, buffers }),
    widget_manager: {} as never,
  };
  return { model, sent, listeners };
}

const net = smallNet(4);
const first = messages(net, activationsFor(net, { seq: 1, image: "class1" }));

function mount(extra: Record<string, unknown> = {}) {
  const state: Record<string, unknown> = {
    _network: first.network,
    _activations: first.activations,
    _thumbnails: [
      { name: "a.jpeg", label: "class1", data: new DataView(new ArrayBuffer(4)) },
      { name: "b.jpeg", label: "other", data: new DataView(new ArrayBuffer(4)) },
    ],
    selected: null,
    color_scale: "unit",
    error: "",
    busy: false,
    ...extra,
  };
  const fake = fakeModel(state);
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = widget.render({ model: fake.model as never, el, signal: new AbortController().signal } as never) as () => void;
  const root = el.querySelector<HTMLElement>(".cnnx-root")!;
  return { ...fake, el, root, cleanup, state };
}

const frame = () => new Promise((r) => setTimeout(r, 200));

afterEach(() => {
  document.body.replaceChildren();
});

describe("widget DOM", () => {
  it("draws the first state with the root hooks", () => {
    const { root } = mount();
    expect(root.dataset.ready).toBe("1");
    expect(root.dataset.seq).toBe("1");
    expect(root.dataset.prediction).toBe("class1");
    expect(root.dataset.colorScale).toBe("unit");
    expect(root.dataset.detail).toBe("");
  });

  it("gives every neuron its hooks, one per neuron of every column", () => {
    const { root } = mount();
    const neurons = [...root.querySelectorAll<HTMLElement>("[data-layer][data-index].cnnx-neuron")];
    const per = (l: string) => neurons.filter((n) => n.dataset.layer === l).length;
    expect(per("input")).toBe(3);
    expect(per("c1")).toBe(4);
    expect(per("hidden")).toBe(5);
    expect(per("out")).toBe(4);
    expect(per("flat")).toBe(0);
    expect(per("soft")).toBe(0);
    for (const n of neurons) {
      expect(n.getAttribute("tabindex")).toBe("0");
      expect(n.getAttribute("role")).toBe("button");
      expect(n.getAttribute("aria-label")).toMatch(new RegExp(`^${n.dataset.layer} neuron ${n.dataset.index}`));
    }
    expect(root.querySelector('[data-layer="out"][data-index="2"]')!.getAttribute("aria-label")).toBe("out neuron 2 (class2)");
  });

  it("a click selects the neuron, opens the detail; Esc closes it", async () => {
    const { root, model, state } = mount();
    root.querySelector<HTMLElement>('[data-layer="r1"][data-index="2"]')!.click();
    expect(state.selected).toEqual({ layer: "r1", index: 2 });
    expect(model.save_changes).toHaveBeenCalled();
    expect(root.dataset.detail).toBe("r1");
    expect(root.querySelector(".cnnx-neuron.cnnx-ov-selected")!.getAttribute("data-index")).toBe("2");
    // the neuron that feeds it (one-to-one) comes forward too
    expect([...root.querySelectorAll(".cnnx-ov-feeds")].map((e) => e.getAttribute("data-layer"))).toEqual(["c1"]);
    root.querySelector<HTMLElement>('[data-layer="r1"][data-index="2"]')!.dispatchEvent(
      new KeyboardEvent("keydown", { key: "Escape", bubbles: true }),
    );
    expect(state.selected).toBeNull();
    expect(root.dataset.detail).toBe("");
  });

  it("Enter on a focused neuron selects it; a selection from Python with y/x keeps the neuron", async () => {
    const { root, state, model } = mount();
    root.querySelector<HTMLElement>('[data-layer="c2"][data-index="1"]')!.dispatchEvent(
      new KeyboardEvent("keydown", { key: "Enter", bubbles: true }),
    );
    expect(state.selected).toEqual({ layer: "c2", index: 1 });
    expect(root.dataset.detail).toBe("c2"); // the user's own key: drawn at once
    model.set("selected", { layer: "c2", index: 1, y: 1, x: 0 });
    await frame();
    expect(root.querySelector(".cnnx-ov-selected")!.getAttribute("data-layer")).toBe("c2");
    expect(root.querySelectorAll(".cnnx-ov-feeds")).toHaveLength(4); // all of p1 feed a conv
    expect(root.dataset.detail).toBe("c2");
  });

  it("draws a burst of selections from Python once, the latest", async () => {
    const { root, model } = mount();
    for (let i = 0; i < 3; i++) model.set("selected", { layer: "c2", index: i });
    model.set("selected", { layer: "r1", index: 2 });
    expect(root.dataset.detail).toBe(""); // nothing drawn synchronously
    await frame();
    expect(root.dataset.detail).toBe("r1");
    expect(root.querySelector(".cnnx-neuron.cnnx-ov-selected")!.getAttribute("data-layer")).toBe("r1");
  });

  it("coalesces a burst of updates into one repaint of the latest", async () => {
    const { root, model } = mount();
    let seqWrites = 0;
    new MutationObserver((m) => (seqWrites += m.length)).observe(root, { attributes: true, attributeFilter: ["data-seq"] });
    for (let seq = 2; seq <= 6; seq++) {
      model.set("_activations", messages(net, activationsFor(net, { seq, scale: seq })).activations);
    }
    expect(root.dataset.seq).toBe("1"); // nothing drawn synchronously
    await frame();
    expect(root.dataset.seq).toBe("6");
    expect(seqWrites).toBe(1);
  });

  it("shows a readable error for another payload version instead of crashing", () => {
    const { root } = mount({ _network: { ...first.network, version: 99 } });
    const banner = root.querySelector<HTMLElement>(".cnnx-error")!;
    expect(banner.hidden).toBe(false);
    expect(banner.getAttribute("role")).toBe("alert");
    expect(banner.textContent).toMatch(new RegExp(`payload version ${PROTOCOL_VERSION}, the kernel sent 99`));
    expect(root.dataset.ready).toBe("0");
  });

  it("shows the error trait until dismissed or cleared, and the busy indicator", () => {
    const { root, model } = mount({ error: "Could not use x.png: not an image", busy: true });
    const banner = root.querySelector<HTMLElement>(".cnnx-error")!;
    expect(banner.hidden).toBe(false);
    expect(root.querySelector<HTMLElement>(".cnnx-busy")!.hidden).toBe(false);
    expect(root.dataset.busy).toBe("1");
    root.querySelector<HTMLElement>(".cnnx-error-dismiss")!.click();
    expect(banner.hidden).toBe(true);
    model.set("error", "");
    model.set("error", "another");
    expect(banner.hidden).toBe(false);
    model.set("error", "");
    expect(banner.hidden).toBe(true);
    model.set("busy", false);
    expect(root.querySelector<HTMLElement>(".cnnx-busy")!.hidden).toBe(true);
  });

  it("thumbnails send choose and highlight the current image; the scale control sets color_scale", async () => {
    const { root, sent, state } = mount();
    const thumbs = [...root.querySelectorAll<HTMLButtonElement>("button.cnnx-thumb")];
    expect(thumbs.map((t) => t.dataset.name)).toEqual(["a.jpeg", "b.jpeg"]);
    expect(thumbs[0].classList.contains("cnnx-current")).toBe(true);
    thumbs[1].click();
    expect(sent).toEqual([{ content: { type: "choose", index: 1 }, buffers: undefined }]);
    root.querySelector<HTMLButtonElement>('.cnnx-scale-btn[data-scale="global"]')!.click();
    expect(state.color_scale).toBe("global");
    expect(root.dataset.colorScale).toBe("global");
  });

  it("a dropped file is sent as one upload piece", async () => {
    const { root, sent } = mount();
    const file = new File([new Uint8Array([1, 2, 3])], "cat.png", { type: "image/png" });
    const drop = new Event("drop", { bubbles: true, cancelable: true });
    Object.defineProperty(drop, "dataTransfer", { value: { files: [file], types: ["Files"] } });
    root.dispatchEvent(drop);
    await frame();
    expect(sent).toHaveLength(1);
    expect(sent[0].content).toEqual({ type: "upload-chunk", name: "cat.png", id: expect.any(Number), index: 0, count: 1, size: 3 });
    expect(sent[0].buffers).toHaveLength(1);
    expect((sent[0].buffers![0] as ArrayBuffer).byteLength).toBe(3);
    expect(root.querySelector("input.cnnx-upload-input")!.getAttribute("accept")).toBe("image/*");
  });

  it("cleans up: listeners removed, DOM gone", () => {
    const { el, cleanup, listeners } = mount();
    cleanup();
    expect(el.querySelector(".cnnx-root")).toBeNull();
    expect([...listeners.values()].every((l) => l.length === 0)).toBe(true);
  });
});
