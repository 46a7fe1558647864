// Number formatting shared by every view: one placeholder for a missing or non-finite value.

/** Shown where a number is missing (null, undefined, not a number) or not finite (NaN, ±Infinity). */
export const MISSING = "\u2013";

function finite(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** `v` with `digits` decimals, or MISSING. */
export function fmt(v: unknown, digits = 3): string {
  return finite(v) ? v.toFixed(digits) : MISSING;
}

/** A fraction as a percentage, e.g. 0.1234 -> "12.3%", or MISSING. */
export function pct(v: unknown, digits = 1): string {
  return finite(v) ? `${(100 * v).toFixed(digits)}%` : MISSING;
}

/** Like fmt, with an explicit "+" on values >= 0 (shifts, changes). */
export function fmtSigned(v: unknown, digits = 3): string {
  return finite(v) ? (v >= 0 ? "+" : "") + v.toFixed(digits) : MISSING;
}
