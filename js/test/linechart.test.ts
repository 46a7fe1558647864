import { describe, expect, it } from "vitest";
import { columnTicks, HOVER, LineChart, niceStep, niceTicks, Series, stepDecimals, textWidth, yRange } from "../src/lib/linechart";

describe("yRange", () => {
  const s = (values: number[], band?: number[]): Series => ({ name: "s", values, band, color: "#000" });
  it("spans the finite values and their bands", () => {
    expect(yRange([s([1, 3, 2])], 3)).toEqual([1, 3]);
    expect(yRange([s([1, 3], [0.5, 1])], 2)).toEqual([0.5, 4]);
    expect(yRange([s([1, NaN, 5]), s([-2, Infinity, 0])], 3)).toEqual([-2, 5]);
    expect(yRange([s([1, 3, 100])], 2)).toEqual([1, 3]); // only the first n points
  });
  it("keeps given limits and falls back to [0, 1] for an empty range", () => {
    expect(yRange([s([0.2, 0.4])], 2, 0, 1)).toEqual([0, 1]);
    expect(yRange([s([0.2, 0.4])], 2, -1)).toEqual([-1, 0.4]);
    expect(yRange([s([2, 2])], 2)).toEqual([0, 1]);
    expect(yRange([s([NaN])], 1)).toEqual([0, 1]);
    expect(yRange([], 0)).toEqual([0, 1]);
  });
});

describe("LineChart", () => {
  const make = (clicks: number[] = []) => new LineChart(4, [
    { name: "<b>acc</b>", values: [0.5, 0.6, NaN, 0.9], color: "#1f77b4", band: [0.1, 0.1, 0.1, 0.1] },
    { name: "base", values: [0.5, 0.5, 0.5, 0.5], color: "#777", dashed: true },
  ], { onClick: (i) => clicks.push(i), describe: (i) => `layer <${i}>`, xTick: (i) => `L${i}`, testid: "chart" });

  it("draws one clickable column per x, reporting its index", () => {
    const clicks: number[] = [];
    const chart = make(clicks);
    const cols = chart.el.querySelectorAll("rect[data-layer]");
    expect(cols).toHaveLength(4);
    expect(chart.el.getAttribute("data-testid")).toBe("chart");
    (cols[2] as SVGRectElement).dispatchEvent(new MouseEvent("click"));
    (cols[0] as SVGRectElement).dispatchEvent(new MouseEvent("click"));
    expect(clicks).toEqual([2, 0]);
    expect(cols[3].querySelector("title")!.textContent).toBe("layer <3>");
  });
  it("skips non-finite values in lines, points and bands", () => {
    const chart = make();
    const line = chart.el.querySelector('polyline[data-series="<b>acc</b>"]')!;
    expect(line.getAttribute("points")!.split(" ")).toHaveLength(3);
    expect(line.getAttribute("points")).not.toContain("NaN");
    expect(chart.el.querySelector("polygon")!.getAttribute("points")).not.toContain("NaN");
    expect(chart.el.querySelectorAll("circle")).toHaveLength(3); // dashed series have no points
    expect(chart.el.querySelector('polyline[data-series="base"]')!.getAttribute("stroke-dasharray")).toBe("5 4");
  });
  it("writes labels as text", () => {
    const chart = make();
    const texts = Array.from(chart.el.querySelectorAll("text")).map((t) => t.textContent);
    expect(texts).toContain("<b>acc</b>");
    expect(texts).toContain("L3");
    expect(chart.el.querySelector("b")).toBeNull();
  });
  it("highlights the selected column only", () => {
    const chart = make();
    chart.select(1);
    const cols = Array.from(chart.el.querySelectorAll("rect[data-layer]"));
    expect(cols.map((r) => r.getAttribute("stroke"))).toEqual(["none", "#d62728", "none", "none"]);
    chart.select(3);
    expect(cols.map((r) => r.getAttribute("stroke"))).toEqual(["none", "none", "none", "#d62728"]);
    cols[0].dispatchEvent(new MouseEvent("mouseenter"));
    expect(cols[0].getAttribute("fill")).toBe(HOVER);
    cols[3].dispatchEvent(new MouseEvent("mouseleave"));
    expect(cols[3].getAttribute("fill")).toBe("rgba(214,39,40,0.14)"); // the selection stays marked
  });
});

describe("nice ticks", () => {
  it("steps are 1, 2 or 5 x 10^k", () => {
    expect(niceStep(1.08, 6)).toBeCloseTo(0.2);
    expect(niceStep(1, 5)).toBeCloseTo(0.2);
    expect(niceStep(0.7, 4)).toBeCloseTo(0.2);
    expect(niceStep(37, 5)).toBe(10);
    expect(niceStep(0.003, 5)).toBeCloseTo(0.001);
    expect(niceStep(0)).toBe(1);
    for (const span of [0.013, 0.7, 1.38, 9, 240, 5e4]) {
      const st = niceStep(span, 5), mant = st / 10 ** Math.floor(Math.log10(st) + 1e-9);
      expect([1, 2, 5, 10].some((m) => Math.abs(mant - m) < 1e-9)).toBe(true);
    }
  });
  it("decimals print each multiple of the step exactly", () => {
    expect([1, 5, 0.2, 0.5, 0.05, 0.001, 20].map(stepDecimals)).toEqual([0, 0, 1, 1, 2, 3, 0]);
  });
  it("the domain is the data range rounded out to the step; ticks are its multiples", () => {
    expect(niceTicks(-0.08, 1, 6)).toEqual({ domain: [-0.2, 1], step: 0.2, ticks: [-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1] });
    expect(niceTicks(0.65, 1.38, 4).ticks).toEqual([0.6, 0.8, 1, 1.2, 1.4]);
    expect(niceTicks(3, 3).domain[1]).toBeGreaterThan(niceTicks(3, 3).domain[0]); // a single value still has a range
  });
  it("column ticks skip by nice steps so that labels never touch, the last one only with room", () => {
    expect(columnTicks(13, 30, 20)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(columnTicks(33, 10, 13)).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32]);
    expect(columnTicks(14, 10, 30)).toEqual([0, 5, 10]); // 13 would crowd 10
    expect(columnTicks(16, 10, 30)).toEqual([0, 5, 10, 15]);
    expect(columnTicks(1, 100, 20)).toEqual([0]);
  });
});

describe("LineChart axes", () => {
  /** Horizontal extent [left, right] of each x tick label (anchored in the middle). */
  const xBoxes = (chart: LineChart) => Array.from(chart.el.querySelectorAll("text.lw-tick"))
    .filter((t) => t.getAttribute("text-anchor") === "middle")
    .map((t) => { const x = Number(t.getAttribute("x")), w = textWidth(t.textContent!); return [x - w / 2, x + w / 2]; });

  it("a deletion curve over fractions gets nice percent ticks that do not collide", () => {
    for (const n of [6, 11, 13, 14, 21, 26, 51]) {
      const xs = Array.from({ length: n }, (_, i) => i / (n - 1));
      const chart = new LineChart(n, [{ name: "top tokens first", values: xs.map((x) => 1 - x), color: "#c00" }],
        { width: 460, height: 240, xs, xFormat: (v) => `${Math.round(100 * v)}%` });
      expect(chart.ticks.x[0]).toBe("0%");
      expect(chart.ticks.x[chart.ticks.x.length - 1]).toBe("100%");
      expect(chart.ticks.x.every((t) => /^(0|20|40|50|60|80|100|10|30|70|90|25|75)%$/.test(t))).toBe(true);
      const boxes = xBoxes(chart);
      for (let k = 1; k < boxes.length; k++) expect(boxes[k][0]).toBeGreaterThan(boxes[k - 1][1]);
    }
  });
  it("y ticks are round numbers over a rounded domain, never odd values like 1.38 or -0.08", () => {
    const chart = new LineChart(3, [{ name: "a", values: [0.65, 1.0, 1.38], color: "#000" }, { name: "b", values: [-0.08, 0, 0.1], color: "#111" }]);
    expect(chart.ticks.y).toEqual(["-0.5", "0.0", "0.5", "1.0", "1.5"]);
    const probe = new LineChart(4, [{ name: "acc", values: [0.5, 0.6, 0.7, 0.9], color: "#000" }], { yMin: -0.08, yMax: 1 });
    expect(probe.ticks.y).toEqual(["-0.2", "0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
  });
  it("layer ticks thin out for deep models instead of overlapping", () => {
    const n = 49; // embeddings + 48 blocks
    const chart = new LineChart(n, [{ name: "accuracy", values: new Array(n).fill(0.5), color: "#000" }], { xTick: (c) => (c === 0 ? "emb" : String(c - 1)) });
    expect(chart.ticks.x.length).toBeLessThan(n);
    expect(chart.ticks.x[0]).toBe("emb");
    const boxes = xBoxes(chart);
    for (let k = 1; k < boxes.length; k++) expect(boxes[k][0]).toBeGreaterThan(boxes[k - 1][1]);
  });
  it("text takes its colour from the theme (CSS classes), not fixed greys", () => {
    const chart = new LineChart(3, [{ name: "a", values: [0, 1, 2], color: "#000" }], { yLabel: "y" });
    expect(chart.el.getAttribute("class")).toBe("lw-chart");
    for (const t of Array.from(chart.el.querySelectorAll("text"))) expect(t.getAttribute("fill")).toBeNull();
  });
});
