import { describe, expect, it } from "vitest";
import {
  cellCenter, cellRect, extent, GridLayout, gridSize, hitCell, isClick, nearestPoint, normRect, pointsInRect, thumbGrid, toPixel,
} from "../src/lib/geometry";

const heat: GridLayout = { left: 20, top: 10, rows: 3, cols: 4, cellW: 28, cellH: 28 };

describe("heatmap hit-testing", () => {
  it("finds the cell under a point, with top/left borders inside the cell", () => {
    expect(hitCell(heat, 20, 10)).toEqual([0, 0]); // top-left corner of the grid
    expect(hitCell(heat, 20 + 28, 10 + 28)).toEqual([1, 1]); // a shared corner belongs to the next cell
    expect(hitCell(heat, 20 + 28 - 0.01, 10 + 28 - 0.01)).toEqual([0, 0]);
    expect(hitCell(heat, 20 + 3 * 28 + 27.9, 10 + 2 * 28 + 27.9)).toEqual([2, 3]); // last cell
  });
  it("returns -1 outside the grid, including its right and bottom edges", () => {
    expect(hitCell(heat, 19.99, 20)).toEqual([-1, -1]);
    expect(hitCell(heat, 30, 9.99)).toEqual([-1, -1]);
    expect(hitCell(heat, 20 + 4 * 28, 20)).toEqual([-1, -1]);
    expect(hitCell(heat, 30, 10 + 3 * 28)).toEqual([-1, -1]);
    expect(hitCell(heat, -100, -100)).toEqual([-1, -1]);
    expect(hitCell({ ...heat, rows: 0, cols: 0 }, 20, 10)).toEqual([-1, -1]);
  });
  it("puts points on the computed borders of fractional cells in the right cell", () => {
    // cell sizes whose edges, computed as left + k * cell, divide back to just below k
    for (const [left, cell, n] of [[27.5, 520 / 9, 9], [0.1, 0.3, 100]]) {
      const g: GridLayout = { left, top: left, rows: n, cols: n, cellW: cell, cellH: cell };
      for (let k = 0; k < n; k++) {
        const edge = g.left + k * g.cellW; // as the renderer computes it
        expect(hitCell(g, edge, edge)).toEqual([k, k]);
        expect(hitCell(g, edge - 1e-6, edge - 1e-6)).toEqual(k ? [k - 1, k - 1] : [-1, -1]);
      }
    }
  });
  it("maps every cell centre back to its cell", () => {
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) expect(hitCell(heat, ...cellCenter(heat, r, c))).toEqual([r, c]);
    expect(cellCenter(heat, 1, 2)).toEqual([20 + 2.5 * 28, 10 + 1.5 * 28]);
    expect(gridSize(heat)).toEqual([20 + 4 * 28, 10 + 3 * 28]);
  });
});

describe("thumbnail grid hit-testing", () => {
  const g = thumbGrid(4, 12, 40, 4, 26, 16); // layers x heads, 40 px thumbnails 4 px apart
  it("finds the thumbnail under a point", () => {
    expect(hitCell(g, 26, 16)).toEqual([0, 0]);
    expect(hitCell(g, 26 + 5 * 44 + 20, 16 + 2 * 44 + 20)).toEqual([2, 5]);
    expect(hitCell(g, 26 + 11 * 44 + 39.9, 16 + 3 * 44 + 39.9)).toEqual([3, 11]);
    expect(cellRect(g, 2, 5)).toEqual({ x: 26 + 5 * 44, y: 16 + 2 * 44, w: 40, h: 40 });
  });
  it("returns -1 in the gaps between thumbnails and outside", () => {
    expect(hitCell(g, 26 + 40, 20)).toEqual([-1, -1]); // right edge of thumbnail 0 starts the gap
    expect(hitCell(g, 26 + 42, 20)).toEqual([-1, -1]);
    expect(hitCell(g, 30, 16 + 40 + 2)).toEqual([-1, -1]);
    expect(hitCell(g, 26 + 44, 20)).toEqual([0, 1]); // next thumbnail
    expect(hitCell(g, 25, 20)).toEqual([-1, -1]); // the layer labels
    expect(hitCell(g, 30, 15)).toEqual([-1, -1]); // the head labels
    expect(hitCell(g, 26 + 12 * 44, 20)).toEqual([-1, -1]);
  });
  it("has no trailing gap in its size", () => {
    expect(gridSize(g)).toEqual([26 + 12 * 40 + 11 * 4, 16 + 4 * 40 + 3 * 4]);
  });
});

describe("scatter geometry", () => {
  const v = { width: 100, height: 100, pad: 10 };
  const xs = [0, 1, 2, 2], ys = [0, 1, 2, 0];
  const b = extent(xs, ys);

  it("takes the extent of finite points and widens a zero-width axis", () => {
    expect(b).toEqual({ x0: 0, x1: 2, y0: 0, y1: 2 });
    expect(extent([1, 1], [3, NaN])).toEqual({ x0: 0, x1: 2, y0: 2, y1: 4 }); // (1, NaN) is ignored
    expect(extent([], [])).toEqual({ x0: -1, x1: 1, y0: -1, y1: 1 });
    expect(extent([5, Infinity], [0, 1])).toEqual({ x0: 4, x1: 6, y0: -1, y1: 1 });
  });
  it("maps data to pixels with y up and the padding inside the borders", () => {
    expect(toPixel(b, v, 0, 0)).toEqual([10, 90]);
    expect(toPixel(b, v, 2, 2)).toEqual([90, 10]);
    expect(toPixel(b, v, 1, 1)).toEqual([50, 50]);
  });
  it("selects the points inside a brush rectangle, borders included", () => {
    expect(pointsInRect(b, v, xs, ys, normRect(60, 60, 0, 0))).toEqual([1]);
    expect(pointsInRect(b, v, xs, ys, normRect(50, 0, 100, 100))).toEqual([1, 2, 3]);
    expect(pointsInRect(b, v, xs, ys, normRect(0, 0, 100, 100))).toEqual([0, 1, 2, 3]);
    expect(pointsInRect(b, v, xs, ys, normRect(51, 51, 60, 60))).toEqual([]);
    expect(pointsInRect(b, v, xs, ys, { x0: 90, y0: 90, x1: 90, y1: 90 })).toEqual([3]); // a degenerate rectangle on a point
  });
  it("finds the nearest point within a radius, the one on top on a tie", () => {
    expect(nearestPoint(b, v, xs, ys, 12, 88)).toBe(0);
    expect(nearestPoint(b, v, xs, ys, 30, 30)).toBe(-1);
    expect(nearestPoint(b, v, xs, ys, 30, 30, 30)).toBe(1);
    expect(nearestPoint(b, v, [0, 0, 1], [0, 0, 1], 10, 90)).toBe(1);
    expect(nearestPoint(b, v, xs, ys, 56, 50)).toBe(1); // exactly on the radius counts
  });
  it("tells a click from a drag", () => {
    expect(isClick(10, 10, 12, 8)).toBe(true);
    expect(isClick(10, 10, 13, 10)).toBe(false);
    expect(normRect(5, 1, 2, 9)).toEqual({ x0: 2, y0: 1, x1: 5, y1: 9 });
  });
});
