import { describe, expect, it } from "vitest";
import { ColorBar, tickLabel } from "../src/lib/colorbar";
import { divergingScale, sequentialScale } from "../src/lib/colors";

describe("colour bar", () => {
  it("formats tick labels compactly", () => {
    expect([0, 1, 0.5, 0.123456, 12.345, -2, 123456, 1e-5, NaN].map(tickLabel))
      .toEqual(["0", "1", "0.5", "0.123", "12.3", "-2", "1.2e+5", "1.0e-5", "\u2013"]);
  });
  it("shows the domain's ends, 0 in the middle of a diverging scale, and the units (as text)", () => {
    const bar = new ColorBar("cb");
    expect(bar.el.style.display).toBe("none");
    bar.set(sequentialScale(0.8, "attention weight"));
    expect(bar.el.style.display).toBe("");
    expect(bar.el.dataset).toMatchObject({ testid: "cb", kind: "seq", min: "0", max: "0.8", label: "attention weight" });
    expect(Array.from(bar.el.querySelectorAll(".lw-cbar-ticks span")).map((s) => s.textContent)).toEqual(["0", "0.8"]);
    bar.set(divergingScale(1), "<b>normalised</b> metric");
    expect(Array.from(bar.el.querySelectorAll(".lw-cbar-ticks span")).map((s) => s.textContent)).toEqual(["-1", "0", "1"]);
    expect(bar.el.querySelector("b")).toBeNull();
    expect(bar.el.textContent).toContain("<b>normalised</b> metric");
    expect(bar.scale?.kind).toBe("div");
    bar.set(null);
    expect(bar.el.style.display).toBe("none");
  });
});
