// A small sortable table (click a header to sort, click a row to select). Cells use textContent.
import { h } from "./dom";

/** A cell value as Python sends it (JSON: NaN arrives as null). */
export type Cell = number | string | boolean | null | undefined;
export type Row = Record<string, Cell>;

export interface Column {
  key: string;
  label: string;
  format?: (v: Cell) => string; // default: String(v), "" for null/undefined
  help?: string;
}

function missing(v: unknown): boolean {
  return v === null || v === undefined || (typeof v === "number" && Number.isNaN(v));
}

/** Ascending order of two cell values: numbers by value, anything else as text with digit runs compared
 * as numbers ("L2" < "L10"). */
export function compareValues(x: unknown, y: unknown): number {
  if (typeof x === "number" && typeof y === "number") return x < y ? -1 : x > y ? 1 : 0;
  return String(x).localeCompare(String(y), undefined, { numeric: true });
}

/** Rows sorted by column `key` (a new array). Stable: equal values keep their order in either
 * direction. Missing values (null, undefined, NaN) go last in either direction. */
export function sortRows<R extends Record<string, unknown>>(rows: readonly R[], key: string, desc = false): R[] {
  return rows.slice().sort((a, b) => {
    const x = a[key], y = b[key];
    const mx = missing(x), my = missing(y);
    if (mx || my) return mx === my ? 0 : mx ? 1 : -1;
    const cmp = compareValues(x, y);
    return desc ? -cmp : cmp;
  });
}

export class SortableTable {
  readonly el: HTMLDivElement;
  private body: HTMLTableSectionElement;
  private sortKey: string;
  private desc = true;
  private selectedId: string | null = null;

  constructor(private columns: Column[], private rows: Row[],
              private idOf: (row: Row) => string,
              private onSelect?: (row: Row) => void, testid = "table") {
    this.sortKey = columns[0].key;
    const head = h("tr");
    for (const c of columns) {
      const th = h("th", { text: c.label, title: c.help, "data-key": c.key });
      th.addEventListener("click", () => {
        this.desc = this.sortKey === c.key ? !this.desc : true;
        this.sortKey = c.key;
        this.render();
      });
      head.append(th);
    }
    this.body = h("tbody");
    this.el = h("div", { class: "lw-scroll", "data-testid": testid },
      h("table", { class: "lw-table" }, h("thead", {}, head), this.body));
    this.render();
  }

  /** Replace the rows (keeping the sort order and the selection). */
  setRows(rows: Row[]): void {
    this.rows = rows;
    this.render();
  }

  sortBy(key: string, desc = true): void {
    this.sortKey = key;
    this.desc = desc;
    this.render();
  }

  select(id: string | null): void {
    this.selectedId = id;
    for (const tr of Array.from(this.body.children) as HTMLElement[]) tr.classList.toggle("lw-sel", tr.dataset.id === id);
  }

  private render(): void {
    const sorted = sortRows(this.rows, this.sortKey, this.desc);
    this.body.replaceChildren(...sorted.map((row) => {
      const tr = h("tr", { "data-id": this.idOf(row) });
      for (const c of this.columns) {
        const v = row[c.key];
        tr.append(h("td", { text: c.format ? c.format(v) : v === null || v === undefined ? "" : String(v) }));
      }
      tr.addEventListener("click", () => this.onSelect?.(row));
      return tr;
    }));
    this.select(this.selectedId);
  }
}
