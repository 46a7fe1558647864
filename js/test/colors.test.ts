import { describe, expect, it } from "vitest";
import {
  autoScale, colorScale, contrast, css, DIVERGING, div, divergingScale, gradientCSS, ink, luminance, pixels, RGB, scaleColor, seq,
  sequentialScale, SEQUENTIAL,
} from "../src/lib/colors";

const WHITE = [255, 255, 255], DEEP_BLUE = [8, 48, 107];
const NEG = [5, 48, 97], CENTRE = [247, 247, 247], POS = [103, 0, 31];
const lightness = (c: number[]) => c[0] + c[1] + c[2];

describe("colour scales", () => {
  it("sequential maps 0 to white and vmax to the dark end, clamping outside", () => {
    expect(SEQUENTIAL).toHaveLength(256);
    expect(seq(0, 2)).toEqual(WHITE);
    expect(seq(2, 2)).toEqual(DEEP_BLUE);
    expect(seq(5, 2)).toEqual(DEEP_BLUE);
    expect(seq(-1, 2)).toEqual(WHITE);
    expect(seq(1, 2)).toBe(SEQUENTIAL[128]);
    // darker with larger values
    for (let i = 1; i < 256; i++) expect(lightness(SEQUENTIAL[i])).toBeLessThanOrEqual(lightness(SEQUENTIAL[i - 1]));
  });
  it("sequential is white for non-finite values and an empty range", () => {
    expect(seq(NaN, 1)).toEqual(WHITE);
    expect(seq(Infinity, 1)).toEqual(WHITE);
    expect(seq(3, 0)).toEqual(WHITE);
  });
  it("diverging maps -m, 0 and m to the blue end, the neutral centre and the red end", () => {
    expect(div(-3, 3)).toEqual(NEG);
    expect(div(0, 3)).toEqual(CENTRE);
    expect(div(3, 3)).toEqual(POS);
    expect(div(-10, 3)).toEqual(NEG);
    expect(div(10, 3)).toEqual(POS);
    expect(div(NaN, 3)).toEqual(CENTRE);
    expect(div(1, 0)).toEqual(CENTRE);
    expect(DIVERGING[(DIVERGING.length - 1) / 2]).toEqual(CENTRE);
    const small = div(0.3, 3), big = div(2.7, 3);
    expect(small[2]).toBeGreaterThan(big[2]); // more red, less blue, further from 0
    expect(div(-1, 3)[2]).toBeGreaterThan(div(-1, 3)[0]); // negative: blue
    expect(div(1, 3)[0]).toBeGreaterThan(div(1, 3)[2]); // positive: red
  });
  it("scaleColor picks the scale, pixels writes RGBA per value", () => {
    expect(scaleColor("div", 2)(-2)).toEqual(NEG);
    expect(scaleColor("seq", 2)(2)).toEqual(DEEP_BLUE);
    expect(scaleColor(undefined, 2)(0)).toEqual(WHITE);
    expect(Array.from(pixels([0, 2], scaleColor("seq", 2)))).toEqual([...WHITE, 255, ...DEEP_BLUE, 255]);
  });
  it("formats CSS and picks readable ink", () => {
    expect(css([1, 2, 3])).toBe("rgb(1,2,3)");
    expect(ink([255, 255, 255])).toBe("#000");
    expect(ink([8, 48, 107])).toBe("#fff");
    expect(ink(CENTRE as [number, number, number])).toBe("#000");
  });
});

describe("colour scale objects", () => {
  it("diverging: centred on 0, which is exactly the neutral colour, for any range", () => {
    for (const m of [1, 0.37, 12.5, 1e-4]) {
      const s = divergingScale(m, "score");
      expect(s.kind).toBe("div");
      expect(s.domain).toEqual([-m, m]);
      expect(s.color(0)).toEqual(CENTRE);
      expect(s.color(0)).toBe(DIVERGING[(DIVERGING.length - 1) / 2]);
      expect(s.color(-m)).toEqual(NEG);
      expect(s.color(m)).toEqual(POS);
    }
    expect(divergingScale(-2).domain).toEqual([-2, 2]);
    expect(colorScale("div", 3, "x").color(-1e-9)).not.toEqual(NEG);
  });
  it("sequential: monotone (darker for larger values) over its domain, clamped outside", () => {
    const s = sequentialScale(4, "attention weight");
    expect(s.domain).toEqual([0, 4]);
    expect(s.label).toBe("attention weight");
    let prev = Infinity;
    for (let v = 0; v <= 4; v += 0.01) {
      const l = luminance(s.color(v));
      expect(l).toBeLessThanOrEqual(prev);
      prev = l;
    }
    expect(s.color(-1)).toEqual(WHITE);
    expect(s.color(9)).toEqual(DEEP_BLUE);
    const shifted = sequentialScale(3, "", 1); // [1, 3]
    expect(shifted.color(1)).toEqual(WHITE);
    expect(shifted.color(3)).toEqual(DEEP_BLUE);
    expect(sequentialScale(0).color(5)).toEqual(WHITE); // an empty domain
    expect(colorScale("seq", 2).color(1)).toBe(seq(1, 2));
  });
  it("auto: sequential from 0 for non-negative values, diverging when any is negative", () => {
    expect(autoScale([0.5, 2, NaN]).domain).toEqual([0, 2]);
    expect(autoScale([-3, 1]).kind).toBe("div");
    expect(autoScale([-3, 1]).domain).toEqual([-3, 3]);
    expect(autoScale([]).domain).toEqual([0, 0]);
  });
  it("the colour bar gradient runs through the scale from the low end to the high end", () => {
    const g = gradientCSS(divergingScale(2), 3);
    expect(g).toBe(`linear-gradient(to right, ${css(NEG as RGB)} 0.0%, ${css(CENTRE as RGB)} 50.0%, ${css(POS as RGB)} 100.0%)`);
  });
});

describe("text contrast (WCAG 2)", () => {
  it("computes relative luminance and contrast ratios", () => {
    expect(luminance([0, 0, 0])).toBe(0);
    expect(luminance([255, 255, 255])).toBeCloseTo(1);
    expect(contrast([0, 0, 0], [255, 255, 255])).toBeCloseTo(21);
    expect(contrast([120, 120, 120], [120, 120, 120])).toBe(1);
  });
  it("picks the ink with the higher contrast on every colour of both palettes (at least 4.5:1 on pale cells)", () => {
    for (const c of [...SEQUENTIAL, ...DIVERGING]) {
      const dark = contrast(c, [0, 0, 0]), light = contrast(c, [255, 255, 255]);
      expect(ink(c)).toBe(dark >= light ? "#000" : "#fff");
      expect(Math.max(dark, light)).toBeGreaterThanOrEqual(4.5);
    }
    expect(ink(SEQUENTIAL[40])).toBe("#000"); // pale blue: dark text, never white
    expect(ink([253, 219, 199])).toBe("#000"); // pale red
  });
});
