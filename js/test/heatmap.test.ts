import { afterEach, describe, expect, it, vi } from "vitest";
import { css, DIVERGING, gradientCSS, seq, SEQUENTIAL } from "../src/lib/colors";
import { cellSize, Heatmap, heatmapLayout, labelFont, labelRoom, MIN_LABEL_PITCH, shorten, thinnedLabel } from "../src/lib/heatmap";
import { NDArray } from "../src/lib/ndarray";
import { Call, mouse, placeAt, stubCanvas } from "./helpers";

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
  it("leaves room for labels whenever there are labels (they are thinned, never all dropped)", () => {
    expect(labelRoom(undefined)).toBe(0);
    expect(labelRoom([])).toBe(0);
    expect(labelRoom(["ab", "abcd"])).toBe(8 + 6.5 * 4);
    expect(labelRoom(["a".repeat(40)])).toBe(8 + 6.5 * 12);
    expect(heatmapLayout(3, 4, { rowLabels: ["abcd"] })).toEqual({ left: 34, top: 0, rows: 3, cols: 4, cellW: 28, cellH: 28 });
    expect(heatmapLayout(100, 100, { rowLabels: ["abcd"], maxSize: 520 }).left).toBe(34); // 5.2 px cells keep their labels
  });
  it("label fonts shrink with the pitch, between 8 and 11 px", () => {
    expect(labelFont(28)).toBe(11);
    expect(labelFont(9.5)).toBe(8);
    expect(labelFont(10.2)).toBe(9);
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

// ---- long matrices: zoom, pan, thinned labels, overviews and tiles, colour bar ----

const names = (n: number) => Array.from({ length: n }, (_, i) => `tok${i}`);
const square = (n: number, f = (r: number, c: number) => r * n + c): NDArray =>
  ({ shape: [n, n], values: Float32Array.from({ length: n * n }, (_, i) => f(Math.floor(i / n), i % n)) });
const texts = (calls: Call[]) => calls.filter((c) => c.name === "fillText");
/** y of every row label drawn (right-aligned at left - 4). */
const rowLabelYs = (calls: Call[], left: number) => texts(calls).filter((c) => c.args[1] === left - 4).map((c) => c.args[2] as number);
/** x of every column label drawn (each is translated to its column, then rotated). */
const colLabelXs = (calls: Call[], top: number) => calls.filter((c) => c.name === "translate" && c.args[1] === top - 4).map((c) => c.args[0] as number);
const wheel = (el: Element, x: number, y: number, deltaY: number) => {
  const e = new WheelEvent("wheel", { clientX: x, clientY: y, deltaY, bubbles: true, cancelable: true });
  Object.defineProperties(e, { clientX: { value: x }, clientY: { value: y } }); // happy-dom's WheelEvent drops them
  el.dispatchEvent(e);
  return e;
};
const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]);

describe("Heatmap labels", () => {
  it("at T=100 draws every other row and column label, evenly spaced and not overlapping", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    hm.draw(square(100), { rowLabels: names(100), colLabels: names(100), maxSize: 520 }); // 5.2 px cells
    const { left, top } = hm.layout;
    const ys = rowLabelYs(calls, left), xs = colLabelXs(calls, top);
    expect(ys).toHaveLength(50);
    expect(xs).toHaveLength(50);
    expect(hm.canvas.dataset).toMatchObject({ rowLabels: "50", colLabels: "50", labelStep: "2" });
    expect(hm.labels.rows.slice(0, 3)).toEqual([0, 2, 4]);
    const font = hm.labels.font;
    for (const g of [...gaps(ys), ...gaps(xs)]) {
      expect(g).toBeGreaterThanOrEqual(MIN_LABEL_PITCH);
      expect(g).toBeGreaterThanOrEqual(font); // one label's height: no overlap
    }
    // thinned labels carry their position (never a run of every other token that reads as a sentence)
    expect(texts(calls).map((c) => c.args[0])).toContain(thinnedLabel(98, "tok98"));
    expect(thinnedLabel(98, "tok98")).toBe("98\u2009tok98");
    expect(texts(calls).map((c) => c.args[0])).not.toContain("tok98");
  });

  it("at T=4096 (an overview) draws labels every 50 tokens, and more as it zooms in", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    const T = 4096;
    hm.draw(square(512), { rowLabels: names(T), colLabels: names(T), step: 8, extent: [T, T], maxSize: 820 });
    const ys = rowLabelYs(calls, hm.layout.left);
    expect(ys.length).toBeGreaterThan(0);
    expect(hm.labels.rows.slice(0, 3)).toEqual([0, 50, 100]);
    for (const g of gaps(ys)) expect(g).toBeGreaterThanOrEqual(Math.max(MIN_LABEL_PITCH, hm.labels.font));
    hm.zoomAt(2000, 2000, 1000); // as far as it goes: 40 px cells
    expect(hm.cell).toBeCloseTo(40);
    expect(hm.labels.rows.length).toBeGreaterThan(10);
    expect(gaps(hm.labels.rows).every((g) => g === 1)).toBe(true);
    const w = hm.window;
    expect(hm.labels.rows.every((r) => r >= Math.floor(w.y0) && r < Math.ceil(w.y1))).toBe(true);
  });

  it("truncates a label with an ellipsis only when it does not fit; the tooltip has the full text", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    const long = "a_very_long_token_indeed";
    hm.draw({ shape: [2, 2], values: Float32Array.from([0, 1, 2, 3]) }, { rowLabels: [long, "cat"], colLabels: ["x", "y"] });
    const drawn = texts(calls).map((c) => c.args[0]);
    expect(drawn).toContain("cat");
    expect(drawn).toContain(shorten(long, 12));
    expect(drawn).not.toContain(long);
    mouse(hm.canvas, "mousemove", hm.layout.left - 10, hm.cellCenter(0, 0)[1]); // over the first row label
    expect(hm.tip.style.display).toBe("block");
    expect(hm.tip.textContent).toContain(long);
  });

  it("labels a highlighted row even between thinned labels", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    hm.draw(square(100), { rowLabels: names(100), colLabels: names(100), maxSize: 520 });
    calls.length = 0;
    hm.highlight(3, 5, null);
    const drawn = texts(calls).map((c) => c.args[0]);
    expect(drawn).toContain(thinnedLabel(3, "tok3"));
    expect(drawn).toContain(thinnedLabel(5, "tok5"));
    expect(hm.canvas.dataset.rowLabels).toBe("50"); // the count of regular labels is unchanged
  });
});

describe("Heatmap zoom and pan", () => {
  const big = () => {
    const hm = new Heatmap();
    hm.draw(square(100), { maxSize: 500 }); // 5 px cells, no labels: the plot starts at (0, 0)
    return hm;
  };

  it("the wheel zooms about the point under the mouse, which stays in place", () => {
    const hm = big();
    const views: unknown[] = [];
    hm.draw(square(100), { maxSize: 500, onView: (w) => views.push(w) });
    const at = (x: number, y: number): [number, number] => [hm.window.x0 + x / hm.cell, hm.window.y0 + y / hm.cell];
    expect(at(150, 250)).toEqual([30, 50]);
    const e = wheel(hm.canvas, 150, 250, -100);
    expect(e.defaultPrevented).toBe(true);
    expect(hm.cell).toBeGreaterThan(5);
    const [u, v] = at(150, 250);
    expect(u).toBeCloseTo(30, 9);
    expect(v).toBeCloseTo(50, 9);
    expect(hm.cellAtPoint(150.1, 250.1)).toEqual([50, 30]);
    expect(views).toHaveLength(1);
    expect(Number(hm.canvas.dataset.zoom)).toBeGreaterThan(1);
    wheel(hm.canvas, 150, 250, 100); // and back out
    expect(hm.cell).toBeCloseTo(5, 9);
  });

  it("does not take the wheel from the page when there is nothing to zoom out of", () => {
    const hm = big();
    expect(wheel(hm.canvas, 10, 10, 100).defaultPrevented).toBe(false);
    const small = new Heatmap();
    small.draw(m34); // 28 px cells: nothing to gain by zooming
    expect(small.zoomable).toBe(false);
    expect(wheel(small.canvas, 10, 10, -100).defaultPrevented).toBe(false);
    expect(small.el.querySelector<HTMLElement>("[data-testid=heatmap-zoom]")!.style.display).toBe("none");
  });

  it("zooms with the buttons and double-clicks, and resets", () => {
    const hm = big();
    const btn = (k: string) => hm.el.querySelector<HTMLButtonElement>(`[data-zoom=${k}]`)!;
    btn("in").click();
    expect(hm.window).toEqual({ x0: 25, y0: 25, x1: 75, y1: 75 });
    btn("out").click();
    expect(hm.window).toEqual({ x0: 0, y0: 0, x1: 100, y1: 100 });
    mouse(hm.canvas, "dblclick", 100, 100); // point (20, 20) stays
    expect(hm.window).toEqual({ x0: 10, y0: 10, x1: 60, y1: 60 });
    hm.canvas.dispatchEvent(new MouseEvent("dblclick", { clientX: 100, clientY: 100, shiftKey: true, bubbles: true }));
    expect(hm.window).toEqual({ x0: 0, y0: 0, x1: 100, y1: 100 });
    btn("in").click();
    btn("reset").click();
    expect(hm.window).toEqual({ x0: 0, y0: 0, x1: 100, y1: 100 });
  });

  it("drags to pan (within the matrix); the click ending a drag selects nothing", () => {
    const clicks: number[][] = [];
    const hm = new Heatmap();
    hm.draw(square(100), { maxSize: 500, onClick: (r, c) => clicks.push([r, c]) });
    hm.zoomAt(50, 50, 4); // window 37.5..62.5, 20 px cells
    expect(hm.cell).toBeCloseTo(20);
    mouse(hm.canvas, "mousedown", 200, 200);
    mouse(window as unknown as Element, "mousemove", 160, 220);
    mouse(window as unknown as Element, "mouseup", 160, 220);
    mouse(hm.canvas, "click", 160, 220);
    expect(clicks).toEqual([]);
    expect(hm.window.x0).toBeCloseTo(39.5); // dragged 40 px left: 2 columns further right
    expect(hm.window.y0).toBeCloseTo(36.5);
    mouse(hm.canvas, "click", 10, 10); // a real click afterwards
    expect(clicks).toEqual([[37, 40]]); // (36.5 + 10 / 20, 39.5 + 10 / 20)
    hm.setWindow({ x0: -50, y0: 500, x1: -25, y1: 525 }); // kept inside
    expect(hm.window).toEqual({ x0: 0, y0: 75, x1: 25, y1: 100 });
  });

  it("keeps the zoom when a matrix of the same size is drawn, resets it for another size", () => {
    const hm = big();
    hm.zoomAt(50, 50, 4);
    hm.draw(square(100, () => 1), { maxSize: 500 });
    expect(hm.window.x1 - hm.window.x0).toBeCloseTo(25);
    hm.draw(square(50), { maxSize: 500 });
    expect(hm.window).toEqual({ x0: 0, y0: 0, x1: 50, y1: 50 });
  });
});

describe("Heatmap overviews and tiles", () => {
  // a 7 x 7 matrix as a 3 x 3 overview of 3 x 3 blocks (the last block: 1 row / column)
  const ov: NDArray = { shape: [3, 3], values: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) };

  it("maps overview cells to blocks of rows and columns of the extent", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    hm.draw(ov, { step: 3, extent: [7, 7], maxSize: 70 }); // 10 px per row / column of the extent
    expect([hm.rows, hm.cols, hm.blockStep]).toEqual([7, 7, 3]);
    expect(hm.canvas.dataset).toMatchObject({ rows: "7", cols: "7", cell: "10", step: "3", exact: "overview" });
    expect(hm.cellAtPoint(65, 5)).toEqual([0, 6]);
    expect(hm.valueAt(0, 6)).toBe(3); // block (0, 2)
    expect(hm.valueAt(4, 2)).toBe(4); // block (1, 0)
    expect(hm.valueAt(6, 6)).toBe(9);
    expect(hm.exactAt(0, 6)).toBe(false);
    const draw = calls.find((c) => c.name === "drawImage")!.args;
    expect(draw.slice(1)).toEqual([0, 0, 3, 3, 0, 0, 90, 90]); // 3 blocks of 3 x 10 px (clipped to the plot)
    mouse(hm.canvas, "mousemove", 65, 45);
    expect(hm.tip.textContent).toBe("rows 3\u20135 \u2192 columns 6\u20136: max 6.0000 (zoom in for exact values)");
  });

  it("lays an exact tile over the overview", () => {
    const calls = stubCanvas();
    const hm = new Heatmap();
    hm.draw(ov, { step: 3, extent: [7, 7], maxSize: 70, vmax: 10 });
    calls.length = 0;
    hm.setTile({ r0: 2, c0: 3, m: { shape: [2, 2], values: Float32Array.from([0.5, 0.25, 0.125, 0]) } });
    expect(hm.valueAt(2, 3)).toBe(0.5);
    expect(hm.valueAt(3, 4)).toBe(0);
    expect(hm.exactAt(3, 4)).toBe(true);
    expect(hm.valueAt(4, 4)).toBe(5); // outside the tile: the block
    const draws = calls.filter((c) => c.name === "drawImage").map((c) => c.args.slice(1));
    expect(draws[1]).toEqual([30, 20, 20, 20]);
    const img = calls.find((c) => c.name === "putImageData")!.args[0] as { data: Uint8ClampedArray };
    expect(Array.from(img.data.slice(0, 3))).toEqual(seq(0.5, 10)); // on the overview's scale
    expect(hm.canvas.dataset.exact).toBe("tile");
    hm.setTile(null);
    expect(hm.exactAt(3, 4)).toBe(false);
  });
});

describe("Heatmap colour bar", () => {
  it("shows the scale's domain and units beside the plot", () => {
    const hm = new Heatmap("hm");
    hm.draw(m34, { label: "attention weight" });
    const bar = hm.el.querySelector<HTMLElement>("[data-testid=hm-colorbar]")!;
    expect(bar.style.display).toBe("");
    expect(bar.dataset).toMatchObject({ kind: "seq", min: "0", max: "11", label: "attention weight" });
    expect(bar.textContent).toBe("011attention weight");
    expect(hm.scale.color(11)).toEqual(SEQUENTIAL[255]);
    hm.draw({ shape: [1, 2], values: Float32Array.from([-2, 1]) }, { scale: "div", label: "score" });
    expect(bar.dataset).toMatchObject({ kind: "div", min: "-2", max: "2" });
    expect(bar.textContent).toBe("-202score");
    expect(gradientCSS(hm.scale)).toContain(`${css(DIVERGING[128])} 50.0%`); // the middle of the bar: 0, neutral
  });
});
