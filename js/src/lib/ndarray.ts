// Row-major arrays: flat offsets, sub-array views (no copies) and reductions over their values.
export interface NDArray {
  shape: number[];
  values: Float32Array;
}

/** Elements between consecutive indices of each axis (row-major). */
export function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = s;
    s *= shape[d];
  }
  return out;
}

export function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Flat offset of element (or leading-axes block) `index` in a row-major array of `shape`.
 * Throws on more indices than axes or an index out of range: a wrong offset would read another row. */
export function offset(shape: readonly number[], index: readonly number[]): number {
  if (index.length > shape.length) throw new RangeError(`${index.length} indices for shape [${shape.join(", ")}]`);
  const st = strides(shape);
  let off = 0;
  index.forEach((i, d) => {
    if (!Number.isInteger(i) || i < 0 || i >= shape[d]) throw new RangeError(`index ${i} out of range for axis ${d} of size ${shape[d]}`);
    off += i * st[d];
  });
  return off;
}

/** The element at `index` (one per axis). */
export function at(a: NDArray, ...index: number[]): number {
  if (index.length !== a.shape.length) throw new RangeError(`${index.length} indices for a ${a.shape.length}-D array`);
  return a.values[offset(a.shape, index)];
}

/** The sub-array at `index` of the leading axes: a view sharing `a.values`, shape = the trailing axes. */
export function slice(a: NDArray, ...index: number[]): NDArray {
  const shape = a.shape.slice(index.length);
  const start = offset(a.shape, index);
  return { shape, values: a.values.subarray(start, start + size(shape)) };
}

/** A [rows, cols] slice at `index` of the leading axes of a >=2-D array (one index per leading axis). */
export function slice2d(a: NDArray, ...index: number[]): NDArray {
  if (index.length !== a.shape.length - 2) throw new RangeError(`slice2d of a ${a.shape.length}-D array takes ${a.shape.length - 2} indices, not ${index.length}`);
  return slice(a, ...index);
}

/** Row r of a 2-D array (a view). */
export function row(m: NDArray, r: number): Float32Array {
  return slice(m, r).values;
}

/** Column c of a 2-D array (a copy). */
export function col(m: NDArray, c: number): Float32Array {
  const [rows, cols] = m.shape;
  if (c < 0 || c >= cols) throw new RangeError(`column ${c} out of range for ${cols} columns`);
  return Float32Array.from({ length: rows }, (_, r) => m.values[r * cols + c]);
}

/** Largest |v| over the finite values (0 when there are none): the half-range of a colour scale. */
export function absMax(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]);
    if (v > m && v !== Infinity) m = v;
  }
  return m;
}

/** Largest finite value (-Infinity when there is none). */
export function max(values: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > m && values[i] !== Infinity) m = values[i];
  return m;
}

/** Indices of the k largest values, largest first; equal values by index; NaN never included. */
/** Indices of the k largest |values| (ties: lower index first; NaN left out): the strongest either way. */
export function topKAbs(values: ArrayLike<number>, k: number = values.length): number[] {
  return topK(Array.from(values, Math.abs), k);
}

export function topK(values: ArrayLike<number>, k: number = values.length): number[] {
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) idx.push(i);
  return idx.sort((a, b) => values[b] - values[a] || a - b).slice(0, Math.max(0, k));
}

/** Counts of the finite values in `bins` equal bins over [lo, hi]; values outside go to the end bins. */
export function binCounts(values: ArrayLike<number>, bins: number, lo: number, hi: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  const span = hi - lo;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    const b = span > 0 ? Math.floor(((v - lo) / span) * bins) : 0;
    counts[Math.min(bins - 1, Math.max(0, b))]++;
  }
  return counts;
}
