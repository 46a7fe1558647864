// A matrix on one <canvas>: labelled axes, hover/click cells, row/column highlight, PNG export.
// Text is drawn with fillText (never parsed as HTML), so token strings cannot inject markup.
import { NDArray } from "./buffers";
import { RGB, seq, div, ink } from "./colors";

export interface HeatmapOptions {
  rowLabels?: string[];
  colLabels?: string[];
  scale?: "seq" | "div";
  vmax?: number; // colour range: [0, vmax] (seq) or [-vmax, vmax] (div); default from data
  maxSize?: number; // largest plot side in CSS px
  minCell?: number;
  cellText?: (r: number, c: number) => string; // drawn inside cells when they are large enough
  onHover?: (r: number, c: number) => void;
  onLeave?: () => void;
  onClick?: (r: number, c: number) => void;
  describe?: (r: number, c: number, v: number) => string; // tooltip text
  markSelColumn?: boolean; // also mark the label of column `sel` (default true: rows and columns are the same tokens)
}

export function shorten(s: string, n = 12): string {
  return s.length > n ? s.slice(0, n - 1) + "\u2026" : s;
}

export class Heatmap {
  readonly canvas: HTMLCanvasElement;
  readonly tip: HTMLDivElement;
  readonly el: HTMLDivElement;
  private m: NDArray | null = null;
  private o: HeatmapOptions = {};
  private bitmap: HTMLCanvasElement | null = null;
  private cell = 1;
  private left = 0;
  private top = 0;
  private hl: { row: number | null; col: number | null; sel: number | null } = { row: null, col: null, sel: null };

  constructor(testid = "heatmap") {
    this.el = document.createElement("div");
    this.el.style.position = "relative";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "lw-canvas";
    this.canvas.dataset.testid = testid;
    this.tip = document.createElement("div");
    this.tip.style.cssText = "position:absolute;pointer-events:none;background:rgba(20,20,20,.85);color:#fff;padding:2px 5px;border-radius:3px;font-size:11px;white-space:pre;display:none;z-index:5";
    this.el.append(this.canvas, this.tip);
    this.canvas.addEventListener("mousemove", (e) => this.move(e));
    this.canvas.addEventListener("mouseleave", () => {
      this.tip.style.display = "none";
      this.o.onLeave?.();
    });
    this.canvas.addEventListener("click", (e) => {
      const rc = this.cellAt(e);
      if (rc) this.o.onClick?.(rc[0], rc[1]);
    });
  }

  /** The matrix currently drawn (tests compare it with the model's numbers). */
  get matrix(): NDArray | null { return this.m; }

  get rows(): number { return this.m ? this.m.shape[0] : 0; }
  get cols(): number { return this.m ? this.m.shape[1] : 0; }

  /** Position (CSS px, relative to the canvas) of the centre of cell (r, c): used by tests. */
  cellCenter(r: number, c: number): [number, number] {
    return [this.left + (c + 0.5) * this.cell, this.top + (r + 0.5) * this.cell];
  }

  draw(m: NDArray, o: HeatmapOptions = {}): void {
    this.m = m;
    this.o = o;
    const [rows, cols] = m.shape;
    let vmax = o.vmax;
    if (vmax === undefined) {
      vmax = 0;
      for (let i = 0; i < m.values.length; i++) vmax = Math.max(vmax, Math.abs(m.values[i]));
    }
    const color = o.scale === "div" ? (v: number) => div(v, vmax!) : (v: number) => seq(v, vmax!);
    // 1 px per cell offscreen, scaled up without smoothing
    const bm = document.createElement("canvas");
    bm.width = cols;
    bm.height = rows;
    const bctx = bm.getContext("2d")!;
    const img = bctx.createImageData(cols, rows);
    for (let i = 0; i < rows * cols; i++) {
      const c: RGB = color(m.values[i]);
      img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
    }
    bctx.putImageData(img, 0, 0);
    this.bitmap = bm;
    const maxSize = o.maxSize ?? 520;
    this.cell = Math.max(o.minCell ?? 0.25, Math.min(28, maxSize / Math.max(rows, cols)));
    const labelPx = (labels?: string[]) => (labels && this.cell >= 6 ? 8 + 6.5 * Math.min(12, Math.max(...labels.map((s) => s.length), 1)) : 0);
    this.left = labelPx(o.rowLabels);
    this.top = labelPx(o.colLabels);
    this.render();
    this.canvas.dataset.rows = String(rows);
    this.canvas.dataset.cols = String(cols);
    this.canvas.dataset.cell = String(this.cell);
    this.canvas.dataset.left = String(this.left);
    this.canvas.dataset.top = String(this.top);
  }

  highlight(row: number | null, col: number | null, sel: number | null = this.hl.sel): void {
    this.hl = { row, col, sel };
    this.render();
  }

  private render(): void {
    if (!this.m || !this.bitmap) return;
    const [rows, cols] = this.m.shape;
    const w = this.left + cols * this.cell + 2;
    const hgt = this.top + rows * this.cell + 2;
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    if (this.canvas.width !== Math.ceil(w * dpr) || this.canvas.height !== Math.ceil(hgt * dpr)) {
      this.canvas.width = Math.ceil(w * dpr);
      this.canvas.height = Math.ceil(hgt * dpr);
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${hgt}px`;
    }
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.bitmap, this.left, this.top, cols * this.cell, rows * this.cell);
    const o = this.o;
    ctx.font = "11px ui-monospace,Menlo,monospace";
    ctx.fillStyle = "#333";
    if (this.cell >= 6) {
      const step = Math.ceil(11 / this.cell);
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      if (o.rowLabels) for (let r = 0; r < rows; r += step) {
        ctx.fillStyle = r === this.hl.sel || r === this.hl.row ? "#d62728" : "#333";
        ctx.fillText(shorten(o.rowLabels[r] ?? ""), this.left - 4, this.top + (r + 0.5) * this.cell);
      }
      if (o.colLabels) for (let c = 0; c < cols; c += step) {
        ctx.save();
        ctx.translate(this.left + (c + 0.5) * this.cell, this.top - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left";
        ctx.fillStyle = (c === this.hl.sel && o.markSelColumn !== false) || c === this.hl.col ? "#d62728" : "#333";
        ctx.fillText(shorten(o.colLabels[c] ?? ""), 0, 0);
        ctx.restore();
      }
    }
    if (o.cellText && this.cell >= 18) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = `${Math.min(11, this.cell / 2.2)}px ui-monospace,Menlo,monospace`;
      const vmax = o.vmax ?? 1;
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
        const v = this.m.values[r * cols + c];
        ctx.fillStyle = ink(o.scale === "div" ? div(v, vmax) : seq(v, vmax));
        ctx.fillText(shorten(o.cellText(r, c), Math.max(2, Math.floor(this.cell / 6))), this.left + (c + 0.5) * this.cell, this.top + (r + 0.5) * this.cell);
      }
    }
    ctx.lineWidth = 1.5;
    const box = (x: number, y: number, bw: number, bh: number, color: string) => {
      ctx.strokeStyle = color;
      ctx.strokeRect(x + 0.5, y + 0.5, bw, bh);
    };
    if (this.hl.row !== null) box(this.left, this.top + this.hl.row * this.cell, cols * this.cell, this.cell, "#ff7f0e");
    if (this.hl.col !== null) box(this.left + this.hl.col * this.cell, this.top, this.cell, rows * this.cell, "#ff7f0e");
    if (this.hl.sel !== null && this.hl.sel >= 0 && this.hl.sel < rows) box(this.left, this.top + this.hl.sel * this.cell, cols * this.cell, this.cell, "#d62728");
  }

  private cellAt(e: MouseEvent): [number, number] | null {
    if (!this.m) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left - this.left;
    const y = e.clientY - rect.top - this.top;
    const c = Math.floor(x / this.cell);
    const r = Math.floor(y / this.cell);
    if (r < 0 || c < 0 || r >= this.rows || c >= this.cols) return null;
    return [r, c];
  }

  private move(e: MouseEvent): void {
    const rc = this.cellAt(e);
    if (!rc || !this.m) {
      this.tip.style.display = "none";
      return;
    }
    const [r, c] = rc;
    const v = this.m.values[r * this.cols + c];
    const o = this.o;
    this.tip.textContent = o.describe ? o.describe(r, c, v) : `${o.rowLabels?.[r] ?? r} \u2192 ${o.colLabels?.[c] ?? c}: ${v.toFixed(4)}`;
    this.tip.style.display = "block";
    this.tip.style.left = `${this.left + (c + 1) * this.cell + 8}px`;
    this.tip.style.top = `${this.top + r * this.cell}px`;
    o.onHover?.(r, c);
  }
}
