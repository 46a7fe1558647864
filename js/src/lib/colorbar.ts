// A colour bar: the scale's gradient with its domain's ends (and 0 on diverging scales) and the
// units it measures. Plain DOM (a CSS gradient), so it renders without a canvas and in snapshots.
import { ColorScale, gradientCSS } from "./colors";
import { h, THEME_EVENT } from "./dom";

/** A tick label: up to 3 significant digits, no trailing zeros. */
export function tickLabel(v: number): string {
  if (!Number.isFinite(v)) return "\u2013";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

export class ColorBar {
  readonly el: HTMLDivElement;
  private readonly bar: HTMLDivElement;
  private readonly ticks: HTMLDivElement;
  private readonly name: HTMLSpanElement;
  private s: ColorScale | null = null;
  private text: string | undefined;

  constructor(testid = "colorbar", width = 160) {
    this.name = h("span", { class: "lw-cbar-label" });
    this.bar = h("div", { class: "lw-cbar-ramp", style: `width:${width}px` });
    this.ticks = h("div", { class: "lw-cbar-ticks", style: `width:${width}px` });
    this.el = h("div", { class: "lw-cbar", "data-testid": testid }, h("div", {}, this.bar, this.ticks), this.name);
    this.el.style.display = "none";
    this.el.addEventListener(THEME_EVENT, () => this.set(this.s, this.text)); // the palette follows the theme
  }

  get scale(): ColorScale | null { return this.s; }

  /** The label given to set() (undefined: the scale's own). */
  get label(): string | undefined { return this.text; }

  /** Show scale s (null: hide the bar); `label` overrides the scale's own label. */
  set(s: ColorScale | null, label?: string): void {
    this.s = s;
    this.text = label;
    if (!s) {
      this.el.style.display = "none";
      return;
    }
    const [lo, hi] = s.domain;
    const text = label ?? s.label;
    this.el.style.display = "";
    this.bar.style.background = gradientCSS(s);
    const ends = [tickLabel(lo), ...(s.kind === "div" ? ["0"] : []), tickLabel(hi)];
    this.ticks.replaceChildren(...ends.map((t) => h("span", { text: t })));
    this.name.textContent = text;
    Object.assign(this.el.dataset, { kind: s.kind, min: String(lo), max: String(hi), label: text });
  }
}
