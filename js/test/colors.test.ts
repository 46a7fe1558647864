import { describe, expect, it } from "vitest";
import { css, DIVERGING, div, ink, pixels, scaleColor, seq, SEQUENTIAL } from "../src/lib/colors";

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
    expect(ink([255, 255, 255])).toBe("#111");
    expect(ink([8, 48, 107])).toBe("#fff");
    expect(ink(CENTRE as [number, number, number])).toBe("#111");
  });
});
