import { describe, expect, it } from "vitest";
import { absMax, at, col, max, NDArray, offset, row, size, slice, slice2d, strides, topK, binCounts } from "../src/lib/ndarray";

const arange = (...shape: number[]): NDArray => ({ shape, values: Float32Array.from({ length: size(shape) }, (_, i) => i) });

describe("ndarray indexing", () => {
  it("computes row-major strides and flat offsets", () => {
    expect(strides([2, 3, 4])).toEqual([12, 4, 1]);
    expect(strides([])).toEqual([]);
    expect(offset([2, 3, 4], [1, 2, 3])).toBe(1 * 12 + 2 * 4 + 3);
    expect(offset([2, 3, 4], [1])).toBe(12); // a block of the leading axis
    expect(offset([2, 3, 4], [])).toBe(0);
    expect(size([2, 3, 4])).toBe(24);
    expect(size([])).toBe(1);
  });
  it("rejects indices that would read another row", () => {
    expect(() => offset([2, 3], [0, 3])).toThrow(RangeError);
    expect(() => offset([2, 3], [-1, 0])).toThrow(RangeError);
    expect(() => offset([2, 3], [0.5])).toThrow(RangeError);
    expect(() => offset([2, 3], [0, 0, 0])).toThrow(RangeError);
    expect(() => at(arange(2, 3), 1)).toThrow(RangeError); // one index per axis
  });
  it("reads elements: at(a, i, j, k) is values[offset]", () => {
    const a = arange(2, 3, 4);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) expect(at(a, i, j, k)).toBe(i * 12 + j * 4 + k);
  });
  it("slices leading axes as views sharing memory", () => {
    const a = arange(2, 3, 4);
    const s = slice(a, 1);
    expect(s.shape).toEqual([3, 4]);
    expect(Array.from(s.values)).toEqual(Array.from({ length: 12 }, (_, i) => 12 + i));
    s.values[0] = -7;
    expect(a.values[12]).toBe(-7); // a view, not a copy
    expect(Array.from(slice(a, 0, 2).values)).toEqual([8, 9, 10, 11]);
    expect(slice(a, 1, 2, 3).shape).toEqual([]);
  });
  it("slice2d takes exactly one index per leading axis", () => {
    const a = arange(2, 3, 2, 2);
    expect(Array.from(slice2d(a, 1, 2).values)).toEqual([20, 21, 22, 23]);
    expect(slice2d(a, 1, 2).shape).toEqual([2, 2]);
    expect(() => slice2d(a, 1)).toThrow(RangeError); // would be a [3, 2, 2] block, not a matrix
    expect(Array.from(slice2d(arange(3, 2)).values)).toEqual([0, 1, 2, 3, 4, 5]);
  });
  it("takes rows (views) and columns (copies) of a matrix", () => {
    const m = arange(3, 2);
    expect(Array.from(row(m, 2))).toEqual([4, 5]);
    expect(Array.from(col(m, 1))).toEqual([1, 3, 5]);
    expect(() => col(m, 2)).toThrow(RangeError);
  });
  it("absMax and max skip NaN and infinities", () => {
    expect(absMax([1, -3, 2])).toBe(3);
    expect(absMax([NaN, -Infinity, 0.5])).toBe(0.5);
    expect(absMax([])).toBe(0);
    expect(max([-5, -2, NaN])).toBe(-2);
    expect(max([Infinity, 1])).toBe(1);
    expect(max([])).toBe(-Infinity);
  });
  it("topK lists the largest values first, ties by index, without NaN", () => {
    expect(topK([0.1, 3, NaN, 3, -1], 3)).toEqual([1, 3, 0]);
    expect(topK([2, 1])).toEqual([0, 1]);
    expect(topK([1, 2], 0)).toEqual([]);
    expect(topK([1, 2], 5)).toEqual([1, 0]);
    expect(topK(Float32Array.from([-Infinity, 0]), 1)).toEqual([1]);
  });
  it("binCounts counts finite values into equal bins, the top edge in the last bin", () => {
    expect(binCounts([-1, -0.5, 0, 0.5, 1], 4, -1, 1)).toEqual([1, 1, 1, 2]);
    expect(binCounts([NaN, Infinity, 0.1], 2, 0, 1)).toEqual([1, 0]);
    expect(binCounts([-5, 5], 3, 0, 1)).toEqual([1, 0, 1]); // clamped into the end bins
    expect(binCounts([2, 2], 3, 2, 2)).toEqual([2, 0, 0]); // an empty range: all in the first bin
  });
});
