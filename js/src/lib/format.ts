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

/** A probability to read: a percentage from 0.1% up ("12.3%"), two significant digits below that
 * ("1.2e-4", never "0.0%"), "0" for exactly 0, or MISSING. */
export function prob(v: unknown): string {
  if (!finite(v)) return MISSING;
  if (v === 0) return "0";
  return Math.abs(v) >= 1e-3 ? pct(v) : v.toExponential(1);
}

/** A token quoted for a line of text: JSON-quoted (control characters escaped) and isolated from the
 * surrounding direction (U+2068 ... U+2069), so a right-to-left token never reorders the line. */
export function quoted(token: unknown): string {
  return `\u2068${JSON.stringify(String(token ?? ""))}\u2069`;
}
