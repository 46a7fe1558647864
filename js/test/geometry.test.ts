import { describe, expect, it } from "vitest";
import {
  blockOf, blockRange, cellCenter, cellRect, clampWindow, extent, fullWindow, GridLayout, gridSize, hitCell, isClick, labelIndices,
  labelStep, nearestPoint, niceStep, normRect, panWindow, pointsInRect, thumbGrid, tileCovers, tileWindow, toPixel, zoomOf, zoomWindow,
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

describe("zoom window", () => {
  const full = fullWindow(100, 200); // 100 rows x 200 columns
  it("zooming about a point keeps that point at the same place in the window", () => {
    const w = zoomWindow(full, 100, 200, 50, 30, 4, 40);
    expect(zoomOf(w, 200)).toBeCloseTo(4);
    expect([w.x1 - w.x0, w.y1 - w.y0]).toEqual([50, 25]);
    expect((50 - w.x0) / (w.x1 - w.x0)).toBeCloseTo(50 / 200, 12);
    expect((30 - w.y0) / (w.y1 - w.y0)).toBeCloseTo(30 / 100, 12);
    const w2 = zoomWindow(w, 100, 200, 60, 35, 1.7, 40); // again, elsewhere
    expect((60 - w2.x0) / (w2.x1 - w2.x0)).toBeCloseTo((60 - w.x0) / (w.x1 - w.x0), 12);
    expect((35 - w2.y0) / (w2.y1 - w2.y0)).toBeCloseTo((35 - w.y0) / (w.y1 - w.y0), 12);
  });
  it("stays within [1, maxZoom] and inside the matrix", () => {
    expect(zoomWindow(full, 100, 200, 10, 10, 0.5, 40)).toEqual(full);
    const max = zoomWindow(full, 100, 200, 100, 50, 1e6, 8);
    expect(zoomOf(max, 200)).toBeCloseTo(8);
    const corner = zoomWindow(full, 100, 200, 0, 0, 4, 40); // about the corner: the window starts there
    expect([corner.x0, corner.y0]).toEqual([0, 0]);
    const edge = zoomWindow(zoomWindow(full, 100, 200, 200, 100, 4, 40), 100, 200, 200, 100, 0.9, 40); // about the far corner
    expect(edge.x1).toBeCloseTo(200);
    expect(edge.y1).toBeCloseTo(100);
    const back = zoomWindow({ x0: 150, y0: 75, x1: 200, y1: 100 }, 100, 200, 160, 80, 0.5, 40); // out near the edge: moved back inside
    expect(back).toEqual({ x0: 100, y0: 50, x1: 200, y1: 100 });
  });
  it("pans by matrix units, clamped to the matrix", () => {
    const w = { x0: 10, y0: 10, x1: 60, y1: 35 };
    expect(panWindow(w, 100, 200, 5, -3)).toEqual({ x0: 15, y0: 7, x1: 65, y1: 32 });
    expect(panWindow(w, 100, 200, -50, 500)).toEqual({ x0: 0, y0: 75, x1: 50, y1: 100 });
    expect(clampWindow({ x0: -5, y0: 0, x1: 500, y1: 10 }, 100, 200)).toEqual({ x0: 0, y0: 0, x1: 200, y1: 10 });
  });
});

describe("labels", () => {
  it("thins labels to nice steps so that they are at least the minimum pitch apart", () => {
    expect([0.5, 1, 1.2, 2, 3, 7, 11, 45, 101].map(niceStep)).toEqual([1, 1, 2, 2, 5, 10, 20, 50, 200]);
    expect(labelStep(28)).toBe(1);
    expect(labelStep(5.2)).toBe(2); // T = 100 in 520 px
    expect(labelStep(820 / 4096)).toBe(50); // T = 4096 in 820 px
    expect(labelStep(0)).toBe(Infinity);
    for (const cell of [0.1, 0.3, 1, 2.5, 4, 8.9, 9, 30]) expect(labelStep(cell) * cell).toBeGreaterThanOrEqual(9);
  });
  it("lists the label indices in a window", () => {
    expect(labelIndices(0, 10, 2)).toEqual([0, 2, 4, 6, 8]);
    expect(labelIndices(3, 10, 5)).toEqual([5]);
    expect(labelIndices(-4, 3, 1)).toEqual([0, 1, 2]);
    expect(labelIndices(0, 10, Infinity)).toEqual([]);
  });
});

describe("overviews and tiles", () => {
  it("maps a row to its overview cell and an overview cell to its rows", () => {
    expect([0, 7, 8, 4095].map((i) => blockOf(i, 8))).toEqual([0, 0, 1, 511]);
    expect(blockOf(5, 1)).toBe(5);
    expect(blockRange(0, 8, 4096)).toEqual([0, 8]);
    expect(blockRange(2, 3, 7)).toEqual([6, 7]); // the last block is shorter
    expect(blockRange(4, 1, 10)).toEqual([4, 5]);
    // every row lies in the block of its overview cell
    for (const [step, n] of [[3, 7], [8, 100], [1, 5]]) for (let i = 0; i < n; i++) {
      const [a, b] = blockRange(blockOf(i, step), step, n);
      expect(a <= i && i < b).toBe(true);
    }
  });
  it("asks for whole rows and columns covering the window, with a margin, up to the limit", () => {
    expect(tileWindow({ x0: 100.5, y0: 10, x1: 150.2, y1: 60 }, 4096, 4096, 256, 0)).toEqual({ r0: 10, c0: 100, rows: 50, cols: 51 });
    expect(tileWindow({ x0: 100, y0: 10, x1: 200, y1: 110 }, 4096, 4096, 256)).toEqual({ r0: 0, c0: 75, rows: 135, cols: 150 });
    expect(tileWindow({ x0: 0, y0: 0, x1: 250, y1: 250 }, 4096, 4096, 256)).toEqual({ r0: 0, c0: 0, rows: 253, cols: 253 });
    expect(tileWindow({ x0: 0, y0: 0, x1: 257, y1: 257 }, 4096, 4096, 256)).toBeNull();
    expect(tileWindow({ x0: 4000, y0: 4000, x1: 4096, y1: 4096 }, 4096, 4096, 256)).toEqual({ r0: 3976, c0: 3976, rows: 120, cols: 120 });
  });
  it("knows whether a tile covers a window", () => {
    const t = { r0: 10, c0: 20, rows: 50, cols: 50 };
    expect(tileCovers(t, { x0: 20, y0: 10, x1: 70, y1: 60 })).toBe(true);
    expect(tileCovers(t, { x0: 20.5, y0: 10.5, x1: 69.5, y1: 59.9 })).toBe(true);
    expect(tileCovers(t, { x0: 19.5, y0: 10, x1: 30, y1: 20 })).toBe(false);
    expect(tileCovers(t, { x0: 20, y0: 10, x1: 70.1, y1: 20 })).toBe(false);
  });
});
