import { afterEach, describe, expect, it, vi } from "vitest";
import { DIVERGING, SEQUENTIAL } from "../src/lib/colors";
import { cellSize, Heatmap, heatmapLayout, labelRoom, shorten } from "../src/lib/heatmap";
import { NDArray } from "../src/lib/ndarray";
import { mouse, placeAt, stubCanvas } from "./helpers";

afterEach(() => vi.restoreAllMocks());

const m34: NDArray = { shape: [3, 4], values: Float32Array.from({ length: 12 }, (_, i) => i) };

describe("heatmap layout", () => {
  it("shortens long labels with an ellipsis", () => {
    expect(shorten("abcdefghijklmnop")).toBe("abcdefghijk\u2026");
    expect(shorten("abcdefghijkl")).toBe("abcdefghijkl");
    expect(shorten("abcdef", 4)).toBe("abc\u2026");
  });
  it("sizes cells to fit, between minCell and 28 px", () => {
    expect(cellSize(3, 4)).toBe(28);
    expect(cellSize(100, 40)).toBe(5.2);
    expect(cellSize(10000, 1)).toBe(0.25);
    expect(cellSize(10000, 1, 520, 8)).toBe(8);
    expect(cellSize(0, 0)).toBe(28);
  });
  it("leaves room for labels only when cells are large enough to carry them", () => {
    expect(labelRoom(undefined, 28)).toBe(0);
    expect(labelRoom(["ab", "abcd"], 28)).toBe(8 + 6.5 * 4);
    expect(labelRoom(["a".repeat(40)], 28)).toBe(8 + 6.5 * 12);
    expect(labelRoom(["abcd"], 5)).toBe(0);
    expect(heatmapLayout(3, 4, { rowLabels: ["abcd"] })).toEqual({ left: 34, top: 0, rows: 3, cols: 4, cellW: 28, cellH: 28 });
  });
});

describe("Heatmap", () => {
  const labels = { rowLabels: ["a", "b", "c"], colLabels: ["w", "x", "y", "z"] };

  it("draws without a 2-D context (happy-dom) and publishes its layout", () => {
    const hm = new Heatmap("hm");
    expect(() => hm.draw(m34, labels)).not.toThrow();
    expect(hm.matrix).toBe(m34);
    expect([hm.rows, hm.cols]).toEqual([3, 4]);
    expect(hm.canvas.dataset).toMatchObject({ testid: "hm", rows: "3", cols: "4", cell: "28", left: "14.5", top: "14.5" });
    expect(hm.canvas.style.width).toBe(`${14.5 + 4 * 28 + 2}px`);
    expect(hm.canvas.style.height).toBe(`${14.5 + 3 * 28 + 2}px`);
    expect(hm.cellCenter(1, 2)).toEqual([14.5 + 2.5 * 28, 14.5 + 1.5 * 28]);
  });

  it("calls onClick with the cell under the mouse, at borders too, and not outside", () => {
    const clicks: [number, number][] = [];
    const hm = new Heatmap();
    hm.draw(m34, { ...labels, onClick: (r, c) => clicks.push([r, c]) });
    const { left, top } = hm.layout;
    mouse(hm.canvas, "click", ...hm.cellCenter(2, 3));
    mouse(hm.canvas, "click", left + 2 * 28, top + 28); // top-left corner of (1, 2)
    mouse(hm.canvas, "click", left + 2 * 28 - 0.1, top + 28 - 0.1); // just inside (0, 1)
    mouse(hm.canvas, "click", left - 1, top + 5); // row labels
    mouse(hm.canvas, "click", left + 4 * 28, top + 5); // right edge
    mouse(hm.canvas, "click", left + 5, top + 3 * 28); // bottom edge
    expect(clicks).toEqual([[2, 3], [1, 2], [0, 1]]);
    expect(hm.cellAtPoint(left - 1, top)).toEqual([-1, -1]);
  });

  it("takes the canvas' position on the page into account", () => {
    const clicks: [number, number][] = [];
    const hm = new Heatmap();
    hm.draw(m34, { onClick: (r, c) => clicks.push([r, c]) });
    placeAt(hm.canvas, 200, 100);
    mouse(hm.canvas, "click", 200 + 28 * 3 + 1, 100 + 1);
    mouse(hm.canvas, "click", 28 * 3 + 1, 1); // page coordinates of a cell if the canvas were at 0, 0
    expect(clicks).toEqual([[0, 3]]);
  });

  it("hovers: tooltip from describe (as text), onHover, hidden outside; onLeave on leave", () => {
    const hovers: [number, number][] = [];
    let left = 0;
    const hm = new Heatmap();
    hm.draw(m34, { ...labels, onHover: (r, c) => hovers.push([r, c]), onLeave: () => left++, describe: (r, c, v) => `<b>${r},${c}</b>=${v}` });
    mouse(hm.canvas, "mousemove", ...hm.cellCenter(1, 1));
    expect(hovers).toEqual([[1, 1]]);
    expect(hm.tip.style.display).toBe("block");
    expect(hm.tip.textContent).toBe("<b>1,1</b>=5");
    expect(hm.tip.querySelector("b")).toBeNull();
    mouse(hm.canvas, "mousemove", 0, 0);
    expect(hm.tip.style.display).toBe("none");
    expect(hovers).toHaveLength(1);
    hm.canvas.dispatchEvent(new MouseEvent("mouseleave"));
    expect(left).toBe(1);
  });

  it("default tooltip names the row and column labels with the value", () => {
    const hm = new Heatmap();
    hm.draw(m34, labels);
    mouse(hm.canvas, "mousemove", ...hm.cellCenter(2, 0));
    expect(hm.tip.textContent).toBe("c \u2192 w: 8.0000");
  });

  it("paints one pixel per cell with the scale's colours (vmax from the data by default)", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    hm.draw(m34, labels);
    const put = calls.find((c) => c.name === "putImageData")!;
    const img = put.args[0] as { data: Uint8ClampedArray; width: number; height: number };
    expect([img.width, img.height]).toEqual([4, 3]);
    expect(Array.from(img.data.slice(0, 4))).toEqual([...SEQUENTIAL[0], 255]); // 0
    expect(Array.from(img.data.slice(44, 48))).toEqual([...SEQUENTIAL[255], 255]); // 11 = max
    calls.length = 0;
    hm.draw({ shape: [1, 3], values: Float32Array.from([-2, 0, 1]) }, { scale: "div" });
    const d = (calls.find((c) => c.name === "putImageData")!.args[0] as { data: Uint8ClampedArray }).data;
    expect(Array.from(d.slice(0, 3))).toEqual(DIVERGING[0]);
    expect(Array.from(d.slice(4, 7))).toEqual(DIVERGING[128]);
  });

  it("draws labels as canvas text (never markup), shortened", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    const evil = "<script>alert(1)</script>";
    hm.draw({ shape: [1, 2], values: Float32Array.from([0, 1]) }, { rowLabels: [evil], colLabels: ["&amp;", "ok"] });
    const texts = calls.filter((c) => c.name === "fillText").map((c) => c.args[0]);
    expect(texts).toEqual([shorten(evil), "&amp;", "ok"]);
    expect(hm.el.querySelector("script")).toBeNull();
  });

  it("outlines the highlighted row, column and selection", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    hm.draw(m34);
    calls.length = 0;
    hm.highlight(1, 2, 0);
    const boxes = calls.filter((c) => c.name === "strokeRect").map((c) => c.args);
    expect(boxes).toEqual([[0.5, 28.5, 4 * 28, 28], [2 * 28 + 0.5, 0.5, 28, 3 * 28], [0.5, 0.5, 4 * 28, 28]]);
    calls.length = 0;
    hm.highlight(null, null, 7); // a selection outside the rows draws nothing
    expect(calls.filter((c) => c.name === "strokeRect")).toHaveLength(0);
  });
});
