// A small sortable table (click a header to sort, click a row to select). Cells use textContent.
import { h } from "./dom";

export interface Column {
  key: string;
  label: string;
  format?: (v: number | string) => string;
  help?: string;
}

export class SortableTable {
  readonly el: HTMLDivElement;
  private body: HTMLTableSectionElement;
  private sortKey: string;
  private desc = true;
  private selectedId: string | null = null;

  constructor(private columns: Column[], private rows: Record<string, number | string>[],
              private idOf: (row: Record<string, number | string>) => string,
              private onSelect?: (row: Record<string, number | string>) => void, testid = "table") {
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

  sortBy(key: string, desc = true): void {
    this.sortKey = key;
    this.desc = desc;
    this.render();
  }

  select(id: string | null): void {
    this.selectedId = id;
    for (const tr of Array.from(this.body.rows)) tr.classList.toggle("lw-sel", tr.dataset.id === id);
  }

  private render(): void {
    const k = this.sortKey;
    const sorted = this.rows.slice().sort((a, b) => {
      const x = a[k], y = b[k];
      const cmp = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return this.desc ? -cmp : cmp;
    });
    this.body.replaceChildren(...sorted.map((row) => {
      const tr = h("tr", { "data-id": this.idOf(row) });
      for (const c of this.columns) tr.append(h("td", { text: c.format ? c.format(row[c.key]) : String(row[c.key]) }));
      tr.addEventListener("click", () => this.onSelect?.(row));
      return tr;
    }));
    this.select(this.selectedId);
  }
}
