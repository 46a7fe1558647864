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
