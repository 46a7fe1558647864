// An SVG line chart over columns (e.g. layers, or the steps of a deletion curve): several series,
// optional error bands, a dashed baseline, hover and click on columns. Axes use nice tick steps
// (1, 2, 5 x 10^k) over a domain rounded to them; tick labels never collide (fewer ticks where they
// would). Labels use textContent (never parsed as markup); text colours come from the theme (CSS).
import { fmt } from "./format";

const NS = "http://www.w3.org/2000/svg";

export interface Series {
  name: string;
  values: ArrayLike<number>;
  color: string;
  band?: ArrayLike<number>; // half-width of an error band around values
  lo?: ArrayLike<number>; // or the band's lower and upper ends (an asymmetric interval), with hi
  hi?: ArrayLike<number>;
  dashed?: boolean;
}

export interface LineChartOptions {
  width?: number;
  height?: number;
  yMin?: number;
  yMax?: number;
  xLabel?: string;
  yLabel?: string;
  onClick?: (x: number) => void;
  describe?: (x: number) => string; // tooltip for a column
  xTick?: (x: number) => string; // tick label of column x (default: x itself); columns evenly spaced
  xs?: ArrayLike<number>; // x value of each column (increasing): a numeric x axis with nice ticks
  xFormat?: (v: number) => string; // tick label of x value v (with xs)
  yFormat?: (v: number) => string; // tick label of y value v (default: decimals of the tick step)
  testid?: string;
  /** At least this much room (px) left and right of the plot area: charts stacked one above the other
   * pass the largest of their plotMargins so that their x axes line up. */
  margins?: { l?: number; r?: number };
}

/** The y axis of a chart: nice ticks over the data (or the given limits), the domain rounded out to
 * the step, and their labels. */
function yAxis(series: readonly Series[], n: number, o: LineChartOptions) {
  const H = o.height ?? 300;
  const [lo0, hi0] = yRange(series, n, o.yMin, o.yMax);
  const yt = niceTicks(lo0, hi0, Math.max(3, Math.min(6, Math.floor((H - 46) / 40))));
  const dy = stepDecimals(yt.step);
  return { yt, yLabels: yt.ticks.map((v) => (o.yFormat ? o.yFormat(v) : fmt(v, dy))) };
}

/** The room (px) a LineChart of these series and options leaves left of its plot area (y tick labels
 * and y label) and right of it (the legend), at least `o.margins`. */
export function plotMargins(series: readonly Series[], n: number, o: LineChartOptions = {}): { l: number; r: number } {
  const { yLabels } = yAxis(series, n, o);
  const legendW = Math.max(0, ...series.map((s) => textWidth(s.name)));
  return {
    l: Math.max(o.margins?.l ?? 0, Math.ceil(8 + Math.max(...yLabels.map(textWidth)) + (o.yLabel ? 18 : 4))),
    r: Math.max(o.margins?.r ?? 0, Math.ceil(Math.min(220, 40 + legendW))),
  };
}

export const FONT_PX = 11;
const CHAR_PX = 6.4; // width of one character of an 11 px system-ui label, generously

/** Width (px) a label of `s` takes at the chart's font. */
export function textWidth(s: string): number {
  return s.length * CHAR_PX;
}

/** The band of series s at column i as [low, high], or null (none there, or not finite). */
export function bandAt(s: Series, i: number): [number, number] | null {
  if (s.lo && s.hi) {
    const a = s.lo[i], b = s.hi[i];
    return Number.isFinite(a) && Number.isFinite(b) ? [a, b] : null;
  }
  const v = s.values[i], b = s.band ? s.band[i] : NaN;
  return Number.isFinite(v) && Number.isFinite(b) ? [v - b, v + b] : null;
}

/** The y range to plot: [yMin, yMax] where given, else the extent of the finite values (bands
 * included) of the first n points of every series; [0, 1] when that is empty or a single value. */
export function yRange(series: readonly Series[], n: number, yMin?: number, yMax?: number): [number, number] {
  let lo = yMin ?? Infinity, hi = yMax ?? -Infinity;
  for (const s of series) for (let i = 0; i < n; i++) {
    const v = s.values[i];
    if (!Number.isFinite(v)) continue;
    const [a, b] = bandAt(s, i) ?? [v, v];
    if (yMin === undefined) lo = Math.min(lo, v, a);
    if (yMax === undefined) hi = Math.max(hi, v, b);
  }
  return hi > lo ? [lo, hi] : [0, 1];
}

/** The nice step (1, 2 or 5 x 10^k) nearest above span / target. */
export function niceStep(span: number, target = 5): number {
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** Decimals that print every multiple of `step` exactly (0.2 -> 1, 0.05 -> 2, 5 -> 0). */
export function stepDecimals(step: number): number {
  let d = 0;
  while (d < 10 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6 * 10 ** d) d++;
  return d;
}

/** Nice ticks for [lo, hi]: about `target` multiples of a nice step; the domain is [lo, hi] rounded
 * out to the step. */
export function niceTicks(lo: number, hi: number, target = 5): { domain: [number, number]; step: number; ticks: number[] } {
  if (!(hi > lo)) { lo = Number.isFinite(lo) ? lo - 0.5 : 0; hi = lo + 1; }
  const step = niceStep(hi - lo, target);
  const a = Math.floor(lo / step + 1e-9), b = Math.ceil(hi / step - 1e-9);
  const d = stepDecimals(step);
  const ticks = Array.from({ length: b - a + 1 }, (_, k) => Number(((a + k) * step).toFixed(d)));
  return { domain: [ticks[0], ticks[ticks.length - 1]], step, ticks };
}

/** Which of n evenly spaced columns `pitch` px apart get a tick label: every k-th column from 0, k a
 * nice step (1, 2, 5, 10, ...) such that labels `maxWidth` px wide keep a gap; the last column too
 * when it does not crowd the tick before it. */
export function columnTicks(n: number, pitch: number, maxWidth: number, gap = 6): number[] {
  if (n <= 0) return [];
  const need = maxWidth + gap;
  let k = n;
  for (let p = 1; p < n; p *= 10) {
    const c = [1, 2, 5].map((f) => f * p).find((c) => c * pitch >= need);
    if (c !== undefined) { k = c; break; }
  }
  const out: number[] = [];
  for (let i = 0; i < n; i += k) out.push(i);
  const last = n - 1, prev = out[out.length - 1];
  if (prev !== last && (last - prev) * pitch >= need) out.push(last);
  return out;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export class LineChart {
  readonly el: SVGSVGElement;
  private cols: SVGRectElement[] = [];
  private selected = -1;
  /** Tick labels drawn: x axis and y axis, in order. */
  readonly ticks: { x: string[]; y: string[] } = { x: [], y: [] };

  constructor(private n: number, private series: Series[], private o: LineChartOptions = {}) {
    const W = o.width ?? 520, H = o.height ?? 300;
    const { yt, yLabels } = yAxis(series, n, o);
    const [lo, hi] = yt.domain;
    const m = { ...plotMargins(series, n, o), t: 10, b: 36 };
    const pw = Math.max(40, W - m.l - m.r), ph = H - m.t - m.b;
    this.el = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "lw-chart", "data-testid": o.testid ?? "chart" });
    this.el.style.font = `${FONT_PX}px system-ui,sans-serif`;
    const xs = o.xs && o.xs.length >= n && n > 1 && o.xs[n - 1] > o.xs[0] ? o.xs : null;
    const x0 = xs ? xs[0] : 0, x1 = xs ? xs[n - 1] : n - 1;
    const xAt = (v: number) => m.l + (x1 > x0 ? ((v - x0) / (x1 - x0)) * pw : pw / 2);
    const x = (i: number) => xAt(xs ? xs[i] : i);
    const y = (v: number) => m.t + ph - ((v - lo) / (hi - lo)) * ph;
    const text = (s: string, attrs: Record<string, string | number>) => {
      const t = svg("text", attrs);
      t.textContent = s;
      return t;
    };
    // axes and grid
    const g = svg("g");
    yt.ticks.forEach((v, k) => {
      g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v), class: "lw-gridline", stroke: "#e0e0e0" }));
      g.append(text(yLabels[k], { x: m.l - 4, y: y(v) + 4, "text-anchor": "end", class: "lw-tick" }));
    });
    this.ticks.y = yLabels;
    const xTicks: [number, string][] = [];
    if (xs) {
      // a numeric axis: nice values inside [x0, x1], as many as fit without touching
      const fmtX = o.xFormat ?? ((v: number) => fmt(v, stepDecimals(niceStep(x1 - x0))));
      for (let target = 6; target >= 1; target--) {
        const step = niceStep(x1 - x0, target);
        const vals: number[] = [];
        for (let v = Math.ceil(x0 / step - 1e-9) * step; v <= x1 + 1e-9 * step; v += step) vals.push(Number(v.toFixed(stepDecimals(step))));
        const labels = vals.map(fmtX);
        const pitch = (step / (x1 - x0)) * pw;
        if (vals.length <= 1 || pitch >= Math.max(...labels.map(textWidth)) + 8) {
          vals.forEach((v, k) => xTicks.push([xAt(v), labels[k]]));
          break;
        }
      }
    } else {
      const label = (i: number) => (o.xTick ? o.xTick(i) : String(i));
      const all = Array.from({ length: n }, (_, i) => label(i));
      const pitch = n > 1 ? pw / (n - 1) : pw;
      for (const i of columnTicks(n, pitch, Math.max(...all.map(textWidth)))) if (all[i]) xTicks.push([x(i), all[i]]);
    }
    for (const [px, s] of xTicks) g.append(text(s, { x: px, y: m.t + ph + 14, "text-anchor": "middle", class: "lw-tick" }));
    this.ticks.x = xTicks.map(([, s]) => s);
    g.append(text(o.xLabel ?? "layer", { x: m.l + pw / 2, y: H - 4, "text-anchor": "middle" }));
    if (o.yLabel) g.append(text(o.yLabel, { x: 0, y: 0, "text-anchor": "middle", transform: `translate(12 ${m.t + ph / 2}) rotate(-90)` }));
    g.append(svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, class: "lw-axis", stroke: "#999" }));
    g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, class: "lw-axis", stroke: "#999" }));
    this.el.append(g);
    // columns: hover/click targets and the selection highlight (from midpoint to midpoint)
    for (let i = 0; i < n; i++) {
      const left = i > 0 ? (x(i - 1) + x(i)) / 2 : m.l, right = i < n - 1 ? (x(i) + x(i + 1)) / 2 : m.l + pw;
      const r = svg("rect", { x: left, y: m.t, width: Math.max(4, right - left), height: ph, fill: "transparent", class: "lw-col", "data-testid": `layer-${i}`, "data-layer": i });
      r.style.cursor = "pointer";
      const tip = svg("title");
      tip.textContent = o.describe ? o.describe(i) : `layer ${i}`;
      r.append(tip);
      r.addEventListener("click", () => o.onClick?.(i));
      r.addEventListener("mouseenter", () => { if (i !== this.selected) r.setAttribute("fill", HOVER); });
      r.addEventListener("mouseleave", () => { if (i !== this.selected) r.setAttribute("fill", "transparent"); });
      this.cols.push(r);
      this.el.append(r);
    }
    // series (clipped to the domain: a value outside a given yMin/yMax stays inside the plot)
    const yc = (v: number) => y(Math.min(hi, Math.max(lo, v)));
    series.forEach((s, si) => {
      const pts: string[] = [];
      for (let i = 0; i < n; i++) if (Number.isFinite(s.values[i])) pts.push(`${x(i)},${yc(s.values[i])}`);
      if (s.band || (s.lo && s.hi)) {
        const up: string[] = [], down: string[] = [];
        for (let i = 0; i < n; i++) {
          const b = bandAt(s, i);
          if (!b) continue;
          up.push(`${x(i)},${yc(b[1])}`);
          down.unshift(`${x(i)},${yc(b[0])}`);
        }
        // a light fill and a dashed outline of the series' colour: overlapping bands stay apart, and
        // the outline reads on dark backgrounds where a faint fill vanishes
        this.el.append(svg("polygon", { points: [...up, ...down].join(" "), fill: s.color, "fill-opacity": BAND_FILL,
          stroke: s.color, "stroke-opacity": 0.8, "stroke-width": 1, "stroke-dasharray": "3 2", "pointer-events": "none", "data-band": s.name }));
      }
      const line = svg("polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "pointer-events": "none", "data-series": s.name });
      if (s.dashed) line.setAttribute("stroke-dasharray", "5 4");
      this.el.append(line);
      if (!s.dashed) for (let i = 0; i < n; i++) {
        if (!Number.isFinite(s.values[i])) continue;
        this.el.append(svg("circle", { cx: x(i), cy: yc(s.values[i]), r: 3, fill: s.color, "pointer-events": "none" }));
      }
      const ly = m.t + 12 + si * 16;
      this.el.append(svg("line", { x1: m.l + pw + 10, x2: m.l + pw + 28, y1: ly - 4, y2: ly - 4, stroke: s.color, "stroke-width": 2, ...(s.dashed ? { "stroke-dasharray": "4 3" } : {}) }));
      this.el.append(text(s.name, { x: m.l + pw + 32, y: ly }));
    });
  }

  select(i: number): void {
    this.selected = i;
    this.cols.forEach((r, j) => {
      r.setAttribute("fill", j === i ? "rgba(214,39,40,0.14)" : "transparent");
      r.setAttribute("stroke", j === i ? "#d62728" : "none");
    });
  }
}

/** Opacity of an error band's fill (its dashed outline carries the shape). */
export const BAND_FILL = 0.12;

/** Fill of a hovered column: grey at low opacity reads on light and dark backgrounds. */
export const HOVER = "rgba(128,128,128,0.14)";
