// Sparse per-token features: each token's top-k feature ids and values ([T, k] row-major), as the
// FeatureView sends them (never tokens x features dense).

/** One feature's value at every token, from the sparse top-k lists (0 where it is not among a token's top k). */
export function sparseColumn(ids: ArrayLike<number>, values: ArrayLike<number>, T: number, k: number, feature: number): Float32Array {
  const out = new Float32Array(T);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < k; j++) {
      if (ids[t * k + j] === feature && values[t * k + j] > 0) { out[t] = values[t * k + j]; break; }
    }
  }
  return out;
}

/** The active (value > 0) features of token t: [feature, value] pairs, largest first as sent. */
export function activeAt(ids: ArrayLike<number>, values: ArrayLike<number>, k: number, t: number): [number, number][] {
  const out: [number, number][] = [];
  for (let j = 0; j < k; j++) if (values[t * k + j] > 0) out.push([ids[t * k + j], values[t * k + j]]);
  return out;
}

/** Each token's largest activation (its first listed value), 0 where none is active. */
export function rowMax(values: ArrayLike<number>, T: number, k: number): Float32Array {
  const out = new Float32Array(T);
  for (let t = 0; t < T; t++) out[t] = Math.max(0, values[t * k] ?? 0);
  return out;
}
