import { describe, expect, it } from "vitest";
import { csvField, csvOf, csvSafe } from "../src/lib/csv";

describe("csvSafe: the rule of llm_widgets.checks.csv_cell", () => {
  it("neutralises text a spreadsheet would run as a formula, however it is hidden", () => {
    for (const s of ["=1+1", "+1", "-1", "@SUM(A1)", " =cmd", "\t=1", "\u3000=1", "\uFF1D1", "\uFF0B1", "\uFF0D1",
      "\uFF201", "\u200B=1", "\uFEFF=1", "\n=1", "\r=1", "\tplain"]) {
      expect(csvSafe(s), JSON.stringify(s)).toBe(`'${s}`);
    }
  });
  it("keeps numbers, booleans and ordinary text", () => {
    expect(csvSafe(-0.5)).toBe("-0.5");
    expect(csvSafe(true)).toBe("True");
    expect(csvSafe(null)).toBe("");
    for (const s of ["counterfactual", "a=b", "x - y", "", "'=already"]) expect(csvSafe(s)).toBe(s);
  });
  it("quotes fields with quotes, commas or line breaks, after neutralising", () => {
    expect(csvField('say "hi", then')).toBe('"say ""hi"", then"');
    expect(csvField("\n=1")).toBe("\"'\n=1\"");
    expect(csvOf(["a", "b"], [{ a: "=x", b: 2 }])).toBe("a,b\r\n'=x,2\r\n");
  });
});
