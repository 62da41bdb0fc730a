// @vitest-environment happy-dom
// A saved widget with no kernel: buffers go back to their paths, the page-side model behaves like
// anywidget's, and what would need the kernel answers with the offline reason.
import { describe, expect, it, vi } from "vitest";
import { LocalModel, mountSaved, OFFLINE_REASON, restoreBuffers } from "../src/export/saved";

describe("restoreBuffers", () => {
  it("puts a DataView with the decoded bytes at each path, leaving the input untouched", () => {
    const saved = {
      state: { _activations: { seq: 3, layers: [{ name: "x" }] }, other: 1 },
      buffers: [{ path: ["_activations", "data"], encoding: "base64", data: btoa("\x01\x02\xff") }],
    };
    const state = restoreBuffers(saved) as { _activations: { data: DataView; seq: number } };
    const view = state._activations.data;
    expect(view).toBeInstanceOf(DataView);
    expect([...new Uint8Array(view.buffer, view.byteOffset, view.byteLength)]).toEqual([1, 2, 255]);
    expect(state._activations.seq).toBe(3);
    expect("data" in saved.state._activations).toBe(false);
  });

  it("ignores a buffer whose path does not exist", () => {
    const state = restoreBuffers({ state: { a: 1 }, buffers: [{ path: ["missing", "deep"], data: "AA==" }] });
    expect(state).toEqual({ a: 1 });
  });
});

describe("LocalModel", () => {
  it("emits change:key only when the value changes, and off() removes the listener", () => {
    const m = new LocalModel({ selected: null, color_scale: "unit" });
    const fn = vi.fn();
    m.on("change:selected", fn);
    m.set("selected", { layer: "conv_1_1", index: 2 });
    m.set("selected", { layer: "conv_1_1", index: 2 });
    expect(fn).toHaveBeenCalledTimes(1);
    expect(m.get("selected")).toEqual({ layer: "conv_1_1", index: 2 });
    m.off("change:selected", fn);
    m.set("selected", null);
    expect(fn).toHaveBeenCalledTimes(1);
  });
});

describe("mountSaved", () => {
  it("renders with a page-side model; an upload sets the offline reason as the error", () => {
    const el = document.createElement("div");
    let model: LocalModel | null = null;
    const render = vi.fn(({ model: m, el: host }: { model: unknown; el: HTMLElement }) => {
      model = m as LocalModel;
      const root = document.createElement("div");
      root.className = "cnnx-root";
      root.innerHTML = '<div class="cnnx-topbar"><button class="cnnx-upload"></button><button class="cnnx-thumb"></button></div>';
      host.append(root);
      return () => root.remove();
    });
    const cleanup = mountSaved(el, { state: { busy: true, error: "" } }, render);
    expect(render).toHaveBeenCalledTimes(1);
    expect(model!.get("busy")).toBe(false);
    for (const b of el.querySelectorAll("button")) expect((b as HTMLButtonElement).disabled).toBe(true);
    expect(el.querySelector(".cnnx-offline-note")?.textContent).toBe(OFFLINE_REASON);
    model!.send({ type: "upload", name: "x.png" });
    expect(model!.get("error")).toBe(OFFLINE_REASON);
    cleanup();
    expect(el.querySelector(".cnnx-root")).toBeNull();
  });
});

describe("kernel-only traits in a saved copy", () => {
  it("are refused with the offline reason, the state and listeners untouched", () => {
    const el = document.createElement("div");
    let model: LocalModel | null = null;
    mountSaved(el, { state: { ablated: {}, error: "" } }, ({ model: m }) => {
      model = m as LocalModel;
    });
    const fn = vi.fn();
    model!.on("change:ablated", fn);
    model!.set("ablated", { conv_1_1: [2] });
    expect(model!.get("ablated")).toEqual({});
    expect(fn).not.toHaveBeenCalled();
    expect(model!.get("error")).toBe(OFFLINE_REASON);
    model!.set("error", "");
    model!.send({ type: "show_top", rank: 1 });
    expect(model!.get("error")).toBe(OFFLINE_REASON);
  });
});
