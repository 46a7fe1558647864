// A matrix on one <canvas>: labelled axes, hover/click cells, row/column highlight, PNG export.
// Text is drawn with fillText (never parsed as HTML), so token strings cannot inject markup.
import { ink, pixels, scaleColor, Scale } from "./colors";
import { localPoint } from "./dom";
import { fmt } from "./format";
import { cellCenter, cellRect, GridLayout, gridSize, hitCell } from "./geometry";
import { absMax, at, NDArray } from "./ndarray";

export interface HeatmapOptions {
  rowLabels?: string[];
  colLabels?: string[];
  scale?: Scale;
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

/** Side of a cell (CSS px): the largest that keeps the plot within maxSize, at most 28, at least minCell. */
export function cellSize(rows: number, cols: number, maxSize = 520, minCell = 0.25): number {
  return Math.max(minCell, Math.min(28, maxSize / Math.max(rows, cols, 1)));
}

/** Room (CSS px) for axis labels: none when cells are too small to label or there are no labels. */
export function labelRoom(labels: string[] | undefined, cell: number): number {
  return labels && cell >= 6 ? 8 + 6.5 * Math.min(12, Math.max(...labels.map((s) => s.length), 1)) : 0;
}

/** Where the cells of a rows x cols heatmap are drawn. */
export function heatmapLayout(rows: number, cols: number, o: Pick<HeatmapOptions, "rowLabels" | "colLabels" | "maxSize" | "minCell"> = {}): GridLayout {
  const cell = cellSize(rows, cols, o.maxSize, o.minCell);
  return { left: labelRoom(o.rowLabels, cell), top: labelRoom(o.colLabels, cell), rows, cols, cellW: cell, cellH: cell };
}

export class Heatmap {
  readonly canvas: HTMLCanvasElement;
  readonly tip: HTMLDivElement;
  readonly el: HTMLDivElement;
  private m: NDArray | null = null;
  private o: HeatmapOptions = {};
  private bitmap: HTMLCanvasElement | null = null;
  private vmax = 0; // colour range of the matrix drawn
  private g: GridLayout = { left: 0, top: 0, rows: 0, cols: 0, cellW: 1, cellH: 1 };
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

  /** Where the cells are drawn (CSS px, relative to the canvas). */
  get layout(): GridLayout { return this.g; }

  /** Position (CSS px, relative to the canvas) of the centre of cell (r, c): used by tests. */
  cellCenter(r: number, c: number): [number, number] {
    return cellCenter(this.g, r, c);
  }

  /** [row, col] of the cell under canvas point (x, y), [-1, -1] outside the cells. */
  cellAtPoint(x: number, y: number): [number, number] {
    return this.m ? hitCell(this.g, x, y) : [-1, -1];
  }

  draw(m: NDArray, o: HeatmapOptions = {}): void {
    this.m = m;
    this.o = o;
    const [rows, cols] = m.shape;
    const vmax = o.vmax ?? absMax(m.values);
    this.vmax = vmax;
    // 1 px per cell offscreen, scaled up without smoothing (no bitmap where canvases cannot draw)
    const bm = document.createElement("canvas");
    bm.width = cols;
    bm.height = rows;
    const bctx = bm.getContext("2d");
    if (bctx) {
      const img = bctx.createImageData(cols, rows);
      img.data.set(pixels(m.values, scaleColor(o.scale, vmax)));
      bctx.putImageData(img, 0, 0);
    }
    this.bitmap = bctx ? bm : null;
    this.g = heatmapLayout(rows, cols, o);
    this.render();
    Object.assign(this.canvas.dataset, {
      rows: String(rows), cols: String(cols), cell: String(this.g.cellW), left: String(this.g.left), top: String(this.g.top),
    });
  }

  highlight(row: number | null, col: number | null, sel: number | null = this.hl.sel): void {
    this.hl = { row, col, sel };
    this.render();
  }

  private render(): void {
    if (!this.m) return;
    const [rows, cols] = this.m.shape;
    const g = this.g, cell = g.cellW, left = g.left, top = g.top;
    const [gw, gh] = gridSize(g);
    const w = gw + 2;
    const hgt = gh + 2;
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    if (this.canvas.width !== Math.ceil(w * dpr) || this.canvas.height !== Math.ceil(hgt * dpr)) {
      this.canvas.width = Math.ceil(w * dpr);
      this.canvas.height = Math.ceil(hgt * dpr);
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${hgt}px`;
    }
    const ctx = this.canvas.getContext("2d");
    if (!ctx || !this.bitmap) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.bitmap, left, top, cols * cell, rows * cell);
    const o = this.o;
    ctx.font = "11px ui-monospace,Menlo,monospace";
    ctx.fillStyle = "#333";
    if (cell >= 6) {
      const step = Math.ceil(11 / cell);
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      if (o.rowLabels) for (let r = 0; r < rows; r += step) {
        ctx.fillStyle = r === this.hl.sel || r === this.hl.row ? "#d62728" : "#333";
        ctx.fillText(shorten(o.rowLabels[r] ?? ""), left - 4, top + (r + 0.5) * cell);
      }
      if (o.colLabels) for (let c = 0; c < cols; c += step) {
        ctx.save();
        ctx.translate(left + (c + 0.5) * cell, top - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left";
        ctx.fillStyle = (c === this.hl.sel && o.markSelColumn !== false) || c === this.hl.col ? "#d62728" : "#333";
        ctx.fillText(shorten(o.colLabels[c] ?? ""), 0, 0);
        ctx.restore();
      }
    }
    if (o.cellText && cell >= 18) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = `${Math.min(11, cell / 2.2)}px ui-monospace,Menlo,monospace`;
      const color = scaleColor(o.scale, this.vmax);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
        const [x, y] = cellCenter(g, r, c);
        ctx.fillStyle = ink(color(at(this.m, r, c)));
        ctx.fillText(shorten(o.cellText(r, c), Math.max(2, Math.floor(cell / 6))), x, y);
      }
    }
    ctx.lineWidth = 1.5;
    const box = (x: number, y: number, bw: number, bh: number, color: string) => {
      ctx.strokeStyle = color;
      ctx.strokeRect(x + 0.5, y + 0.5, bw, bh);
    };
    if (this.hl.row !== null) box(left, cellRect(g, this.hl.row, 0).y, cols * cell, cell, "#ff7f0e");
    if (this.hl.col !== null) box(cellRect(g, 0, this.hl.col).x, top, cell, rows * cell, "#ff7f0e");
    if (this.hl.sel !== null && this.hl.sel >= 0 && this.hl.sel < rows) box(left, cellRect(g, this.hl.sel, 0).y, cols * cell, cell, "#d62728");
  }

  /** The cell under a mouse event, or null. */
  private cellAt(e: MouseEvent): [number, number] | null {
    const [r, c] = this.cellAtPoint(...localPoint(e, this.canvas));
    return r < 0 ? null : [r, c];
  }

  private move(e: MouseEvent): void {
    const rc = this.cellAt(e);
    if (!rc || !this.m) {
      this.tip.style.display = "none";
      return;
    }
    const [r, c] = rc;
    const v = at(this.m, r, c);
    const o = this.o;
    this.tip.textContent = o.describe ? o.describe(r, c, v) : `${o.rowLabels?.[r] ?? r} \u2192 ${o.colLabels?.[c] ?? c}: ${fmt(v, 4)}`;
    this.tip.style.display = "block";
    const b = cellRect(this.g, r, c);
    this.tip.style.left = `${b.x + b.w + 8}px`;
    this.tip.style.top = `${b.y}px`;
    o.onHover?.(r, c);
  }
}
