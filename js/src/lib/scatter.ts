// A 2-D scatter on <canvas> with categorical colours and a rectangle brush (drag to select).
// The data -> pixel mapping is published on canvas.dataset so tests can aim at points.
import { darkPalette } from "./colors";
import { localPoint, themeInk, THEME_EVENT, whenShown } from "./dom";
import { extent, isClick, nearestPoint, normRect, pointsInRect, Rect, toPixel, Viewport } from "./geometry";

export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];

/** Opacity of the points left out of a selection: faint on a light page, less faint on a dark one,
 * where the palette's dark colours at a quarter of their strength vanish into the background. */
export function fadedAlpha(dark: boolean): number {
  return dark ? 0.55 : 0.25;
}

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
  private bounds: Rect = { x0: 0, x1: 1, y0: 0, y1: 1 };
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
    this.canvas.style.border = "1px solid var(--lw-line, #e0e0e0)";
    this.tip = document.createElement("div");
    this.tip.style.cssText = "position:absolute;pointer-events:none;background:rgba(20,20,20,.85);color:#fff;padding:2px 5px;border-radius:3px;font-size:11px;white-space:pre;display:none;z-index:5";
    this.el.append(this.canvas, this.tip);
    const pos = (e: MouseEvent) => localPoint(e, this.canvas);
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
      const { x: ax, y: ay } = this.drag;
      this.drag = null;
      this.o.onBrush?.(this.brushed(ax, ay, x, y));
      this.draw();
    };
    this.canvas.addEventListener("mouseup", finish);
    this.canvas.addEventListener(THEME_EVENT, () => this.draw());
    this.canvas.addEventListener("mouseleave", (e) => { this.tip.style.display = "none"; finish(e); });
  }

  private get viewport(): Viewport { return { width: this.W, height: this.H, pad: this.pad }; }

  /** Position (CSS px, relative to the canvas) where point i is drawn. */
  px(i: number): [number, number] {
    return toPixel(this.bounds, this.viewport, this.xs[i], this.ys[i]);
  }

  /** The points a drag from (ax, ay) to (bx, by) selects: those inside its rectangle, or for a click
   * the one nearest to it (none when no point is near: a click on empty space clears). */
  brushed(ax: number, ay: number, bx: number, by: number): number[] {
    if (isClick(ax, ay, bx, by)) {
      const n = nearestPoint(this.bounds, this.viewport, this.xs, this.ys, bx, by);
      return n >= 0 ? [n] : [];
    }
    return pointsInRect(this.bounds, this.viewport, this.xs, this.ys, normRect(ax, ay, bx, by));
  }

  setData(xs: ArrayLike<number>, ys: ArrayLike<number>, colors: string[]): void {
    this.xs = xs;
    this.ys = ys;
    this.colors = colors;
    this.bounds = extent(xs, ys);
    const { x0, x1, y0, y1 } = this.bounds;
    Object.assign(this.canvas.dataset, { x0: String(x0), x1: String(x1), y0: String(y0), y1: String(y1), pad: String(this.pad), n: String(xs.length) });
    this.draw();
  }

  setSelection(indices: number[]): void {
    this.selected = new Set(indices);
    this.canvas.dataset.selected = String(indices.length);
    this.draw();
  }

  private hover(x: number, y: number): void {
    const i = nearestPoint(this.bounds, this.viewport, this.xs, this.ys, x, y);
    if (i < 0 || !this.o.describe) { this.tip.style.display = "none"; return; }
    this.tip.textContent = this.o.describe(i);
    this.tip.style.display = "block";
    this.tip.style.left = `${x + 10}px`;
    this.tip.style.top = `${y + 10}px`;
  }

  draw(): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const theme = themeInk(this.canvas);
    if (!this.canvas.isConnected) whenShown(this.canvas, () => this.draw());
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.W, this.H);
    const any = this.selected.size > 0;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < this.xs.length; i++) {
        const sel = this.selected.has(i);
        if ((pass === 1) !== sel) continue; // selected points on top
        const [x, y] = this.px(i);
        ctx.globalAlpha = any && !sel ? fadedAlpha(darkPalette()) : 0.85;
        ctx.fillStyle = this.colors[i] ?? "#888";
        ctx.beginPath();
        ctx.arc(x, y, sel ? 4 : 3, 0, 2 * Math.PI);
        ctx.fill();
        if (sel) { ctx.strokeStyle = theme.fg; ctx.lineWidth = 1; ctx.stroke(); }
      }
    }
    ctx.globalAlpha = 1;
    ctx.fillStyle = theme.muted;
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
