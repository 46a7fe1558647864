// Decode arrays packed by llm_widgets.widgets.base.encode_array.
import { size, type NDArray } from "./ndarray";

export interface Packed {
  shape: number[];
  dtype: "uint8" | "float16" | "float32" | "int32" | "uint16";
  scale: number;
  offset: number;
  data: unknown; // DataView | ArrayBuffer | Uint8Array (live) or {__b64__} (static export, revived by the host)
}

/** An Array trait's synced value (llm_widgets.widgets.traits.Array): a packed array with what it is
 *  of (`Of`: the keys its trait declares with `of=`, typed), or {} before it is computed (no
 *  `shape`: decode gives null). */
export type PackedArray<Of = unknown> = Packed & Of;

// NDArray and slice2d live in ./ndarray (indexing); re-exported here, where the views import them from.
export type { NDArray } from "./ndarray";
export { slice2d } from "./ndarray";

/** The bytes of a base64 string (how static exports carry binary buffers). */
export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const ITEM_SIZE: Record<Packed["dtype"], number> = { uint8: 1, float16: 2, uint16: 2, int32: 4, float32: 4 };

export function bytesOf(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data && typeof data === "object" && "__b64__" in data) return fromBase64(String((data as { __b64__: string }).__b64__));
  throw new Error("llm-widgets: cannot decode buffer of type " + typeof data);
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * Math.pow(2, e - 15) * (1 + f / 1024);
}

export function decode(p: Packed | null | undefined): NDArray | null {
  if (!p || !p.shape) return null;
  const bytes = bytesOf(p.data);
  const n = size(p.shape);
  const need = n * (ITEM_SIZE[p.dtype] ?? 4);
  if (bytes.byteLength < need) throw new Error(`llm-widgets: ${p.dtype} array of shape [${p.shape.join(", ")}] needs ${need} bytes, got ${bytes.byteLength}`);
  const values = new Float32Array(n);
  if (p.dtype === "uint8") {
    for (let i = 0; i < n; i++) values[i] = p.offset + bytes[i] * p.scale;
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (p.dtype === "float16") for (let i = 0; i < n; i++) values[i] = halfToFloat(view.getUint16(2 * i, true));
    else if (p.dtype === "uint16") for (let i = 0; i < n; i++) values[i] = view.getUint16(2 * i, true);
    else if (p.dtype === "int32") for (let i = 0; i < n; i++) values[i] = view.getInt32(4 * i, true); // exact below 2^24
    else for (let i = 0; i < n; i++) values[i] = view.getFloat32(4 * i, true);
  }
  return { shape: p.shape.slice(), values };
}
