// A 2-D scatter on <canvas> with categorical colours and a rectangle brush (drag to select).
// The data -> pixel mapping is published on canvas.dataset so tests can aim at points.
export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];

export function category(i: number): string {
  return i === 255 || i < 0 ? "#bbb" : PALETTE[i % PALETTE.length];
}

export interface ScatterOptions {
  width?: number;
  height?: number;
  onBrush?: (indices: number[]) => void; // called on mouse up with the points inside the rectangle
  describe?: (i: number) => string; // tooltip of the nearest point
  testid?: string;
  xLabel?: string; // axis names drawn in the corners (e.g. "PC1", "PC2")
  yLabel?: string;
}

export class Scatter {
  readonly canvas: HTMLCanvasElement;
  readonly el: HTMLDivElement;
  private tip: HTMLDivElement;
  private xs: ArrayLike<number> = [];
  private ys: ArrayLike<number> = [];
  private colors: string[] = [];
  private selected = new Set<number>();
  private bounds = { x0: 0, x1: 1, y0: 0, y1: 1 };
  private drag: { x: number; y: number; x2: number; y2: number } | null = null;
  private readonly W: number;
  private readonly H: number;
  private readonly pad = 12;

  constructor(private o: ScatterOptions = {}) {
    this.W = o.width ?? 460;
    this.H = o.height ?? 400;
    this.el = document.createElement("div");
    this.el.style.position = "relative";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "lw-canvas";
    this.canvas.dataset.testid = o.testid ?? "scatter";
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    this.canvas.width = this.W * dpr;
    this.canvas.height = this.H * dpr;
    this.canvas.style.width = `${this.W}px`;
    this.canvas.style.height = `${this.H}px`;
    this.canvas.style.border = "1px solid #ddd";
    this.tip = document.createElement("div");
    this.tip.style.cssText = "position:absolute;pointer-events:none;background:rgba(20,20,20,.85);color:#fff;padding:2px 5px;border-radius:3px;font-size:11px;white-space:pre;display:none;z-index:5";
    this.el.append(this.canvas, this.tip);
    const pos = (e: MouseEvent) => {
      const r = this.canvas.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    this.canvas.addEventListener("mousedown", (e) => {
      const [x, y] = pos(e);
      this.drag = { x, y, x2: x, y2: y };
      e.preventDefault();
    });
    this.canvas.addEventListener("mousemove", (e) => {
      const [x, y] = pos(e);
      if (this.drag) {
        this.drag.x2 = x;
        this.drag.y2 = y;
        this.draw();
        return;
      }
      this.hover(x, y);
    });
    const finish = (e: MouseEvent) => {
      if (!this.drag) return;
      const [x, y] = pos(e);
      const d = { ...this.drag, x2: x, y2: y };
      this.drag = null;
      let idx: number[];
      if (Math.abs(d.x2 - d.x) < 3 && Math.abs(d.y2 - d.y) < 3) {
        const n = this.nearest(x, y);
        idx = n >= 0 ? [n] : []; // a click selects one point (or clears)
      } else {
        idx = this.inside(Math.min(d.x, d.x2), Math.min(d.y, d.y2), Math.max(d.x, d.x2), Math.max(d.y, d.y2));
      }
      this.o.onBrush?.(idx);
      this.draw();
    };
    this.canvas.addEventListener("mouseup", finish);
    this.canvas.addEventListener("mouseleave", (e) => { this.tip.style.display = "none"; finish(e); });
  }

  px(i: number): [number, number] {
    const b = this.bounds, p = this.pad;
    return [p + ((this.xs[i] - b.x0) / (b.x1 - b.x0)) * (this.W - 2 * p),
            this.H - p - ((this.ys[i] - b.y0) / (b.y1 - b.y0)) * (this.H - 2 * p)];
  }

  setData(xs: ArrayLike<number>, ys: ArrayLike<number>, colors: string[]): void {
    this.xs = xs;
    this.ys = ys;
    this.colors = colors;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < xs.length; i++) {
      x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]);
      y0 = Math.min(y0, ys[i]); y1 = Math.max(y1, ys[i]);
    }
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    this.bounds = { x0, x1, y0, y1 };
    Object.assign(this.canvas.dataset, { x0: String(x0), x1: String(x1), y0: String(y0), y1: String(y1), pad: String(this.pad), n: String(xs.length) });
    this.draw();
  }

  setSelection(indices: number[]): void {
    this.selected = new Set(indices);
    this.canvas.dataset.selected = String(indices.length);
    this.draw();
  }

  private inside(ax: number, ay: number, bx: number, by: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.xs.length; i++) {
      const [x, y] = this.px(i);
      if (x >= ax && x <= bx && y >= ay && y <= by) out.push(i);
    }
    return out;
  }

  private nearest(x: number, y: number, radius = 6): number {
    let best = -1, bd = radius * radius;
    for (let i = 0; i < this.xs.length; i++) {
      const [px, py] = this.px(i);
      const d = (px - x) ** 2 + (py - y) ** 2;
      if (d <= bd) { bd = d; best = i; }
    }
    return best;
  }

  private hover(x: number, y: number): void {
    const i = this.nearest(x, y);
    if (i < 0 || !this.o.describe) { this.tip.style.display = "none"; return; }
    this.tip.textContent = this.o.describe(i);
    this.tip.style.display = "block";
    this.tip.style.left = `${x + 10}px`;
    this.tip.style.top = `${y + 10}px`;
  }

  draw(): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.W, this.H);
    const any = this.selected.size > 0;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < this.xs.length; i++) {
        const sel = this.selected.has(i);
        if ((pass === 1) !== sel) continue; // selected points on top
        const [x, y] = this.px(i);
        ctx.globalAlpha = any && !sel ? 0.25 : 0.85;
        ctx.fillStyle = this.colors[i] ?? "#888";
        ctx.beginPath();
        ctx.arc(x, y, sel ? 4 : 3, 0, 2 * Math.PI);
        ctx.fill();
        if (sel) { ctx.strokeStyle = "#000"; ctx.lineWidth = 1; ctx.stroke(); }
      }
    }
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#777";
    ctx.font = "11px system-ui,sans-serif";
    if (this.o.xLabel) { ctx.textAlign = "right"; ctx.textBaseline = "bottom"; ctx.fillText(`${this.o.xLabel} \u2192`, this.W - 4, this.H - 2); }
    if (this.o.yLabel) { ctx.textAlign = "left"; ctx.textBaseline = "top"; ctx.fillText(`\u2191 ${this.o.yLabel}`, 4, 2); }
    if (this.drag) {
      const d = this.drag;
      ctx.strokeStyle = "#d62728";
      ctx.setLineDash([4, 3]);
      ctx.strokeRect(Math.min(d.x, d.x2), Math.min(d.y, d.y2), Math.abs(d.x2 - d.x), Math.abs(d.y2 - d.y));
      ctx.setLineDash([]);
    }
  }
}
