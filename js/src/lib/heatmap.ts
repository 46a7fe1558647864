// A matrix on one <canvas>: labelled axes, hover/click cells, row/column highlight, zoom and pan,
// a colour bar, PNG export. Text is drawn with fillText (never parsed as HTML), so token strings
// cannot inject markup.
//
// Long matrices: the matrix drawn may be an overview whose cells cover step x step rows/columns of
// the matrix shown (its `extent`); every coordinate the heatmap reports (clicks, hovers, labels, the
// view window) is in rows/columns of the extent, and an exact tile of it can be laid over the overview.
import { ColorBar } from "./colorbar";
import { colorScale, ColorScale, ink, pixels, Scale } from "./colors";
import { h, localPoint, themeInk, THEME_EVENT, whenShown } from "./dom";
import { fmt } from "./format";
import {
  blockOf, blockRange, cellCenter, clampWindow, fullWindow, GridLayout, hitCell, labelIndices, labelStep,
  panWindow, ViewWindow, zoomOf, zoomWindow,
} from "./geometry";
import { absMax, NDArray } from "./ndarray";

export interface HeatmapOptions {
  rowLabels?: string[];
  colLabels?: string[];
  scale?: Scale;
  vmax?: number; // colour range: [0, vmax] (seq) or [-vmax, vmax] (div); default from data
  label?: string; // what the colours measure (units), named by the colour bar
  colorbar?: boolean; // draw the colour bar (default true)
  maxSize?: number; // largest plot side in CSS px (at zoom 1)
  minCell?: number;
  cellWidth?: number; // least cell width (CSS px, at zoom 1): cells wider than tall, e.g. to hold a token's text
  step?: number; // each matrix cell covers step x step rows/columns of the extent (an overview); default 1
  extent?: [number, number]; // rows and columns shown; default the matrix's shape times step
  zoom?: boolean; // wheel / +- buttons / double-click zoom and drag pan (default true, where cells can grow)
  keepView?: boolean; // keep the zoom window when a matrix of the same extent is drawn again (default true)
  onView?: (w: ViewWindow) => void; // the view window changed (zoom, pan, reset)
  cellText?: (r: number, c: number) => string; // drawn inside cells when they are large enough
  onHover?: (r: number, c: number) => void;
  onLeave?: () => void;
  onClick?: (r: number, c: number) => void;
  describe?: (r: number, c: number, v: number, exact: boolean) => string; // tooltip text (exact: not an overview block)
  unavailable?: (r: number, c: number) => string; // why a NaN cell has no value (tooltip); default NOT_AVAILABLE
  markSelColumn?: boolean; // also mark the label of column `sel` (default true: rows and columns are the same tokens)
}

/** An exact window laid over an overview: m holds rows [r0, r0 + m.shape[0]) x columns [c0, ...). */
export interface Tile { r0: number; c0: number; m: NDArray }

export const LABEL_FONT = 11; // px, the largest label font
export const MIN_LABEL_PITCH = 9; // px between consecutive labels at least
const CHAR_W = 6.5; // px per character of an 11 px monospace label
const MAX_LABEL_CHARS = 12;
const MAX_CELL = 40; // px: zooming stops when cells are this large

export function shorten(s: string, n = 12): string {
  return s.length > n ? s.slice(0, Math.max(1, n - 1)) + "\u2026" : s;
}

/** Side of a cell (CSS px): the largest that keeps the plot within maxSize, at most 28, at least minCell. */
export function cellSize(rows: number, cols: number, maxSize = 520, minCell = 0.25): number {
  return Math.max(minCell, Math.min(28, maxSize / Math.max(rows, cols, 1)));
}

/** Font size (px) of the text drawn inside cells h px tall and w px wide: 11 px where the cell
 * allows (one line with a little room), never below 8. */
export function cellTextFont(hgt: number, w: number): number {
  return Math.max(8, Math.min(11, hgt - 6, w / 2.5));
}

/** Characters of a monospace font of `font` px that fit a cell w px wide (1 px padding each side). */
export function cellTextChars(w: number, font: number): number {
  return Math.max(2, Math.floor((w - 2) / ((CHAR_W * font) / LABEL_FONT) + 1e-9));
}

/** Least cell width (CSS px) that shows `chars` characters of 11 px monospace cell text whole (with
 * 3 px on each side). */
export function cellWidthFor(chars: number): number {
  return Math.ceil(6 + CHAR_W * chars);
}

/** A label drawn among thinned ones (every k-th): its position first, then the token. */
export function thinnedLabel(i: number, label: string): string {
  return `${i}\u2009${label}`;
}

/** Room (CSS px) for axis labels: none without labels; else up to 12 characters of the longest.
 * Labels are always drawn (every k-th where cells are small), so room is kept at every cell size. */
export function labelRoom(labels: string[] | undefined, thinned = false): number {
  if (!labels || !labels.length) return 0;
  let n = 1;
  for (const s of labels) if (s.length > n) { n = s.length; if (n >= MAX_LABEL_CHARS) break; }
  // thinned labels start with their position: room for it too (up to 12 characters of the token)
  const prefix = thinned ? String(labels.length - 1).length + 1 : 0;
  return 8 + CHAR_W * (Math.min(MAX_LABEL_CHARS, n) + prefix);
}

/** Font size (px) of labels drawn `pitch` px apart. */
export function labelFont(pitch: number): number {
  return Math.min(LABEL_FONT, Math.max(8, Math.floor(pitch) - 1));
}

/** Where the cells of a rows x cols heatmap are drawn (at zoom 1). */
export function heatmapLayout(rows: number, cols: number, o: Pick<HeatmapOptions, "rowLabels" | "colLabels" | "maxSize" | "minCell"> = {}): GridLayout {
  const cell = cellSize(rows, cols, o.maxSize, o.minCell);
  return { left: labelRoom(o.rowLabels), top: labelRoom(o.colLabels), rows, cols, cellW: cell, cellH: cell };
}

/** What a cell without a value (NaN) says on hover where the view gives no reason. */
export const NOT_AVAILABLE = "not available";

/** Whether a value is drawn as "not available" (hatched) rather than as a colour of the scale. */
export function isUnavailable(v: number): boolean {
  return Number.isNaN(v);
}

/** Mark the rectangle (x, y, w, h) as "not available": the background, then diagonal lines `pitch`
 * px apart in `color`. No colour of any scale, so it cannot be read as a value (0 included). */
export function hatch(ctx: CanvasRenderingContext2D, x: number, y: number, w: number, h: number,
  color: string, background: string, pitch = 4): void {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, w, h);
  ctx.clip();
  ctx.fillStyle = background;
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let d = -h; d < w; d += pitch) { ctx.moveTo(x + d, y + h); ctx.lineTo(x + d + h, y); }
  ctx.stroke();
  ctx.restore();
}

/** A 1 px per cell bitmap of m (null where canvases cannot draw). */
function bitmapOf(m: NDArray, color: (v: number) => [number, number, number]): HTMLCanvasElement | null {
  const [rows, cols] = m.shape;
  const bm = document.createElement("canvas");
  bm.width = cols;
  bm.height = rows;
  const ctx = bm.getContext("2d");
  if (!ctx) return null;
  const img = ctx.createImageData(cols, rows);
  img.data.set(pixels(m.values, color));
  ctx.putImageData(img, 0, 0);
  return bm;
}

export class Heatmap {
  readonly canvas: HTMLCanvasElement;
  readonly tip: HTMLDivElement;
  readonly el: HTMLDivElement;
  readonly colorbar: ColorBar;
  private readonly zoomBox: HTMLSpanElement;
  private readonly zoomInfo: HTMLSpanElement;
  private m: NDArray | null = null;
  private o: HeatmapOptions = {};
  private bitmap: HTMLCanvasElement | null = null;
  private gaps = false; // the matrix holds cells without a value (NaN), drawn hatched
  private sc: ColorScale = colorScale("seq", 0);
  private step = 1;
  private nr = 0; // rows and columns of the extent
  private nc = 0;
  private cell0 = 1; // cell height at zoom 1
  private aspect = 1; // cell width / cell height (1: square cells)
  private pl = 0; // plot rectangle: left, top (label room)
  private pt = 0;
  private win: ViewWindow = fullWindow(0, 0);
  private t: (Tile & { bitmap: HTMLCanvasElement | null }) | null = null;
  private hl: { row: number | null; col: number | null; sel: number | null } = { row: null, col: null, sel: null };
  private drag: { x: number; y: number; win: ViewWindow; moved: boolean } | null = null;
  private eatClick = false;
  private labelsDrawn: { rows: number[]; cols: number[]; font: number } = { rows: [], cols: [], font: LABEL_FONT };

  constructor(testid = "heatmap") {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "lw-canvas";
    this.canvas.dataset.testid = testid;
    this.tip = document.createElement("div");
    this.tip.style.cssText = "position:absolute;pointer-events:none;background:rgba(20,20,20,.85);color:#fff;padding:2px 5px;border-radius:3px;font-size:11px;white-space:pre;display:none;z-index:5";
    this.colorbar = new ColorBar(`${testid}-colorbar`);
    const btn = (text: string, title: string, act: () => void) => {
      const b = h("button", { class: "lw-btn", text, title, "data-zoom": text === "+" ? "in" : text === "\u2212" ? "out" : "reset" });
      b.addEventListener("click", (e) => { e.stopPropagation(); act(); });
      return b;
    };
    this.zoomInfo = h("span", { class: "lw-muted" });
    this.zoomBox = h("span", { class: "lw-zoom", "data-testid": `${testid}-zoom` },
      btn("+", "Zoom in (or scroll / double-click on the heatmap; drag to pan)", () => this.zoomBy(2)),
      btn("\u2212", "Zoom out (shift + double-click)", () => this.zoomBy(0.5)),
      btn("\u2922", "Show the whole matrix", () => this.resetView()),
      this.zoomInfo);
    this.zoomBox.style.display = "none";
    this.el = h("div", { style: "position:relative" }, this.canvas, this.tip,
      h("div", { class: "lw-foot" }, this.colorbar.el, this.zoomBox));
    const c = this.canvas;
    c.addEventListener("mousemove", (e) => { if (!this.drag) this.move(e); });
    c.addEventListener("mouseleave", () => {
      this.tip.style.display = "none";
      this.o.onLeave?.();
    });
    c.addEventListener("click", (e) => {
      if (this.eatClick) { this.eatClick = false; return; } // the end of a drag
      const rc = this.cellAt(e);
      if (rc) this.o.onClick?.(rc[0], rc[1]);
    });
    c.addEventListener("mousedown", (e) => this.startDrag(e));
    c.addEventListener(THEME_EVENT, () => this.recolor());
    c.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    c.addEventListener("dblclick", (e) => {
      if (!this.zoomable) return;
      const [x, y] = localPoint(e, c);
      if (!this.inPlot(x, y)) return;
      e.preventDefault();
      this.zoomAt(...this.toMatrix(x, y), e.shiftKey ? 0.5 : 2);
    });
  }

  /** The matrix currently drawn (an overview where step > 1; tests compare it with the model's numbers). */
  get matrix(): NDArray | null { return this.m; }

  /** Rows and columns of the extent shown (the matrix's shape when step is 1). */
  get rows(): number { return this.nr; }
  get cols(): number { return this.nc; }

  /** Rows/columns of the extent per matrix cell (1: exact). */
  get blockStep(): number { return this.step; }

  /** The colour scale of the matrix drawn (token strips beside it paint with the same). */
  get scale(): ColorScale { return this.sc; }

  /** Where the cells are drawn now (CSS px, relative to the canvas): left/top are where cell (0, 0) is,
   * off the plot when the view is panned. */
  get layout(): GridLayout {
    const cell = this.cell, cw = cell * this.aspect;
    return { left: this.pl - this.win.x0 * cw, top: this.pt - this.win.y0 * cell, rows: this.nr, cols: this.nc, cellW: cw, cellH: cell };
  }

  /** The plot rectangle (CSS px). */
  get plot(): { left: number; top: number; width: number; height: number } {
    return { left: this.pl, top: this.pt, width: this.nc * this.cell0 * this.aspect, height: this.nr * this.cell0 };
  }

  /** The visible window, in rows/columns of the extent. */
  get window(): ViewWindow { return { ...this.win }; }

  /** Height of a cell now (CSS px; its side where cells are square). */
  get cell(): number { return this.cell0 * zoomOf(this.win, Math.max(this.nc, 1)); }

  /** Width of a cell now (CSS px): the height unless option cellWidth made cells wider. */
  get cellWidth(): number { return this.cell * this.aspect; }

  get maxZoom(): number { return Math.max(1, MAX_CELL / this.cell0); }

  /** Whether the user can zoom (option zoom, and cells small enough to grow at least 1.5 times). */
  get zoomable(): boolean { return this.o.zoom !== false && this.maxZoom >= 1.5 && this.m !== null; }

  /** Labels drawn by the last render: indices of rows and columns, and the font size. */
  get labels(): { rows: number[]; cols: number[]; font: number } { return this.labelsDrawn; }

  /** The exact tile laid over the overview, or null. */
  get tile(): Tile | null { return this.t ? { r0: this.t.r0, c0: this.t.c0, m: this.t.m } : null; }

  /** Position (CSS px, relative to the canvas) of the centre of cell (r, c): used by tests. */
  cellCenter(r: number, c: number): [number, number] {
    return cellCenter(this.layout, r, c);
  }

  /** [row, col] of the cell under canvas point (x, y), [-1, -1] outside the (visible) cells. */
  cellAtPoint(x: number, y: number): [number, number] {
    return this.m && this.inPlot(x, y) ? hitCell(this.layout, x, y) : [-1, -1];
  }

  /** Value shown at (r, c) of the extent: the tile's where it covers (r, c), else the overview block's. */
  valueAt(r: number, c: number): number {
    const t = this.t;
    if (t && r >= t.r0 && c >= t.c0 && r < t.r0 + t.m.shape[0] && c < t.c0 + t.m.shape[1]) {
      return t.m.values[(r - t.r0) * t.m.shape[1] + (c - t.c0)];
    }
    if (!this.m) return NaN;
    const br = blockOf(r, this.step), bc = blockOf(c, this.step);
    const [R, C] = this.m.shape;
    return br >= 0 && bc >= 0 && br < R && bc < C ? this.m.values[br * C + bc] : NaN;
  }

  /** Whether valueAt(r, c) is the exact value (not a block's maximum). */
  exactAt(r: number, c: number): boolean {
    const t = this.t;
    return this.step <= 1 || Boolean(t && r >= t.r0 && c >= t.c0 && r < t.r0 + t.m.shape[0] && c < t.c0 + t.m.shape[1]);
  }

  draw(m: NDArray, o: HeatmapOptions = {}): void {
    const [R, C] = m.shape;
    const step = Math.max(1, Math.floor(o.step ?? 1));
    const [nr, nc] = o.extent ?? [R * step, C * step];
    const same = nr === this.nr && nc === this.nc && o.keepView !== false && this.m !== null;
    this.m = m;
    this.o = o;
    this.step = step;
    this.nr = nr;
    this.nc = nc;
    this.sc = colorScale(o.scale, o.vmax ?? absMax(m.values), o.label ?? "");
    this.bitmap = bitmapOf(m, this.sc.color);
    this.gaps = m.values.some(isUnavailable);
    this.t = null;
    this.cell0 = cellSize(nr, nc, o.maxSize, o.minCell);
    this.aspect = Math.max(1, (o.cellWidth ?? 0) / this.cell0);
    // labels thinned at zoom 1 (every k-th) carry their position: room for it
    this.pl = labelRoom(o.rowLabels, labelStep(this.cell0, MIN_LABEL_PITCH) > 1);
    this.pt = labelRoom(o.colLabels, labelStep(this.cell0 * this.aspect, MIN_LABEL_PITCH) > 1);
    this.win = same ? clampWindow(this.win, nr, nc) : fullWindow(nr, nc);
    this.colorbar.set(o.colorbar === false ? null : this.sc);
    this.zoomBox.style.display = this.zoomable ? "" : "none";
    this.render();
  }

  /** Colour the matrix again with its scale's palette as it is now (the theme changed: dark and light
   * themes have their own tables), keeping the view window, the tile and the highlight. */
  recolor(): void {
    if (!this.m) { this.render(); return; }
    this.bitmap = bitmapOf(this.m, this.sc.color);
    if (this.t) this.t = { ...this.t, bitmap: bitmapOf(this.t.m, this.sc.color) };
    this.colorbar.set(this.o.colorbar === false ? null : this.sc, this.colorbar.label);
    this.render();
  }

  /** Lay an exact tile over the overview (null: remove it); ignored when nothing is drawn. */
  setTile(t: Tile | null): void {
    if (!this.m) return;
    this.t = t ? { ...t, bitmap: bitmapOf(t.m, this.sc.color) } : null;
    if (t && t.m.values.some(isUnavailable)) this.gaps = true;
    this.render();
  }

  highlight(row: number | null, col: number | null, sel: number | null = this.hl.sel): void {
    this.hl = { row, col, sel };
    this.render();
  }

  /** Show window w: its column span sets the magnification (within [1, maxZoom]), the rows follow so
   * that cells stay square, centred where w is, moved inside the extent. Calls onView when it changed. */
  setWindow(w: ViewWindow): void {
    const z = Math.min(Math.max(zoomOf(w, this.nc), 1), this.maxZoom);
    const cx = (w.x0 + w.x1) / 2, cy = (w.y0 + w.y1) / 2, sx = this.nc / z, sy = this.nr / z;
    const next = clampWindow({ x0: cx - sx / 2, y0: cy - sy / 2, x1: cx + sx / 2, y1: cy + sy / 2 }, this.nr, this.nc);
    const d = Math.abs(next.x0 - this.win.x0) + Math.abs(next.x1 - this.win.x1) + Math.abs(next.y0 - this.win.y0) + Math.abs(next.y1 - this.win.y1);
    if (!(d > 1e-9)) return;
    this.win = next;
    this.render();
    this.o.onView?.(this.window);
  }

  /** Zoom by factor about point (ux, uy) of the extent (rows/columns), which stays in place. */
  zoomAt(ux: number, uy: number, factor: number): void {
    this.setWindow(zoomWindow(this.win, this.nr, this.nc, ux, uy, factor, this.maxZoom));
  }

  /** Zoom by factor about the centre of the view. */
  zoomBy(factor: number): void {
    this.zoomAt((this.win.x0 + this.win.x1) / 2, (this.win.y0 + this.win.y1) / 2, factor);
  }

  resetView(): void {
    this.setWindow(fullWindow(this.nr, this.nc));
  }

  /** Canvas point (CSS px) -> fractional (column, row) of the extent. */
  private toMatrix(x: number, y: number): [number, number] {
    const cell = this.cell;
    return [this.win.x0 + (x - this.pl) / (cell * this.aspect), this.win.y0 + (y - this.pt) / cell];
  }

  private inPlot(x: number, y: number): boolean {
    const p = this.plot;
    return x >= p.left && y >= p.top && x < p.left + p.width && y < p.top + p.height;
  }

  private render(): void {
    if (!this.m) return;
    const p = this.plot, left = p.left, top = p.top, pw = p.width, ph = p.height;
    const w = left + pw + 2, hgt = top + ph + 2;
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    if (this.canvas.width !== Math.ceil(w * dpr) || this.canvas.height !== Math.ceil(hgt * dpr)) {
      this.canvas.width = Math.ceil(w * dpr);
      this.canvas.height = Math.ceil(hgt * dpr);
      this.canvas.style.width = `${w}px`;
      this.canvas.style.height = `${hgt}px`;
    }
    const g = this.layout, cell = g.cellH, cw = g.cellW, win = this.win;
    // visible rows / columns of the extent
    const r0 = Math.max(0, Math.floor(win.y0 + 1e-9)), r1 = Math.min(this.nr, Math.ceil(win.y1 - 1e-9));
    const c0 = Math.max(0, Math.floor(win.x0 + 1e-9)), c1 = Math.min(this.nc, Math.ceil(win.x1 - 1e-9));
    const o = this.o;
    const k = labelStep(cell, MIN_LABEL_PITCH), kc = labelStep(cw, MIN_LABEL_PITCH);
    const font = labelFont(Math.min(k * cell, kc * cw));
    const rowIdx = o.rowLabels ? labelIndices(r0, r1, k).filter((r) => r < o.rowLabels!.length) : [];
    const colIdx = o.colLabels ? labelIndices(c0, c1, kc).filter((c) => c < o.colLabels!.length) : [];
    this.labelsDrawn = { rows: rowIdx, cols: colIdx, font };
    const zoom = zoomOf(win, Math.max(this.nc, 1));
    Object.assign(this.canvas.dataset, {
      rows: String(this.nr), cols: String(this.nc), cell: String(cell), cellW: String(cw), left: String(g.left), top: String(g.top),
      step: String(this.step), zoom: String(Math.round(zoom * 1000) / 1000),
      view: [win.x0, win.y0, win.x1, win.y1].map((v) => Math.round(v * 100) / 100).join(","),
      rowLabels: String(rowIdx.length), colLabels: String(colIdx.length), labelStep: String(k), exact: this.t ? "tile" : this.step > 1 ? "overview" : "exact",
    });
    this.zoomInfo.textContent = zoom > 1.001 ? `\u00d7${zoom < 10 ? zoom.toFixed(1) : Math.round(zoom)}` : "";

    const ctx = this.canvas.getContext("2d");
    if (!ctx || !this.bitmap) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, pw, ph);
    ctx.clip();
    ctx.imageSmoothingEnabled = false;
    // the overview's blocks under the window, 1 bitmap pixel each
    const s = this.step, [R, C] = this.m.shape;
    const bx0 = Math.min(blockOf(c0, s), C), bx1 = Math.min(C, blockOf(Math.max(c1 - 1, 0), s) + 1);
    const by0 = Math.min(blockOf(r0, s), R), by1 = Math.min(R, blockOf(Math.max(r1 - 1, 0), s) + 1);
    if (bx1 > bx0 && by1 > by0) {
      ctx.drawImage(this.bitmap, bx0, by0, bx1 - bx0, by1 - by0,
        g.left + bx0 * s * cw, g.top + by0 * s * cell, (bx1 - bx0) * s * cw, (by1 - by0) * s * cell);
    }
    const t = this.t;
    if (t && t.bitmap) ctx.drawImage(t.bitmap, g.left + t.c0 * cw, g.top + t.r0 * cell, t.m.shape[1] * cw, t.m.shape[0] * cell);
    const theme = themeInk(this.canvas);
    let hatched = 0;
    if (this.gaps) { // cells without a value: hatched, never the colour of 0
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) {
        if (!isUnavailable(this.valueAt(r, c))) continue;
        hatch(ctx, g.left + c * cw, g.top + r * cell, cw, cell, theme.muted, theme.bg, Math.max(3, Math.min(6, cell / 3)));
        hatched++;
      }
    }
    this.canvas.dataset.unavailable = String(hatched); // cells drawn as "not available", for tests
    if (o.cellText && cell >= 18) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      const tf = cellTextFont(cell, cw);
      ctx.font = `${tf}px ui-monospace,Menlo,monospace`;
      const fit = cellTextChars(cw, tf);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) {
        if (isUnavailable(this.valueAt(r, c))) continue;
        const [x, y] = cellCenter(g, r, c);
        ctx.fillStyle = ink(this.sc.color(this.valueAt(r, c)));
        ctx.fillText(shorten(o.cellText(r, c), fit), x, y);
      }
    }
    ctx.restore();

    // labels: every k-th row / column, truncated only where they do not fit the label room
    ctx.font = `${font}px ui-monospace,Menlo,monospace`;
    const charW = (CHAR_W * font) / LABEL_FONT;
    const fitRow = Math.max(2, Math.floor((left - 8) / charW + 1e-9));
    const fitCol = Math.max(2, Math.floor((top - 8) / charW + 1e-9));
    // label colours: the theme's text on the theme's background (drawn before the canvas was in the
    // page: the light theme's, redrawn once it is there)
    if (!this.canvas.isConnected) whenShown(this.canvas, () => this.render());
    this.canvas.dataset.ink = theme.fg; // the label colour, for tests
    const hot = theme.hot, plain = theme.fg;
    // thinned labels (every k-th) carry their position: "40 the", "42 cat" reads as positions with
    // gaps, never as a sentence of every other token
    const rowText = (r: number) => (k > 1 ? thinnedLabel(r, o.rowLabels![r] ?? "") : o.rowLabels![r] ?? "");
    const colText = (c: number) => (kc > 1 ? thinnedLabel(c, o.colLabels![c] ?? "") : o.colLabels![c] ?? "");
    const rowLabel = (r: number, color: string, back: boolean) => {
      const y = g.top + (r + 0.5) * cell;
      const text = shorten(rowText(r), fitRow);
      if (back) { ctx.fillStyle = theme.bg; ctx.fillRect(0, y - font / 2 - 1, left - 1, font + 2); }
      ctx.fillStyle = color;
      ctx.fillText(text, left - 4, y);
    };
    const colLabel = (c: number, color: string, back: boolean) => {
      const x = g.left + (c + 0.5) * cw;
      ctx.save();
      ctx.translate(x, top - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      if (back) { ctx.fillStyle = theme.bg; ctx.fillRect(-1, -font / 2 - 1, top - 4, font + 2); }
      ctx.fillStyle = color;
      ctx.fillText(shorten(colText(c), fitCol), 0, 0);
      ctx.restore();
    };
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const rowHot = (r: number | null) => r !== null && (r === this.hl.sel || r === this.hl.row);
    const colHot = (c: number | null) => c !== null && ((c === this.hl.sel && o.markSelColumn !== false) || c === this.hl.col);
    for (const r of rowIdx) rowLabel(r, rowHot(r) ? hot : plain, false);
    for (const c of colIdx) colLabel(c, colHot(c) ? hot : plain, false);
    // the highlighted rows / columns are labelled even between thinned labels
    const visibleR = (r: number | null): r is number => r !== null && r >= r0 && r < r1 && r < (o.rowLabels?.length ?? 0);
    const visibleC = (c: number | null): c is number => c !== null && c >= c0 && c < c1 && c < (o.colLabels?.length ?? 0);
    ctx.textAlign = "right";
    for (const r of new Set([this.hl.row, this.hl.sel])) if (visibleR(r) && !rowIdx.includes(r)) rowLabel(r, hot, true);
    const hotCols = new Set([this.hl.col, o.markSelColumn !== false ? this.hl.sel : null]);
    for (const c of hotCols) if (visibleC(c) && !colIdx.includes(c)) colLabel(c, hot, true);

    // crosshair / selection boxes, clipped to the plot
    ctx.lineWidth = 1.5;
    const box = (x: number, y: number, bw: number, bh: number, color: string) => {
      ctx.strokeStyle = color;
      ctx.strokeRect(x + 0.5, y + 0.5, bw, bh);
    };
    const span = (a: number, lo: number, hi: number, size = cell): [number, number] | null => {
      const s0 = Math.max(a, lo), s1 = Math.min(a + size, hi);
      if (s1 <= s0) return null;
      const extra = Math.max(0, 2 - (s1 - s0)); // at least 2 px, so a row of an overview shows
      return [s0 - extra / 2, s1 - s0 + extra];
    };
    const rowBox = (r: number, color: string) => {
      const sp = span(g.top + r * cell, top, top + ph);
      if (sp) box(left, sp[0], pw, sp[1], color);
    };
    const colBox = (c: number, color: string) => {
      const sp = span(g.left + c * cw, left, left + pw, cw);
      if (sp) box(sp[0], top, sp[1], ph, color);
    };
    if (this.hl.row !== null) rowBox(this.hl.row, "#ff7f0e");
    if (this.hl.col !== null) colBox(this.hl.col, "#ff7f0e");
    if (this.hl.sel !== null && this.hl.sel >= 0 && this.hl.sel < this.nr) rowBox(this.hl.sel, "#d62728");
  }

  /** The cell under a mouse event, or null. */
  private cellAt(e: MouseEvent): [number, number] | null {
    const [r, c] = this.cellAtPoint(...localPoint(e, this.canvas));
    return r < 0 ? null : [r, c];
  }

  private showTip(text: string, x: number, y: number): void {
    this.tip.textContent = text;
    this.tip.style.display = "block";
    this.tip.style.left = `${x + 14}px`;
    this.tip.style.top = `${y + 10}px`;
  }

  private move(e: MouseEvent): void {
    if (!this.m) return;
    const [x, y] = localPoint(e, this.canvas);
    const [r, c] = this.cellAtPoint(x, y);
    const o = this.o;
    if (r < 0) {
      // over a label: its full text
      const [mc, mr] = this.toMatrix(x, y);
      const p = this.plot;
      const ri = Math.floor(mr), ci = Math.floor(mc);
      if (x < p.left && y >= p.top && y < p.top + p.height && o.rowLabels?.[ri] !== undefined) this.showTip(`${o.rowLabels[ri]}  [${ri}]`, x, y);
      else if (y < p.top && x >= p.left && x < p.left + p.width && o.colLabels?.[ci] !== undefined) this.showTip(`${o.colLabels[ci]}  [${ci}]`, x, y);
      else this.tip.style.display = "none";
      return;
    }
    const v = this.valueAt(r, c), exact = this.exactAt(r, c);
    let text: string;
    if (isUnavailable(v)) text = `${o.rowLabels?.[r] ?? r} \u2192 ${o.colLabels?.[c] ?? c}: ${o.unavailable?.(r, c) ?? NOT_AVAILABLE}`;
    else if (o.describe) text = o.describe(r, c, v, exact);
    else if (exact) text = `${o.rowLabels?.[r] ?? r} \u2192 ${o.colLabels?.[c] ?? c}: ${fmt(v, 4)}`;
    else {
      const [a0, a1] = blockRange(blockOf(r, this.step), this.step, this.nr), [b0, b1] = blockRange(blockOf(c, this.step), this.step, this.nc);
      text = `rows ${a0}\u2013${a1 - 1} \u2192 columns ${b0}\u2013${b1 - 1}: max ${fmt(v, 4)} (zoom in for exact values)`;
    }
    this.showTip(text, x, y);
    o.onHover?.(r, c);
  }

  private startDrag(e: MouseEvent): void {
    if (e.button !== 0 || !this.zoomable || zoomOf(this.win, this.nc) <= 1.0001) return;
    const [x, y] = localPoint(e, this.canvas);
    if (!this.inPlot(x, y)) return;
    e.preventDefault();
    this.drag = { x: e.clientX, y: e.clientY, win: this.win, moved: false };
    this.canvas.style.cursor = "grabbing";
    const moveTo = (ev: MouseEvent) => {
      const d = this.drag;
      if (!d) return;
      const dx = ev.clientX - d.x, dy = ev.clientY - d.y;
      if (Math.abs(dx) >= 3 || Math.abs(dy) >= 3) d.moved = true;
      if (d.moved) this.setWindow(panWindow(d.win, this.nr, this.nc, -dx / this.cellWidth, -dy / this.cell));
    };
    const up = (ev: MouseEvent) => {
      moveTo(ev);
      window.removeEventListener("mousemove", moveTo);
      window.removeEventListener("mouseup", up);
      this.canvas.style.cursor = "";
      if (this.drag?.moved) {
        this.eatClick = true; // the click that ends the drag is not a click on a cell
        setTimeout(() => { this.eatClick = false; }, 0);
      }
      this.drag = null;
    };
    window.addEventListener("mousemove", moveTo);
    window.addEventListener("mouseup", up);
  }

  private wheel(e: WheelEvent): void {
    if (!this.zoomable) return;
    const [x, y] = localPoint(e, this.canvas);
    if (!this.inPlot(x, y) || !e.deltaY) return;
    const per = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 0.5 : 0.0025; // lines, pages, pixels
    const factor = Math.min(2, Math.max(0.5, Math.exp(-e.deltaY * per)));
    const before = zoomOf(this.win, this.nc);
    if (before <= 1.0001 && factor < 1) return; // nothing to zoom out of: let the page scroll
    e.preventDefault();
    this.zoomAt(...this.toMatrix(x, y), factor);
  }
}
