// CSV files the views write in the browser (the audit summary's download button): the same rule as
// llm_widgets.checks.csv_cell on the Python side, so both exports are spreadsheet-safe.

const FORMULA_STARTS = ["=", "+", "-", "@"];
const BLANK = /^[\s\p{Cc}\p{Cf}]+/u; // whitespace, control and invisible format characters (ZWSP, BOM)

/** A text a spreadsheet could run as a formula gets a leading apostrophe: its first character is a
 * control character (tab, CR, LF, ...), or once NFKC-normalised (fullwidth ＝＋－＠ are = + - @) and
 * stripped of leading blanks it starts with = + - @. Numbers, booleans and other text stay as they are. */
export function csvSafe(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "boolean") return v ? "True" : "False";
  const s = String(v);
  if (typeof v !== "string" || !s) return s;
  const head = s.normalize("NFKC").replace(BLANK, "");
  return /^\p{Cc}/u.test(s) || FORMULA_STARTS.some((c) => head.startsWith(c)) ? `'${s}` : s;
}

/** One CSV field: csvSafe, then quoted when it holds a quote, comma or line break. */
export function csvField(v: unknown): string {
  const s = csvSafe(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A CSV file (CRLF lines) of `rows` with the columns `cols`, header first. */
export function csvOf(cols: string[], rows: Record<string, unknown>[]): string {
  return [cols.join(","), ...rows.map((r) => cols.map((c) => csvField(r[c])).join(","))].join("\r\n") + "\r\n";
}
