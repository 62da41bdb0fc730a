// @vitest-environment happy-dom
// No silent disconnects: a ping follows what the page sends; no pong in time shows the banner,
// a pong hides it. Files go to the kernel in pieces under JupyterLab's 10 MiB message limit.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConnectionWatch, watchConnection } from "../src/ui/connection";
import { CHUNK_BYTES, sendUpload } from "../src/ui/upload";

type Listener = (...args: unknown[]) => void;

function fakeModel() {
  const listeners = new Map<string, Listener[]>();
  const sent: { content: Record<string, unknown>; buffers?: ArrayBuffer[] }[] = [];
  const model = {
    get: () => undefined,
    set: vi.fn(),
    on: (e: string, f: Listener) => listeners.set(e, [...(listeners.get(e) ?? []), f]),
    off: (e: string, f: Listener) => listeners.set(e, (listeners.get(e) ?? []).filter((g) => g !== f)),
    save_changes: vi.fn(),
    send: (content: Record<string, unknown>, _cb?: unknown, buffers?: ArrayBuffer[]) => sent.push({ content, buffers }),
    widget_manager: {} as never,
  };
  const reply = (msg: unknown) => (listeners.get("msg:custom") ?? []).forEach((f) => f(msg));
  return { model, sent, reply, listeners };
}

describe("ConnectionWatch", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("shows the banner when no pong comes, hides it when one does", () => {
    const { model, sent, reply } = fakeModel();
    const watch = new ConnectionWatch(model as never, 5000);
    const root = document.createElement("div");
    watch.attach(root);
    const m = watchConnection(model as never, watch) as typeof model;
    m.set("selected", 1);
    m.save_changes();
    expect(model.save_changes).toHaveBeenCalledTimes(1);
    expect(sent.map((s) => s.content)).toEqual([{ type: "ping", id: 1 }]);
    vi.advanceTimersByTime(4900);
    expect(watch.el.hidden).toBe(true);
    vi.advanceTimersByTime(200);
    expect(watch.el.hidden).toBe(false);
    expect(root.dataset.connection).toBe("lost");
    expect(watch.el.textContent).toMatch(/re-run the cell/);
    reply({ type: "pong", id: 1 });
    expect(watch.el.hidden).toBe(true);
    expect(root.dataset.connection).toBe("ok");
  });

  it("keeps one ping in flight and pings again for what was sent meanwhile", () => {
    const { model, sent, reply } = fakeModel();
    const watch = new ConnectionWatch(model as never, 5000);
    const m = watchConnection(model as never, watch) as typeof model;
    m.send({ type: "choose", index: 1 });
    m.send({ type: "choose", index: 2 });
    expect(sent.map((s) => s.content.type)).toEqual(["choose", "ping", "choose"]);
    reply({ type: "pong", id: 99 }); // not ours: ignored
    reply({ type: "pong", id: 1 });
    expect(sent.map((s) => s.content.type)).toEqual(["choose", "ping", "choose", "ping"]);
    expect(sent[3].content.id).toBe(2);
    vi.advanceTimersByTime(6000);
    expect(watch.el.hidden).toBe(false);
  });

  it("does not watch a model without a kernel; destroy removes the listener", () => {
    const { model, listeners } = fakeModel();
    const watch = new ConnectionWatch(model as never);
    const local = { ...model, kernelless: true };
    expect(watchConnection(local as never, watch)).toBe(local);
    watch.destroy();
    expect(listeners.get("msg:custom")).toEqual([]);
  });
});

describe("sendUpload", () => {
  it("splits a file into ordered pieces of at most CHUNK_BYTES that add up to it", () => {
    const { model, sent } = fakeModel();
    const size = 2 * CHUNK_BYTES + 123;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 4096) bytes[i] = (i / 4096) & 255;
    expect(sendUpload(model as never, "big.jpg", bytes.buffer)).toBe(3);
    expect(sent.map((s) => s.content.index)).toEqual([0, 1, 2]);
    expect(sent.every((s) => s.content.count === 3 && s.content.size === size && s.content.name === "big.jpg")).toBe(true);
    expect(new Set(sent.map((s) => s.content.id)).size).toBe(1);
    const lengths = sent.map((s) => s.buffers![0].byteLength);
    expect(lengths).toEqual([CHUNK_BYTES, CHUNK_BYTES, 123]);
    const joined = new Uint8Array(size);
    let at = 0;
    for (const s of sent) {
      joined.set(new Uint8Array(s.buffers![0]), at);
      at += s.buffers![0].byteLength;
    }
    let firstDiff = -1;
    for (let i = 0; i < size && firstDiff < 0; i++) if (joined[i] !== bytes[i]) firstDiff = i;
    expect(firstDiff).toBe(-1);
  });

  it("gives each upload its own id, and two pages (module loads) different ones", async () => {
    const ids: unknown[] = [];
    for (let page = 0; page < 3; page++) {
      vi.resetModules();
      const upload = await import("../src/ui/upload");
      const { model, sent } = fakeModel();
      upload.sendUpload(model as never, "a.png", new ArrayBuffer(1));
      upload.sendUpload(model as never, "b.png", new ArrayBuffer(1));
      ids.push(...sent.map((s) => s.content.id));
    }
    expect(ids.every((id) => Number.isSafeInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(6);
  });

  it("sends an empty file as one empty piece", () => {
    const { model, sent } = fakeModel();
    expect(sendUpload(model as never, "e.png", new ArrayBuffer(0))).toBe(1);
    expect(sent[0].content).toMatchObject({ index: 0, count: 1, size: 0 });
  });
});
