import { describe, expect, it } from "vitest";
import { compareValues, Row, sortRows, SortableTable } from "../src/lib/table";

const ids = (rows: { id: string }[]) => rows.map((r) => r.id);

describe("sortRows", () => {
  it("orders numbers by value, not as text", () => {
    const rows = [{ id: "a", v: 10 }, { id: "b", v: 9 }, { id: "c", v: -1 }, { id: "d", v: 100 }];
    expect(ids(sortRows(rows, "v"))).toEqual(["c", "b", "a", "d"]);
    expect(ids(sortRows(rows, "v", true))).toEqual(["d", "a", "b", "c"]);
    expect(ids(rows)).toEqual(["a", "b", "c", "d"]); // a new array: the input keeps its order
  });
  it("orders strings, with digit runs as numbers", () => {
    const rows = [{ id: "1", s: "L10" }, { id: "2", s: "L2" }, { id: "3", s: "banana" }, { id: "4", s: "Apple" }];
    expect(ids(sortRows(rows, "s"))).toEqual(["4", "3", "2", "1"]);
    expect(compareValues("L2", "L10")).toBeLessThan(0);
    expect(compareValues(2, 10)).toBeLessThan(0);
    expect(compareValues(3, 3)).toBe(0);
  });
  it("is stable in both directions", () => {
    const rows = [{ id: "a", v: 1 }, { id: "b", v: 2 }, { id: "c", v: 1 }, { id: "d", v: 2 }, { id: "e", v: 1 }];
    expect(ids(sortRows(rows, "v"))).toEqual(["a", "c", "e", "b", "d"]);
    expect(ids(sortRows(rows, "v", true))).toEqual(["b", "d", "a", "c", "e"]);
  });
  it("puts missing values (NaN, null, undefined) last in either direction", () => {
    const rows = [{ id: "a", v: NaN }, { id: "b", v: 2 }, { id: "c", v: null }, { id: "d", v: 1 }, { id: "e" }];
    expect(ids(sortRows(rows, "v"))).toEqual(["d", "b", "a", "c", "e"]);
    expect(ids(sortRows(rows, "v", true))).toEqual(["b", "d", "a", "c", "e"]);
  });
});

describe("SortableTable", () => {
  const rows = () => [
    { name: "<script>alert(1)</script>", n: 3 },
    { name: "b & c", n: 10 },
    { name: "a", n: 2 },
  ];
  const make = (onSelect?: (r: Row) => void) => new SortableTable(
    [{ key: "name", label: "name <i>" }, { key: "n", label: "n", format: (v) => `#${v}`, help: "count" }],
    rows(), (r) => String(r.name), onSelect, "tbl");
  const column = (t: SortableTable, i: number) => Array.from(t.el.querySelectorAll("tbody tr")).map((tr) => tr.children[i].textContent);

  it("shows cells and headers as text, formatted, sorted by the first column descending", () => {
    const t = make();
    expect(t.el.dataset.testid).toBe("tbl");
    expect(t.el.querySelector("script, i")).toBeNull();
    expect(Array.from(t.el.querySelectorAll("th")).map((th) => th.textContent)).toEqual(["name <i>", "n"]);
    expect(t.el.querySelector("th[data-key=n]")!.getAttribute("title")).toBe("count");
    expect(column(t, 0)).toEqual(["b & c", "a", "<script>alert(1)</script>"]);
    expect(column(t, 1)).toEqual(["#10", "#2", "#3"]);
  });
  it("sorts by a clicked header, descending first, and flips on a second click", () => {
    const t = make();
    const th = t.el.querySelector("th[data-key=n]") as HTMLElement;
    th.click();
    expect(column(t, 1)).toEqual(["#10", "#3", "#2"]);
    th.click();
    expect(column(t, 1)).toEqual(["#2", "#3", "#10"]);
    t.sortBy("name", false);
    expect(column(t, 0)).toEqual(["<script>alert(1)</script>", "a", "b & c"]);
  });
  it("reports a clicked row and keeps the selection marked across re-sorts", () => {
    const seen: unknown[] = [];
    const t = make((r) => seen.push(r.n));
    (t.el.querySelector("tr[data-id=a]") as HTMLElement).click();
    expect(seen).toEqual([2]);
    t.select("a");
    const marked = () => Array.from(t.el.querySelectorAll("tr.lw-sel")).map((tr) => (tr as HTMLElement).dataset.id);
    expect(marked()).toEqual(["a"]);
    t.sortBy("n", true);
    expect(marked()).toEqual(["a"]);
    t.select(null);
    expect(marked()).toEqual([]);
  });
  it("replaces its rows (data arriving later), keeping the sort and the selection", () => {
    const t = new SortableTable([{ key: "n", label: "n" }], [], (r) => String(r.n), undefined, "late");
    t.sortBy("n", true);
    t.select("2");
    expect(t.el.querySelectorAll("tbody tr")).toHaveLength(0);
    t.setRows([{ n: 1 }, { n: 3 }, { n: 2 }]);
    expect(Array.from(t.el.querySelectorAll("tbody tr")).map((tr) => (tr as HTMLElement).dataset.id)).toEqual(["3", "2", "1"]);
    expect(Array.from(t.el.querySelectorAll("tr.lw-sel")).map((tr) => (tr as HTMLElement).dataset.id)).toEqual(["2"]);
  });
});
