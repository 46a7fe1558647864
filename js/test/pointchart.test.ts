import { describe, expect, it } from "vitest";
import { LabelPlacer, logTicks, niceTicks, PointChart, tickLabel } from "../src/lib/pointchart";

describe("ticks", () => {
  it("niceTicks: round steps covering the range", () => {
    const near = (got: number[], want: number[]) => {
      expect(got).toHaveLength(want.length);
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 12));
    };
    near(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    near(niceTicks(0.55, 1, 4), [0.6, 0.8, 1]); // step 0.2: the smallest round step >= 0.45 / 4
    near(niceTicks(-1, 120, 3), [0, 50, 100]);
    expect(Object.is(niceTicks(-0.1, 1, 5)[0], -0)).toBe(false);
    expect(niceTicks(3, 3)).toEqual([3]);
    expect(niceTicks(NaN, 1)).toEqual([]);
    expect(niceTicks(2, 1)).toEqual([]);
  });
  it("logTicks: the powers of ten around the data", () => {
    expect(logTicks(3, 171202)).toEqual([1, 10, 100, 1000, 10000, 100000, 1000000]);
    expect(logTicks(10, 10)).toEqual([10, 100]);
    expect(logTicks(0, 5)).toEqual([]);
  });
  it("tickLabel: k and M for thousands and millions", () => {
    expect([1, 100, 1000, 25000, 1e6, 0.25].map(tickLabel)).toEqual(["1", "100", "1k", "25k", "1M", "0.25"]);
  });
});

describe("LabelPlacer", () => {
  it("moves a label down until it overlaps no earlier one", () => {
    const p = new LabelPlacer(12);
    expect(p.place(10, 50, 40)).toBe(50);
    expect(p.place(20, 52, 40)).toBe(64); // overlaps the first: one line down
    expect(p.place(100, 50, 40)).toBe(50); // elsewhere: stays
    const q = new LabelPlacer(12);
    q.place(10, 50, 40);
    expect(q.place(60, 50, 40, false)).toBe(62); // ends at x = 60: its box [20, 60] overlaps [10, 50]
    expect(q.place(95, 50, 40, false)).toBe(50); // [55, 95] overlaps neither at its height
  });
  it("keeps labels off blocked rectangles (dots, error bars); gap: the text starts gap px from x", () => {
    const p = new LabelPlacer(13, 7);
    p.block(20, 22, 40, 80); // an error bar at x = 21 from y = 40 to 80
    expect(p.place(0, 50, 40)).toBe(102); // [7, 47] crosses the bar: one line down until its box (y 92 to 105) is below it
    expect(p.placed[0]).toEqual({ x0: 7, x1: 47, y: 102 });
    expect(p.place(30, 50, 40)).toBe(50); // [37, 77]: clear of the bar
  });
});

describe("PointChart", () => {
  const points = [
    { x: 10, y: 1, lo: 0.97, hi: 1, label: "<b>logistic</b>", color: "#1f77b4" },
    { x: 3, y: 0.6, lo: 0.5, hi: 0.7, label: "tree", color: "#ff7f0e" },
    { x: 70000, y: 0.99, label: "student", color: "#2ca02c" },
    { x: 0, y: 0.5, label: "not on a log axis", color: "#000" },
  ];
  const make = (clicks: number[] = []) => new PointChart(points, { xLog: true, yMax: 1, onClick: (i) => clicks.push(i),
    describe: (i) => `<i>${i}</i>`, testid: "chart" });

  it("draws a clickable point per finite point, labelled as text", () => {
    const clicks: number[] = [];
    const c = make(clicks);
    const dots = c.el.querySelectorAll("circle[data-index]");
    expect(Array.from(dots).map((d) => d.getAttribute("data-index"))).toEqual(["0", "1", "2"]);
    (c.el.querySelector("[data-testid=point-2]") as SVGCircleElement).dispatchEvent(new MouseEvent("click"));
    (c.el.querySelector("[data-testid=point-0]") as SVGCircleElement).dispatchEvent(new MouseEvent("click"));
    expect(clicks).toEqual([2, 0]);
    expect(c.el.querySelector("[data-label='0']")!.textContent).toBe("<b>logistic</b>");
    expect(c.el.querySelector("b, i")).toBeNull();
    expect(dots[0].querySelector("title")!.textContent).toBe("<i>0</i>");
  });
  it("maps log10(x) and y linearly, larger y higher up", () => {
    const c = make();
    const [x0, y0] = c.position(0)!, [x1, y1] = c.position(1)!, [x2] = c.position(2)!;
    expect(x1 < x0 && x0 < x2).toBe(true);
    expect((x0 - x1) / (x2 - x0)).toBeCloseTo(Math.log10(10 / 3) / Math.log10(7000), 6);
    expect(y0).toBeLessThan(y1);
    expect(c.position(3)).toBeNull();
    expect(c.el.dataset.y1).toBe("1");
  });
  it("draws error bars and outlines the selected point", () => {
    const c = make();
    expect(c.el.querySelectorAll("line[stroke='#1f77b4']")).toHaveLength(1);
    c.select(1);
    const dot = c.el.querySelector("[data-testid=point-1]") as SVGElement;
    expect(dot.classList.contains("lw-sel")).toBe(true);
    expect(c.el.dataset.selected).toBe("1");
    // the shared selection colour (red, from the theme's --lw-sel), not black that vanishes in dark theme
    expect(dot.getAttribute("stroke")).toBe("#d62728");
    expect(dot.style.stroke).toContain("--lw-sel");
    expect((c.el.querySelector("[data-testid=point-0]") as SVGElement).getAttribute("stroke")).toBe("#fff");
    c.select(-1);
    expect(c.el.querySelectorAll(".lw-sel")).toHaveLength(0);
    expect(dot.getAttribute("stroke")).toBe("#fff");
    expect(dot.style.stroke).toBe("");
  });
});
