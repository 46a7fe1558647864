// An SVG chart of a few labelled points with vertical error bars (e.g. size against fidelity with a
// 95% interval), a linear or log10 x axis with ticks, and click / hover on points. Labels use
// textContent (never parsed as markup).
import { fmt } from "./format";
import { textWidth } from "./linechart";

const NS = "http://www.w3.org/2000/svg";
/** The selection outline where the --lw-sel variable is not set (the same red as dom.ts sets it to). */
export const SELECTED = "#d62728";

export interface Point {
  x: number; // data x (> 0 on a log axis)
  y: number;
  lo?: number; // error bar, in y units
  hi?: number;
  label: string; // drawn next to the point
  color: string;
}

export interface PointChartOptions {
  width?: number;
  height?: number;
  xLabel?: string;
  yLabel?: string;
  xLog?: boolean; // log10 x axis (ticks at powers of ten)
  yMin?: number;
  yMax?: number;
  onClick?: (i: number) => void;
  describe?: (i: number) => string; // tooltip of point i
  testid?: string;
}

/** About `n` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || hi < lo) return [];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / Math.max(1, n);
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step + 0); // + 0: no -0
  return out;
}

/** Powers of ten within [lo, hi] (data values, > 0); at least the two around the range. */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0 && hi >= lo)) return [];
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  const out: number[] = [];
  for (let k = a; k <= Math.max(b, a + 1); k++) out.push(10 ** k);
  return out;
}

/** A tick label: 1e3 and up as 1k / 1M; other values as they are. */
export function tickLabel(v: number): string {
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (Math.abs(v) >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(3));
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function text(s: string, attrs: Record<string, string | number>): SVGTextElement {
  const t = svg("text", attrs);
  t.textContent = s;
  return t;
}

/** A label's box: [x0, x1] across, its baseline y (the box spans one line above it). */
export interface LabelBox { x0: number; x1: number; y: number }

/** True when two label boxes of one line (`line` px) each overlap. */
export function boxesOverlap(a: LabelBox, b: LabelBox, line = 12): boolean {
  return a.x0 < b.x1 && b.x0 < a.x1 && Math.abs(a.y - b.y) < line;
}

/** Greedy label placement: a label moves down in steps of one line until it overlaps none placed so far.
 * `gap`: the space between the anchor x and the label's text (the text starts gap px right of x, or
 * ends gap px left of it). */
export class LabelPlacer {
  private boxes: LabelBox[] = [];
  private blocks: { x0: number; x1: number; y0: number; y1: number }[] = [];

  constructor(private line = 12, private gap = 0) {}

  /** The boxes placed so far, in order. */
  get placed(): readonly LabelBox[] { return this.boxes; }

  /** Keep the labels placed from now on off the rectangle [x0, x1] x [y0, y1] (a point's dot, its
   * error bar); a label's box spans from `line` - 3 px above its baseline to 3 px below it. */
  block(x0: number, x1: number, y0: number, y1: number): void {
    this.blocks.push({ x0, x1, y0, y1 });
  }

  private free(x0: number, x1: number, ly: number): boolean {
    return !this.boxes.some((b) => boxesOverlap(b, { x0, x1, y: ly }, this.line)) &&
      !this.blocks.some((r) => r.x0 < x1 && x0 < r.x1 && r.y0 < ly + 3 && ly + 3 - this.line < r.y1);
  }

  /** The baseline y for a label of width w (px) next to x (to its right, or ending at it), wanted at y. */
  place(x: number, y: number, w: number, right = true): number {
    const x0 = right ? x + this.gap : x - this.gap - w, x1 = right ? x + this.gap + w : x - this.gap;
    let ly = y;
    for (let k = 0; k < 50 && !this.free(x0, x1, ly); k++) ly += this.line;
    this.boxes.push({ x0, x1, y: ly });
    return ly;
  }
}

/** Line height (px) of a point's label, and the space between a point and its label. */
export const LABEL_LINE = 13;
export const LABEL_GAP = 7;

/** The box of a drawn label (an SVG text with x, y and text-anchor start or end), its width by textWidth. */
export function labelBox(t: SVGTextElement): LabelBox {
  const x = Number(t.getAttribute("x")), w = textWidth(t.textContent ?? "");
  const end = t.getAttribute("text-anchor") === "end";
  return { x0: end ? x - w : x, x1: end ? x : x + w, y: Number(t.getAttribute("y")) };
}

export class PointChart {
  readonly el: SVGSVGElement;
  private dots: SVGCircleElement[] = [];

  constructor(private points: Point[], private o: PointChartOptions = {}) {
    const W = o.width ?? 440, H = o.height ?? 280;
    const m = { l: 48, r: 16, t: 18, b: 38 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    // class lw-chart: text, grid lines and axes take the theme's colours (CSS beats the fallbacks below)
    this.el = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "lw-chart", "data-testid": o.testid ?? "points" });
    this.el.style.font = "11px system-ui,sans-serif";
    const fx = (v: number) => (o.xLog ? Math.log10(Math.max(v, 1e-300)) : v);
    const xs = points.map((p) => p.x).filter((v) => Number.isFinite(v) && (!o.xLog || v > 0));
    const xTicks = o.xLog ? logTicks(Math.min(...xs), Math.max(...xs)) : niceTicks(Math.min(...xs), Math.max(...xs));
    const x0 = xTicks.length ? fx(Math.min(xTicks[0], ...xs)) : 0;
    const x1 = xTicks.length ? fx(Math.max(xTicks[xTicks.length - 1], ...xs)) : 1;
    const ys = points.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]).filter(Number.isFinite);
    let y0 = o.yMin ?? Math.min(...ys), y1 = o.yMax ?? Math.max(...ys);
    if (!(y1 > y0)) { y0 = (Number.isFinite(y0) ? y0 : 0) - 0.5; y1 = y0 + 1; }
    const X = (v: number) => m.l + (x1 > x0 ? ((fx(v) - x0) / (x1 - x0)) * pw : pw / 2);
    const Y = (v: number) => m.t + ph - ((v - y0) / (y1 - y0)) * ph;
    Object.assign(this.el.dataset, { x0: String(x0), x1: String(x1), y0: String(y0), y1: String(y1) });

    const g = svg("g");
    for (const v of niceTicks(y0, y1, 4)) {
      g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v), stroke: "#eee", class: "lw-gridline" }));
      g.append(text(fmt(v, 2), { x: m.l - 4, y: Y(v) + 4, "text-anchor": "end", fill: "#555", class: "lw-tick" }));
    }
    for (const v of xTicks) {
      g.append(svg("line", { x1: X(v), x2: X(v), y1: m.t, y2: m.t + ph, stroke: "#f2f2f2", class: "lw-gridline" }));
      g.append(text(tickLabel(v), { x: X(v), y: m.t + ph + 14, "text-anchor": "middle", fill: "#555", class: "lw-tick" }));
    }
    g.append(svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, stroke: "#999", class: "lw-axis" }));
    g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, stroke: "#999", class: "lw-axis" }));
    if (o.xLabel) g.append(text(o.xLabel, { x: m.l + pw / 2, y: H - 4, "text-anchor": "middle", fill: "#333" }));
    if (o.yLabel) g.append(text(o.yLabel, { x: 0, y: 0, "text-anchor": "middle", fill: "#333", transform: `translate(12 ${m.t + ph / 2}) rotate(-90)` }));
    this.el.append(g);

    const placed = new LabelPlacer(LABEL_LINE, LABEL_GAP);
    const drawn = (p: Point) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.xLog || p.x > 0);
    for (const p of points) { // labels keep off every dot and error bar, not only those drawn before them
      if (!drawn(p)) continue;
      const cx = X(p.x), cy = Y(p.y);
      placed.block(cx - 6, cx + 6, cy - 6, cy + 6);
      if (Number.isFinite(p.lo) && Number.isFinite(p.hi)) placed.block(cx - 1, cx + 1, Math.min(Y(p.lo!), Y(p.hi!)), Math.max(Y(p.lo!), Y(p.hi!)));
    }
    points.forEach((p, i) => {
      if (!drawn(p)) return;
      const cx = X(p.x), cy = Y(p.y);
      const right = cx < m.l + 0.6 * pw; // labels to the right of the point, or to its left near the edge
      if (Number.isFinite(p.lo) && Number.isFinite(p.hi)) {
        this.el.append(svg("line", { x1: cx, x2: cx, y1: Y(p.lo!), y2: Y(p.hi!), stroke: p.color, "stroke-width": 1.5, "pointer-events": "none" }));
      }
      const ly = placed.place(cx, cy - 5, textWidth(p.label), right);
      const lx = right ? cx + LABEL_GAP : cx - LABEL_GAP;
      // a label moved off its point (another label was there) is tied to it by a leader line
      if (ly !== cy - 5) this.el.append(svg("line", { x1: cx, y1: cy, x2: lx, y2: ly - 4, stroke: p.color, "stroke-width": 0.75,
        "pointer-events": "none", "data-leader": i }));
      this.el.append(text(p.label, { x: lx, y: ly, fill: "#333", "text-anchor": right ? "start" : "end",
        "pointer-events": "none", "data-label": i }));
      const dot = svg("circle", { cx, cy, r: 5, fill: p.color, stroke: "#fff", "stroke-width": 1, "data-index": i, "data-testid": `point-${i}` });
      dot.style.cursor = "pointer";
      const tip = svg("title");
      tip.textContent = o.describe ? o.describe(i) : p.label;
      dot.append(tip);
      dot.addEventListener("click", () => o.onClick?.(i));
      this.dots[i] = dot;
      this.el.append(dot);
    });
  }

  /** Where point i is drawn (SVG user units = CSS px), or null when it is not drawn. */
  position(i: number): [number, number] | null {
    const d = this.dots[i];
    return d ? [Number(d.getAttribute("cx")), Number(d.getAttribute("cy"))] : null;
  }

  /** Outline point i (-1: none) in the shared selection colour (the theme's --lw-sel, red as in the
   * token strips and tables; readable in light and dark themes). */
  select(i: number): void {
    this.dots.forEach((d, j) => {
      if (!d) return;
      d.setAttribute("stroke", j === i ? SELECTED : "#fff");
      d.style.stroke = j === i ? `var(--lw-sel, ${SELECTED})` : "";
      d.setAttribute("stroke-width", j === i ? "2" : "1");
      d.setAttribute("r", j === i ? "6.5" : "5");
      d.classList.toggle("lw-sel", j === i);
    });
    this.el.dataset.selected = String(i);
  }
}
