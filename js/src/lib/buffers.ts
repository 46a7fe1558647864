// Decode arrays packed by llm_widgets.widgets.base.encode_array.
export interface Packed {
  shape: number[];
  dtype: "uint8" | "float16" | "float32" | "int32" | "uint16";
  scale: number;
  offset: number;
  data: unknown; // DataView | ArrayBuffer | Uint8Array (live) or {__b64__} (static export, revived by the host)
}

export interface NDArray {
  shape: number[];
  values: Float32Array;
}

export function bytesOf(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data && typeof data === "object" && "__b64__" in data) {
    const bin = atob(String((data as { __b64__: string }).__b64__));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
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
  const n = p.shape.reduce((a, b) => a * b, 1);
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

/** A [rows, cols] slice at `index` of the leading axes of a >=2-D array. */
export function slice2d(a: NDArray, ...index: number[]): NDArray {
  const rows = a.shape[a.shape.length - 2];
  const cols = a.shape[a.shape.length - 1];
  let off = 0;
  let stride = rows * cols;
  for (let d = index.length - 1; d >= 0; d--) {
    off += index[d] * stride;
    stride *= a.shape[d];
  }
  return { shape: [rows, cols], values: a.values.subarray(off, off + rows * cols) };
}
