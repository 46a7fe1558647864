import { describe, expect, it } from "vitest";
import { decode } from "../src/lib/buffers";
import { createModel, revive } from "../src/lib/model";

describe("export model", () => {
  it("revives base64 buffers once and leaves revived ones alone (nested exports revive twice)", () => {
    const state = { m: { shape: [2], dtype: "uint8", scale: 1, offset: 0, data: { __b64__: btoa("\x07\x09") } } };
    const once = revive(state) as typeof state;
    const twice = revive(once) as typeof state;
    expect(Array.from(decode(twice.m as never)!.values)).toEqual([7, 9]);
  });
  it("emits change events on set, and off() removes listeners", () => {
    const m = createModel({ selected_token: -1 });
    const seen: unknown[] = [];
    const cb = (v: unknown) => seen.push(v);
    m.on("change:selected_token", cb);
    m.set("selected_token", 3);
    m.set("selected_token", 3); // unchanged: no event
    m.off("change:selected_token", cb);
    m.set("selected_token", 4);
    expect(seen).toEqual([3]);
    expect(m.get("selected_token")).toBe(4);
  });
});

describe("export model events", () => {
  it("emits a generic change event too, and off(event) / off() remove listeners", () => {
    const m = createModel({ a: 1, b: 2 });
    const seen: string[] = [];
    m.on("change", () => seen.push("any"));
    m.on("change:a", () => seen.push("a"));
    m.on("change:b", () => seen.push("b"));
    m.set("a", 5);
    expect(seen).toEqual(["a", "any"]);
    m.off("change:a");
    m.set("a", 6);
    expect(seen).toEqual(["a", "any", "any"]);
    m.off();
    m.set("b", 7);
    expect(seen).toEqual(["a", "any", "any"]);
    expect(m.get("b")).toBe(7);
  });
  it("revives buffers nested in arrays and objects, and leaves other values alone", () => {
    const state = { list: [{ data: { __b64__: btoa("\x01") } }], n: 3, s: "x", none: null };
    const r = revive(state) as { list: { data: DataView }[]; n: number; s: string; none: null };
    expect(r.list[0].data).toBeInstanceOf(DataView);
    expect(r.list[0].data.getUint8(0)).toBe(1);
    expect([r.n, r.s, r.none]).toEqual([3, "x", null]);
  });
});
