import { describe, expect, it } from "vitest";
import { bytesOf, decode, fromBase64, halfToFloat, slice2d } from "../src/lib/buffers";

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
  it("decodes float32 little-endian and keeps the shape", () => {
    const f32 = new DataView(new ArrayBuffer(8));
    f32.setFloat32(0, 1.5, true);
    f32.setFloat32(4, -0.25, true);
    const a = decode({ shape: [1, 2], dtype: "float32", scale: 1, offset: 0, data: f32 })!;
    expect(a.shape).toEqual([1, 2]);
    expect(Array.from(a.values)).toEqual([1.5, -0.25]);
  });
  it("reads a view into a larger buffer at its own offset", () => {
    const big = new Uint8Array([9, 9, 1, 2, 3, 9]);
    expect(Array.from(bytesOf(new DataView(big.buffer, 2, 3)))).toEqual([1, 2, 3]);
    expect(Array.from(bytesOf(big.buffer))).toEqual([9, 9, 1, 2, 3, 9]);
    const f16 = new Uint8Array([0xff, 0x00, 0x3c, 0xff]); // 1.0 at byte offset 1
    expect(Array.from(decode({ shape: [1], dtype: "float16", scale: 1, offset: 0, data: f16.subarray(1, 3) })!.values)).toEqual([1]);
  });
  it("decodes half-precision specials", () => {
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(halfToFloat(0x7e00)).toBeNaN();
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });
  it("returns null for nothing, and refuses short or unknown buffers", () => {
    expect(decode(null)).toBeNull();
    expect(decode(undefined)).toBeNull();
    expect(() => decode({ shape: [3], dtype: "float32", scale: 1, offset: 0, data: new Uint8Array(8) })).toThrow(/needs 12 bytes, got 8/);
    expect(() => bytesOf("abc")).toThrow(/cannot decode/);
    expect(Array.from(fromBase64(btoa("\x00\xff")))).toEqual([0, 255]);
  });
});
