import { describe, expect, it } from "vitest";
import { activeAt, rowMax, sparseColumn } from "../src/lib/sparse";

// 3 tokens x k=2: token 0 has features 5 (2.0) and 1 (0.5); token 1 has 1 (3.0) and nothing; token 2 none
const ids = [5, 1, 1, 0, 0, 0];
const vals = [2.0, 0.5, 3.0, 0, 0, 0];

describe("sparse top-k features", () => {
  it("recovers one feature's column, 0 where it is not listed or not active", () => {
    expect(Array.from(sparseColumn(ids, vals, 3, 2, 1))).toEqual([0.5, 3.0, 0]);
    expect(Array.from(sparseColumn(ids, vals, 3, 2, 0))).toEqual([0, 0, 0]);
    expect(Array.from(sparseColumn(ids, vals, 3, 2, 5))).toEqual([2.0, 0, 0]);
  });
  it("lists the active features of a token, largest first", () => {
    expect(activeAt(ids, vals, 2, 0)).toEqual([[5, 2.0], [1, 0.5]]);
    expect(activeAt(ids, vals, 2, 2)).toEqual([]);
  });
  it("gives each token's largest activation", () => {
    expect(Array.from(rowMax(vals, 3, 2))).toEqual([2.0, 3.0, 0]);
  });
});
