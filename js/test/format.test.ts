import { describe, expect, it } from "vitest";
import { fmt, fmtSigned, MISSING, pct, prob, quoted } from "../src/lib/format";

describe("format", () => {
  it("fmt rounds to the given digits (3 by default)", () => {
    expect(fmt(1.23456)).toBe("1.235");
    expect(fmt(1.23456, 4)).toBe("1.2346");
    expect(fmt(-0.5, 1)).toBe("-0.5");
    expect(fmt(2, 0)).toBe("2");
    expect(fmt(0)).toBe("0.000");
  });
  it("uses one placeholder for missing and non-finite values", () => {
    expect(MISSING).toBe("\u2013");
    for (const v of [NaN, Infinity, -Infinity, null, undefined, "3", {}]) {
      expect(fmt(v)).toBe(MISSING);
      expect(pct(v)).toBe(MISSING);
      expect(fmtSigned(v)).toBe(MISSING);
    }
  });
  it("pct shows a fraction as a percentage with one decimal", () => {
    expect(pct(0.1234)).toBe("12.3%");
    expect(pct(1)).toBe("100.0%");
    expect(pct(-0.05)).toBe("-5.0%");
    expect(pct(0.12345, 2)).toBe("12.35%");
  });
  it("fmtSigned adds + to values >= 0 only", () => {
    expect(fmtSigned(0)).toBe("+0.000");
    expect(fmtSigned(0.25, 2)).toBe("+0.25");
    expect(fmtSigned(-1)).toBe("-1.000");
  });
});

describe("prob and quoted: numbers and tokens to read", () => {
  it("never prints a small probability as 0.0%", () => {
    expect([prob(0.1234), prob(0.001), prob(0.00012), prob(3e-9), prob(0), prob(NaN)]).toEqual(["12.3%", "0.1%", "1.2e-4", "3.0e-9", "0", MISSING]);
  });
  it("isolates a token's direction and escapes control characters", () => {
    const arabic = "\u0645\u0631\u062d\u0628\u0627";
    expect(quoted(arabic)).toBe(`\u2068"${arabic}"\u2069`);
    expect(quoted("a\nb")).toBe('\u2068"a\\nb"\u2069');
  });
});
