// An SVG chart of a few labelled points with vertical error bars (e.g. size against fidelity with a
// 95% interval), a linear or log10 x axis with ticks, and click / hover on points. Labels use
// textContent (never parsed as markup).
import { fmt } from "./format";

const NS = "http://www.w3.org/2000/svg";

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

/** Greedy label placement: a label moves down in steps of one line until it overlaps none placed so far. */
export class LabelPlacer {
  private boxes: { x0: number; x1: number; y: number }[] = [];

  constructor(private line = 12) {}

  /** The baseline y for a label of width w (px) next to x (to its right, or ending at it), wanted at y. */
  place(x: number, y: number, w: number, right = true): number {
    const x0 = right ? x : x - w, x1 = right ? x + w : x;
    let ly = y;
    for (let k = 0; k < 50 && this.boxes.some((b) => b.x0 < x1 && x0 < b.x1 && Math.abs(b.y - ly) < this.line); k++) ly += this.line;
    this.boxes.push({ x0, x1, y: ly });
    return ly;
  }
}

export class PointChart {
  readonly el: SVGSVGElement;
  private dots: SVGCircleElement[] = [];

  constructor(private points: Point[], private o: PointChartOptions = {}) {
    const W = o.width ?? 440, H = o.height ?? 280;
    const m = { l: 48, r: 16, t: 18, b: 38 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    this.el = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-testid": o.testid ?? "points" });
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
      g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v), stroke: "#eee" }));
      g.append(text(fmt(v, 2), { x: m.l - 4, y: Y(v) + 4, "text-anchor": "end", fill: "#555" }));
    }
    for (const v of xTicks) {
      g.append(svg("line", { x1: X(v), x2: X(v), y1: m.t, y2: m.t + ph, stroke: "#f2f2f2" }));
      g.append(text(tickLabel(v), { x: X(v), y: m.t + ph + 14, "text-anchor": "middle", fill: "#555" }));
    }
    g.append(svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, stroke: "#999" }));
    g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, stroke: "#999" }));
    if (o.xLabel) g.append(text(o.xLabel, { x: m.l + pw / 2, y: H - 4, "text-anchor": "middle", fill: "#333" }));
    if (o.yLabel) g.append(text(o.yLabel, { x: 0, y: 0, "text-anchor": "middle", fill: "#333", transform: `translate(12 ${m.t + ph / 2}) rotate(-90)` }));
    this.el.append(g);

    const placed = new LabelPlacer();
    points.forEach((p, i) => {
      if (!Number.isFinite(p.x) || !Number.isFinite(p.y) || (o.xLog && !(p.x > 0))) return;
      const cx = X(p.x), cy = Y(p.y);
      const right = cx < m.l + 0.6 * pw; // labels to the right of the point, or to its left near the edge
      if (Number.isFinite(p.lo) && Number.isFinite(p.hi)) {
        this.el.append(svg("line", { x1: cx, x2: cx, y1: Y(p.lo!), y2: Y(p.hi!), stroke: p.color, "stroke-width": 1.5, "pointer-events": "none" }));
      }
      const ly = placed.place(cx, cy - 5, p.label.length * 6, right);
      this.el.append(text(p.label, { x: right ? cx + 7 : cx - 7, y: ly, fill: "#333", "text-anchor": right ? "start" : "end",
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

  /** Outline point i (-1: none). */
  select(i: number): void {
    this.dots.forEach((d, j) => {
      if (!d) return;
      d.setAttribute("stroke", j === i ? "#000" : "#fff");
      d.setAttribute("stroke-width", j === i ? "2" : "1");
      d.setAttribute("r", j === i ? "6.5" : "5");
      d.classList.toggle("lw-sel", j === i);
    });
    this.el.dataset.selected = String(i);
  }
}
