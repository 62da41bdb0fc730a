// @vitest-environment happy-dom
// The why / what if / which images panel with a fake anywidget model: the on/off controls set
// `ablated` (and never select), the O key works on a focused neuron, marks follow the trait, the
// overlay is drawn with its legend numbers, and a click on a top image asks the kernel for it.

import { afterEach, describe, expect, it, vi } from "vitest";
import widget from "../src/index";
import { heatRgba, isOff, toggled } from "../src/whyif/whyif";
import { activationsFor, messages, smallNet } from "./overview-builders";

type Listener = () => void;

function mount(extra: Record<string, unknown> = {}) {
  const net = smallNet(4);
  const first = messages(net, activationsFor(net, { seq: 1, image: "class1" }));
  const state: Record<string, unknown> = {
    _network: first.network,
    _activations: first.activations,
    _thumbnails: [],
    selected: null,
    color_scale: "unit",
    error: "",
    busy: false,
    ablated: {},
    overlay: "none",
    overlay_target: null,
    _overlay: {},
    _top: {},
    ...extra,
  };
  const listeners = new Map<string, Listener[]>();
  const sent: unknown[] = [];
  const model = {
    get: (k: string) => state[k],
    set: (k: string, v: unknown) => {
      state[k] = v;
      for (const f of listeners.get(`change:${k}`) ?? []) f();
    },
    on: (e: string, f: Listener) => listeners.set(e, [...(listeners.get(e) ?? []), f]),
    off: (e: string, f: Listener) => listeners.set(e, (listeners.get(e) ?? []).filter((g) => g !== f)),
    save_changes: vi.fn(),
    // the connection watch's pings and the picture feature's view hello are tested elsewhere
    send: (content: unknown) => ["ping", "view"].includes((content as { type?: string }).type ?? "") || sent.push(content),
    widget_manager: {} as never,
  };
  const el = document.createElement("div");
  document.body.append(el);
  widget.render({ model: model as never, el, signal: new AbortController().signal } as never);
  const root = el.querySelector<HTMLElement>(".cnnx-root")!;
  return { root, model, state, sent };
}

const frame = () => new Promise((r) => setTimeout(r, 100));

afterEach(() => document.body.replaceChildren());

describe("what if", () => {
  it("toggled adds and removes, sorted, and drops empty layers", () => {
    expect(toggled({}, "c1", 3)).toEqual({ c1: [3] });
    expect(toggled({ c1: [3] }, "c1", 1)).toEqual({ c1: [1, 3] });
    expect(toggled({ c1: [3], c2: [0] }, "c1", 3)).toEqual({ c2: [0] });
    expect(isOff({ c1: [1, 3] }, "c1", 3)).toBe(true);
    expect(isOff({ c1: [1, 3] }, "c2", 3)).toBe(false);
  });

  it("a neuron's on/off button sets ablated without selecting; marks follow the trait", async () => {
    const { root, state, model } = mount();
    await frame();
    const neuron = root.querySelector<HTMLElement>('.cnnx-neuron[data-layer="c1"][data-index="2"]')!;
    const button = neuron.querySelector<HTMLButtonElement>("button.cnnx-whyif-toggle")!;
    expect(button.getAttribute("aria-label")).toBe("switch c1 neuron 2 off (key O)");
    expect(root.querySelector('.cnnx-neuron[data-layer="input"] button.cnnx-whyif-toggle')).toBeNull();
    button.click();
    expect(state.ablated).toEqual({ c1: [2] });
    expect(state.selected).toBeNull();
    expect(model.save_changes).toHaveBeenCalled();
    expect(neuron.classList.contains("cnnx-whyif-off")).toBe(true);
    expect(root.querySelector<HTMLElement>(".cnnx-whyif")!.dataset.off).toBe("1");
    expect(root.querySelector(".cnnx-whyif-off-text")!.textContent).toBe("1 off: c1 2");
    // From Python: another set of neurons; the marks move.
    model.set("ablated", { out: [0, 1] });
    expect(neuron.classList.contains("cnnx-whyif-off")).toBe(false);
    expect(root.querySelectorAll(".cnnx-neuron.cnnx-whyif-off")).toHaveLength(2);
    root.querySelector<HTMLButtonElement>(".cnnx-whyif-reset")!.click();
    expect(state.ablated).toEqual({});
    expect(root.querySelector<HTMLButtonElement>(".cnnx-whyif-reset")!.disabled).toBe(true);
  });

  it("O on a focused neuron switches it; the selected neuron has its own button", async () => {
    const { root, state, model } = mount();
    await frame();
    const neuron = root.querySelector<HTMLElement>('.cnnx-neuron[data-layer="c2"][data-index="1"]')!;
    neuron.dispatchEvent(new KeyboardEvent("keydown", { key: "o", bubbles: true }));
    expect(state.ablated).toEqual({ c2: [1] });
    neuron.dispatchEvent(new KeyboardEvent("keydown", { key: "O", bubbles: true }));
    expect(state.ablated).toEqual({});
    const own = root.querySelector<HTMLButtonElement>(".cnnx-whyif-toggle-selected")!;
    expect(own.disabled).toBe(true);
    model.set("selected", { layer: "c2", index: 3 });
    expect(own.disabled).toBe(false);
    own.click();
    expect(state.ablated).toEqual({ c2: [3] });
    expect(own.textContent).toBe("Switch selected neuron on");
  });
});

describe("why and which images", () => {
  it("draws the overlay with legend numbers and over the input channels", async () => {
    const data = new Float32Array(8 * 8).map((_, i) => i / 63);
    const image = new Uint8Array(8 * 8 * 3).fill(100);
    const { root, state, model } = mount();
    await frame();
    const panel = root.querySelector<HTMLElement>(".cnnx-whyif")!;
    expect(root.querySelector<HTMLElement>(".cnnx-whyif-figure")!.hidden).toBe(true);
    const select = root.querySelector<HTMLSelectElement>(".cnnx-whyif-overlay")!;
    select.value = "grad_cam";
    select.dispatchEvent(new Event("change"));
    expect(state.overlay).toBe("grad_cam");
    // The kernel answers with the map.
    model.set("_overlay", {
      kind: "grad_cam", target: "class1", layer: "c2", caption: "Grad-CAM of class1 at c2, upsampled",
      shape: [8, 8], source_shape: [4, 4], min: 0, max: 0.25,
      data: new DataView(data.buffer), image: new DataView(image.buffer),
    });
    expect(panel.dataset.overlayShown).toBe("grad_cam:class1");
    expect(root.querySelector<HTMLElement>(".cnnx-whyif-figure")!.hidden).toBe(false);
    const ticks = [...root.querySelectorAll(".cnnx-whyif-tick")].map((t) => t.textContent);
    expect(ticks).toEqual(["0", "0.125", "0.25"]);
    expect(root.querySelector(".cnnx-whyif-legend-caption")!.textContent).toMatch(/Grad-CAM of class1/);
    expect(root.querySelectorAll('.cnnx-neuron[data-layer="input"] canvas.cnnx-whyif-heat')).toHaveLength(3);
    model.set("_overlay", {});
    expect(root.querySelectorAll("canvas.cnnx-whyif-heat")).toHaveLength(0);
    expect(root.querySelector<HTMLElement>(".cnnx-whyif-figure")!.hidden).toBe(true);
  });

  it("heat ramp: transparent at 0, opaque red at 1", () => {
    expect(heatRgba(0)[3]).toBe(0);
    expect(heatRgba(1)).toEqual([255, 50, 0, 242]);
    expect(heatRgba(0.5)[3]).toBeGreaterThan(heatRgba(0.1)[3]);
  });

  it("the strip shows each top image with its field; a click asks for that image", async () => {
    const png = new DataView(new Uint8Array([137, 80, 78, 71]).buffer);
    const top = {
      layer: "c2", index: 1, shape: [8, 8],
      items: [
        { rank: 0, image_index: 12, value: 3.5, y: 1, x: 2, field: [0, 4, 2, 8], png },
        { rank: 1, image_index: 3, value: 2, y: 0, x: 0, field: [0, 8, 0, 8], png },
      ],
    };
    const { root, sent } = mount({ _top: top });
    const buttons = [...root.querySelectorAll<HTMLButtonElement>(".cnnx-whyif-top")];
    expect(buttons.map((b) => b.dataset.imageIndex)).toEqual(["12", "3"]);
    const field = buttons[0].querySelector<HTMLElement>(".cnnx-whyif-field")!;
    expect([field.style.top, field.style.height, field.style.left, field.style.width]).toEqual(["0%", "50%", "25%", "75%"]);
    buttons[1].click();
    expect(sent).toEqual([{ type: "show_top", rank: 1 }]);
  });
});
