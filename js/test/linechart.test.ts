import { describe, expect, it } from "vitest";
import { LineChart, Series, yRange } from "../src/lib/linechart";

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
    expect(cols[0].getAttribute("fill")).toBe("rgba(0,0,0,0.04)");
    cols[3].dispatchEvent(new MouseEvent("mouseleave"));
    expect(cols[3].getAttribute("fill")).toBe("rgba(214,39,40,0.10)"); // the selection stays marked
  });
});
