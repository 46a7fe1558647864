import { afterEach, describe, expect, it, vi } from "vitest";
import { category, PALETTE, Scatter } from "../src/lib/scatter";
import { mouse, placeAt, stubCanvas } from "./helpers";

afterEach(() => vi.restoreAllMocks());

// 100 x 100 px, pad 12: data [0, 2] maps to [12, 88] on x and [88, 12] on y
const make = (brushes: number[][] = []) => {
  const sc = new Scatter({ width: 100, height: 100, onBrush: (idx) => brushes.push(idx), describe: (i) => `<i>point ${i}</i>` });
  sc.setData([0, 1, 2, 2], [0, 1, 2, 0], ["red", "green", "blue", "black"]);
  return sc;
};

describe("category colours", () => {
  it("cycles the palette; 255 and negatives are 'none'", () => {
    expect(category(0)).toBe(PALETTE[0]);
    expect(category(11)).toBe(PALETTE[1]);
    expect(category(255)).toBe("#bbb");
    expect(category(-1)).toBe("#bbb");
  });
});

describe("Scatter", () => {
  it("publishes the data -> pixel mapping", () => {
    const sc = make();
    expect(sc.canvas.dataset).toMatchObject({ x0: "0", x1: "2", y0: "0", y1: "2", pad: "12", n: "4" });
    expect(sc.px(0)).toEqual([12, 88]);
    expect(sc.px(1)).toEqual([50, 50]);
    expect(sc.px(2)).toEqual([88, 12]);
  });

  it("a drag selects the points inside its rectangle, in any direction", () => {
    const brushes: number[][] = [];
    const sc = make(brushes);
    mouse(sc.canvas, "mousedown", 0, 0);
    mouse(sc.canvas, "mousemove", 30, 30);
    mouse(sc.canvas, "mouseup", 60, 60);
    mouse(sc.canvas, "mousedown", 100, 100); // bottom-right to top-left
    mouse(sc.canvas, "mouseup", 40, 0);
    expect(brushes).toEqual([[1], [1, 2, 3]]);
  });

  it("a click selects the nearest point, or nothing away from points", () => {
    const brushes: number[][] = [];
    const sc = make(brushes);
    mouse(sc.canvas, "mousedown", 14, 86);
    mouse(sc.canvas, "mouseup", 15, 86);
    mouse(sc.canvas, "mousedown", 30, 70);
    mouse(sc.canvas, "mouseup", 30, 70);
    expect(brushes).toEqual([[0], []]);
  });

  it("finishes a drag when the mouse leaves the canvas; a mouseup without a drag does nothing", () => {
    const brushes: number[][] = [];
    const sc = make(brushes);
    mouse(sc.canvas, "mouseup", 50, 50);
    expect(brushes).toEqual([]);
    mouse(sc.canvas, "mousedown", 0, 100);
    mouse(sc.canvas, "mouseleave", 55, 45);
    expect(brushes).toEqual([[0, 1]]);
    mouse(sc.canvas, "mouseup", 50, 50); // the drag is over
    expect(brushes).toHaveLength(1);
  });

  it("subtracts the canvas' page position", () => {
    const brushes: number[][] = [];
    const sc = make(brushes);
    placeAt(sc.canvas, 300, 200, 100, 100);
    mouse(sc.canvas, "mousedown", 300 + 88, 200 + 12);
    mouse(sc.canvas, "mouseup", 300 + 88, 200 + 12);
    expect(brushes).toEqual([[2]]);
  });

  it("shows the nearest point's description as text on hover", () => {
    const sc = make();
    const tip = sc.el.lastElementChild as HTMLElement;
    mouse(sc.canvas, "mousemove", 51, 50);
    expect(tip.style.display).toBe("block");
    expect(tip.textContent).toBe("<i>point 1</i>");
    expect(tip.querySelector("i")).toBeNull();
    mouse(sc.canvas, "mousemove", 30, 70);
    expect(tip.style.display).toBe("none");
  });

  it("draws every point, the selected ones last and outlined", () => {
    const calls = stubCanvas();
    const sc = make();
    calls.length = 0;
    sc.setSelection([0]);
    expect(sc.canvas.dataset.selected).toBe("1");
    const arcs = calls.filter((c) => c.name === "arc").map((c) => c.args.slice(0, 3));
    expect(arcs).toEqual([[50, 50, 3], [88, 12, 3], [88, 88, 3], [12, 88, 4]]);
    expect(calls.filter((c) => c.name === "stroke")).toHaveLength(1);
  });

  it("spreads degenerate data so every point is on the canvas", () => {
    const sc = new Scatter({ width: 100, height: 100 });
    sc.setData([3, 3], [5, 5], ["a", "b"]);
    expect(sc.px(0)).toEqual([50, 50]);
  });
});
