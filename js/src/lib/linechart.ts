// An SVG line chart over integer x (e.g. layers): several series, optional error bands, a dashed
// baseline, hover and click on x columns. Labels use textContent (never parsed as markup).
import { fmt } from "./format";

const NS = "http://www.w3.org/2000/svg";

export interface Series {
  name: string;
  values: ArrayLike<number>;
  color: string;
  band?: ArrayLike<number>; // half-width of an error band around values
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
  xTick?: (x: number) => string; // tick label of column x (default: x itself)
  testid?: string;
}

/** The y range to plot: [yMin, yMax] where given, else the extent of the finite values (bands
 * included) of the first n points of every series; [0, 1] when that is empty or a single value. */
export function yRange(series: readonly Series[], n: number, yMin?: number, yMax?: number): [number, number] {
  let lo = yMin ?? Infinity, hi = yMax ?? -Infinity;
  for (const s of series) for (let i = 0; i < n; i++) {
    const v = s.values[i], b = s.band ? s.band[i] : 0;
    if (!Number.isFinite(v)) continue;
    const half = Number.isFinite(b) ? b : 0;
    if (yMin === undefined) lo = Math.min(lo, v - half);
    if (yMax === undefined) hi = Math.max(hi, v + half);
  }
  return hi > lo ? [lo, hi] : [0, 1];
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

  constructor(private n: number, private series: Series[], private o: LineChartOptions = {}) {
    const W = o.width ?? 520, H = o.height ?? 300;
    const m = { l: 48, r: 120, t: 10, b: 36 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    this.el = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-testid": o.testid ?? "chart" });
    this.el.style.font = "11px system-ui,sans-serif";
    const [lo, hi] = yRange(series, n, o.yMin, o.yMax);
    const x = (i: number) => m.l + (n > 1 ? (i / (n - 1)) * pw : pw / 2);
    const y = (v: number) => m.t + ph - ((v - lo) / (hi - lo)) * ph;
    const text = (s: string, attrs: Record<string, string | number>) => {
      const t = svg("text", attrs);
      t.textContent = s;
      return t;
    };
    // axes and grid
    const g = svg("g");
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v), stroke: "#eee" }));
      g.append(text(fmt(v, 2), { x: m.l - 4, y: y(v) + 4, "text-anchor": "end", fill: "#555" }));
    }
    const step = Math.max(1, Math.ceil(n / 16));
    for (let i = 0; i < n; i += step) g.append(text(o.xTick ? o.xTick(i) : String(i), { x: x(i), y: m.t + ph + 14, "text-anchor": "middle", fill: "#555" }));
    g.append(text(o.xLabel ?? "layer", { x: m.l + pw / 2, y: H - 4, "text-anchor": "middle", fill: "#333" }));
    if (o.yLabel) {
      const yl = text(o.yLabel, { x: 0, y: 0, "text-anchor": "middle", fill: "#333", transform: `translate(12 ${m.t + ph / 2}) rotate(-90)` });
      g.append(yl);
    }
    g.append(svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, stroke: "#999" }));
    g.append(svg("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, stroke: "#999" }));
    this.el.append(g);
    // columns: hover/click targets and the selection highlight
    const cw = n > 1 ? pw / (n - 1) : pw;
    for (let i = 0; i < n; i++) {
      const left = Math.max(m.l, x(i) - cw / 2), right = Math.min(m.l + pw, x(i) + cw / 2);
      const r = svg("rect", { x: left, y: m.t, width: Math.max(4, right - left), height: ph, fill: "transparent", "data-testid": `layer-${i}`, "data-layer": i });
      r.style.cursor = "pointer";
      const tip = svg("title");
      tip.textContent = o.describe ? o.describe(i) : `layer ${i}`;
      r.append(tip);
      r.addEventListener("click", () => o.onClick?.(i));
      r.addEventListener("mouseenter", () => { if (i !== this.selected) r.setAttribute("fill", "rgba(0,0,0,0.04)"); });
      r.addEventListener("mouseleave", () => { if (i !== this.selected) r.setAttribute("fill", "transparent"); });
      this.cols.push(r);
      this.el.append(r);
    }
    // series
    series.forEach((s, si) => {
      const pts: string[] = [];
      for (let i = 0; i < n; i++) if (Number.isFinite(s.values[i])) pts.push(`${x(i)},${y(s.values[i])}`);
      if (s.band) {
        const up: string[] = [], down: string[] = [];
        for (let i = 0; i < n; i++) {
          if (!Number.isFinite(s.values[i]) || !Number.isFinite(s.band[i])) continue;
          up.push(`${x(i)},${y(s.values[i] + s.band[i])}`);
          down.unshift(`${x(i)},${y(s.values[i] - s.band[i])}`);
        }
        this.el.append(svg("polygon", { points: [...up, ...down].join(" "), fill: s.color, "fill-opacity": 0.15, stroke: "none", "pointer-events": "none" }));
      }
      const line = svg("polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "pointer-events": "none", "data-series": s.name });
      if (s.dashed) line.setAttribute("stroke-dasharray", "5 4");
      this.el.append(line);
      if (!s.dashed) for (let i = 0; i < n; i++) {
        if (!Number.isFinite(s.values[i])) continue;
        this.el.append(svg("circle", { cx: x(i), cy: y(s.values[i]), r: 3, fill: s.color, "pointer-events": "none" }));
      }
      const ly = m.t + 12 + si * 16;
      this.el.append(svg("line", { x1: m.l + pw + 10, x2: m.l + pw + 28, y1: ly - 4, y2: ly - 4, stroke: s.color, "stroke-width": 2, ...(s.dashed ? { "stroke-dasharray": "4 3" } : {}) }));
      this.el.append(text(s.name, { x: m.l + pw + 32, y: ly, fill: "#333" }));
    });
  }

  select(i: number): void {
    this.selected = i;
    this.cols.forEach((r, j) => {
      r.setAttribute("fill", j === i ? "rgba(214,39,40,0.10)" : "transparent");
      r.setAttribute("stroke", j === i ? "#d62728" : "none");
    });
  }
}
