import { describe, expect, it } from "vitest";
import { decode, halfToFloat, slice2d } from "../src/lib/buffers";
import { TokenStrip } from "../src/lib/tokens";

describe("buffers", () => {
  it("decodes uint8 with scale and offset", () => {
    const a = decode({ shape: [2, 2], dtype: "uint8", scale: 0.5, offset: -1, data: new Uint8Array([0, 1, 2, 255]) })!;
    expect(Array.from(a.values)).toEqual([-1, -0.5, 0, 126.5]);
  });
  it("decodes float16 little-endian (DataView, as ipywidgets delivers)", () => {
    // 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff
    const bytes = new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b]);
    const a = decode({ shape: [4], dtype: "float16", scale: 1, offset: 0, data: new DataView(bytes.buffer) })!;
    expect(Array.from(a.values)).toEqual([1, -2, 0.5, 65504]);
    expect(halfToFloat(0x0001)).toBeCloseTo(5.96e-8, 10);
  });
  it("decodes exact integers: int32 (negative too) and uint16, little-endian", () => {
    const i32 = new DataView(new ArrayBuffer(12));
    [-1, 70000, 16777216].forEach((v, i) => i32.setInt32(4 * i, v, true));
    expect(Array.from(decode({ shape: [3], dtype: "int32", scale: 1, offset: 0, data: i32 })!.values)).toEqual([-1, 70000, 16777216]);
    const u16 = new DataView(new ArrayBuffer(4));
    u16.setUint16(0, 65535, true);
    u16.setUint16(2, 300, true);
    expect(Array.from(decode({ shape: [2], dtype: "uint16", scale: 1, offset: 0, data: u16 })!.values)).toEqual([65535, 300]);
  });
  it("decodes base64 from static exports", () => {
    const a = decode({ shape: [3], dtype: "uint8", scale: 1, offset: 0, data: { __b64__: btoa("\x01\x02\x03") } })!;
    expect(Array.from(a.values)).toEqual([1, 2, 3]);
  });
  it("slices the trailing 2-D block", () => {
    const a = { shape: [2, 3, 2, 2], values: Float32Array.from({ length: 24 }, (_, i) => i) };
    expect(Array.from(slice2d(a, 1, 2).values)).toEqual([20, 21, 22, 23]);
  });
});

describe("token strip", () => {
  it("shows token text literally, never as markup", () => {
    const strip = new TokenStrip(['<img src=x onerror="window.__xss=1">', "</script>", "&amp;"]);
    document.body.append(strip.el);
    expect(strip.el.querySelectorAll("img").length).toBe(0);
    expect(Array.from(strip.el.children).map((e) => e.textContent)).toEqual(['<img src=x onerror="window.__xss=1">', "</script>", "&amp;"]);
    expect((window as any).__xss).toBeUndefined();
  });
});
