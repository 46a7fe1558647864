// A strip of tokens, each coloured by a weight. Token text is set with textContent: always escaped.
import { seq, div, css, ink } from "./colors";
import { fmt } from "./format";
import { absMax } from "./ndarray";

// inline style per colour-table entry (every colour is an entry of the colour tables)
const STYLE = new WeakMap<object, string>();

export interface StripOptions {
  onHover?: (i: number | null) => void;
  onClick?: (i: number) => void;
  testid?: string;
}

export class TokenStrip {
  readonly el: HTMLDivElement;
  private spans: HTMLSpanElement[] = [];
  private selected = -1;
  private leaving: ReturnType<typeof setTimeout> | undefined;
  private styles: string[] = []; // the inline style each token has now

  constructor(private labels: string[], private o: StripOptions = {}) {
    this.el = document.createElement("div");
    this.el.className = "lw-strip";
    this.el.dataset.testid = o.testid ?? "tokens";
    labels.forEach((label, i) => {
      const s = document.createElement("span");
      s.className = "lw-tok";
      s.textContent = label;
      s.dataset.index = String(i);
      s.addEventListener("mouseenter", () => {
        s.classList.add("lw-hover");
        clearTimeout(this.leaving); // moving to a neighbour: one update, not a clear then a redraw
        o.onHover?.(i);
      });
      s.addEventListener("mouseleave", () => {
        s.classList.remove("lw-hover");
        this.leaving = setTimeout(() => o.onHover?.(null), 0);
      });
      s.addEventListener("click", () => o.onClick?.(i));
      this.spans.push(s);
      this.el.append(s);
    });
  }

  get length(): number { return this.spans.length; }

  /** Colour each token by its weight; signed weights use the diverging scale. */
  setWeights(w: ArrayLike<number> | null, signed = false, vmax?: number): void {
    const m = vmax ?? (w ? absMax(w) : 0);
    this.spans.forEach((s, i) => {
      if (!w || i >= w.length) {
        if (this.styles[i]) s.style.cssText = "";
        this.styles[i] = "";
        s.title = "";
        delete s.dataset.weight;
        return;
      }
      const c = signed ? div(w[i], m) : seq(w[i], m);
      let style = STYLE.get(c);
      if (style === undefined) STYLE.set(c, style = `background:${css(c)};color:${ink(c)}`);
      if (this.styles[i] !== style) { // most tokens keep their colour from one row to the next
        s.style.cssText = style;
        this.styles[i] = style;
      }
      s.title = fmt(w[i], 4);
      s.dataset.weight = String(w[i]);
    });
  }

  select(i: number): void {
    this.selected = i;
    this.spans.forEach((s, j) => s.classList.toggle("lw-sel", j === i));
  }

  get selectedIndex(): number { return this.selected; }
}
