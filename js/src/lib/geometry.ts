// Hit-testing and pixel mapping, free of the DOM: which heatmap cell or grid thumbnail lies under a
// point, where a data point is drawn on a scatter, which points a brush rectangle holds.
// Coordinates are CSS px relative to the canvas' top-left corner.

/** A grid of equal cells: heatmap cells (no gap) or the attention view's thumbnails (gap after each). */
export interface GridLayout {
  left: number; // x of the left edge of column 0
  top: number; // y of the top edge of row 0
  rows: number;
  cols: number;
  cellW: number;
  cellH: number;
  gapX?: number; // space after each column (not part of any cell)
  gapY?: number;
}

export interface Rect { x0: number; y0: number; x1: number; y1: number }

// Cell edges are computed as left + k * pitch: a point exactly on an edge must land in cell k even
// when pitch is not a binary fraction (520 / 7 px), so allow a rounding error below this.
const EDGE = 1e-9;

function axisHit(p: number, origin: number, n: number, size: number, gap: number): number {
  const pitch = size + gap;
  if (!(pitch > 0)) return -1;
  const u = (p - origin) / pitch;
  const k = Math.floor(u + EDGE);
  if (k < 0 || k >= n) return -1;
  return (u - k) * pitch < size - EDGE * pitch ? k : -1; // inside the cell, not in the gap after it
}

/** [row, col] of the cell under (x, y): the left and top edges belong to a cell, the right and bottom
 * edges to the next one (or to nothing past the last); [-1, -1] outside the grid or in a gap. */
export function hitCell(g: GridLayout, x: number, y: number): [number, number] {
  const c = axisHit(x, g.left, g.cols, g.cellW, g.gapX ?? 0);
  const r = axisHit(y, g.top, g.rows, g.cellH, g.gapY ?? 0);
  return r < 0 || c < 0 ? [-1, -1] : [r, c];
}

/** Top-left corner and size of cell (r, c). */
export function cellRect(g: GridLayout, r: number, c: number): { x: number; y: number; w: number; h: number } {
  return { x: g.left + c * (g.cellW + (g.gapX ?? 0)), y: g.top + r * (g.cellH + (g.gapY ?? 0)), w: g.cellW, h: g.cellH };
}

export function cellCenter(g: GridLayout, r: number, c: number): [number, number] {
  const b = cellRect(g, r, c);
  return [b.x + b.w / 2, b.y + b.h / 2];
}

/** Width and height from (0, 0) to the far edge of the last cell. */
export function gridSize(g: GridLayout): [number, number] {
  return [g.left + g.cols * g.cellW + Math.max(0, g.cols - 1) * (g.gapX ?? 0),
          g.top + g.rows * g.cellH + Math.max(0, g.rows - 1) * (g.gapY ?? 0)];
}

/** A rows x cols grid of square thumbnails of side `thumb`, `gap` apart (the attention view's layer x head grid). */
export function thumbGrid(rows: number, cols: number, thumb: number, gap: number, left: number, top: number): GridLayout {
  return { left, top, rows, cols, cellW: thumb, cellH: thumb, gapX: gap, gapY: gap };
}

// ---- scatter ----

/** Data extent of the finite points; a zero-width axis is widened to +-1 so every point maps inside. */
export function extent(xs: ArrayLike<number>, ys: ArrayLike<number>): Rect {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    const x = xs[i], y = ys[i];
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x);
    y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  if (x0 > x1) { x0 = 0; x1 = 0; y0 = 0; y1 = 0; } // no finite point
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  return { x0, y0, x1, y1 };
}

/** A plot area of width x height px with `pad` px inside each border; y grows upwards in data space. */
export interface Viewport { width: number; height: number; pad: number }

export function toPixel(b: Rect, v: Viewport, x: number, y: number): [number, number] {
  return [v.pad + ((x - b.x0) / (b.x1 - b.x0)) * (v.width - 2 * v.pad),
          v.height - v.pad - ((y - b.y0) / (b.y1 - b.y0)) * (v.height - 2 * v.pad)];
}

/** The rectangle spanned by two corners, in any order. */
export function normRect(ax: number, ay: number, bx: number, by: number): Rect {
  return { x0: Math.min(ax, bx), y0: Math.min(ay, by), x1: Math.max(ax, bx), y1: Math.max(ay, by) };
}

/** Indices (ascending) of the points drawn inside the pixel rectangle r, borders included. */
export function pointsInRect(b: Rect, v: Viewport, xs: ArrayLike<number>, ys: ArrayLike<number>, r: Rect): number[] {
  const out: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    const [x, y] = toPixel(b, v, xs[i], ys[i]);
    if (x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1) out.push(i);
  }
  return out;
}

/** Index of the point drawn nearest to pixel (x, y) within `radius` px, or -1; on a tie the one drawn
 * last (on top). */
export function nearestPoint(b: Rect, v: Viewport, xs: ArrayLike<number>, ys: ArrayLike<number>, x: number, y: number, radius = 6): number {
  let best = -1, bd = radius * radius;
  for (let i = 0; i < xs.length; i++) {
    const [px, py] = toPixel(b, v, xs[i], ys[i]);
    const d = (px - x) ** 2 + (py - y) ** 2;
    if (d <= bd) { bd = d; best = i; }
  }
  return best;
}

/** Whether a drag from (ax, ay) to (bx, by) is a click (moved less than `slop` px on both axes). */
export function isClick(ax: number, ay: number, bx: number, by: number, slop = 3): boolean {
  return Math.abs(bx - ax) < slop && Math.abs(by - ay) < slop;
}

// ---- zoomable heatmaps: a view window over a rows x cols matrix ----

/** The visible part of a matrix, in matrix units (x: columns, y: rows; x1, y1 exclusive, fractional). */
export interface ViewWindow { x0: number; y0: number; x1: number; y1: number }

export function fullWindow(rows: number, cols: number): ViewWindow {
  return { x0: 0, y0: 0, x1: cols, y1: rows };
}

/** How many times the window is magnified (1: the whole matrix). */
export function zoomOf(w: ViewWindow, cols: number): number {
  return cols / Math.max(w.x1 - w.x0, 1e-12);
}

function clampSpan(lo: number, span: number, n: number): [number, number] {
  const s = Math.min(span, n);
  const a = Math.min(Math.max(lo, 0), n - s);
  return [a, a + s];
}

/** w moved inside the matrix (same size, or the whole matrix where it is larger). */
export function clampWindow(w: ViewWindow, rows: number, cols: number): ViewWindow {
  const [x0, x1] = clampSpan(w.x0, w.x1 - w.x0, cols);
  const [y0, y1] = clampSpan(w.y0, w.y1 - w.y0, rows);
  return { x0, y0, x1, y1 };
}

/** Zoom by `factor` (> 1: in) about the matrix point (ux, uy), which stays where it is on screen
 * unless the window has to move back inside the matrix; magnification within [1, maxZoom]. */
export function zoomWindow(w: ViewWindow, rows: number, cols: number, ux: number, uy: number, factor: number, maxZoom: number): ViewWindow {
  const z = Math.min(Math.max(zoomOf(w, cols) * factor, 1), Math.max(1, maxZoom));
  const sx = cols / z, sy = rows / z;
  const fx = (ux - w.x0) / (w.x1 - w.x0), fy = (uy - w.y0) / (w.y1 - w.y0);
  const x0 = ux - fx * sx, y0 = uy - fy * sy;
  return clampWindow({ x0, y0, x1: x0 + sx, y1: y0 + sy }, rows, cols);
}

/** The window moved by (dx, dy) matrix units, kept inside the matrix. */
export function panWindow(w: ViewWindow, rows: number, cols: number, dx: number, dy: number): ViewWindow {
  return clampWindow({ x0: w.x0 + dx, y0: w.y0 + dy, x1: w.x1 + dx, y1: w.y1 + dy }, rows, cols);
}

/** Smallest "nice" step (1, 2, 5, 10, 20, 50, ...) of at least x. */
export function niceStep(x: number): number {
  if (!(x > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/** Every how many rows (columns) a label is drawn so that labels are at least minPitch px apart. */
export function labelStep(cell: number, minPitch = 9): number {
  return cell > 0 ? niceStep(minPitch / cell) : Infinity;
}

/** Indices k*step (k integer) in [lo, hi). */
export function labelIndices(lo: number, hi: number, step: number): number[] {
  const out: number[] = [];
  if (!Number.isFinite(step) || step < 1) return out;
  for (let i = Math.ceil(Math.max(lo, 0) / step) * step; i < hi; i += step) out.push(i);
  return out;
}

// ---- overviews: a long matrix sent as blocks of step x step (each cell: the block's largest value) ----

/** Overview cell holding matrix row (or column) i. */
export function blockOf(i: number, step: number): number {
  return Math.floor(i / Math.max(1, step));
}

/** Rows (columns) [start, end) that overview cell b covers in a matrix of n rows. */
export function blockRange(b: number, step: number, n: number): [number, number] {
  const s = Math.max(1, step);
  return [Math.min(b * s, n), Math.min((b + 1) * s, n)];
}

/** An exact window of a matrix, in whole rows and columns. */
export interface TileWindow { r0: number; c0: number; rows: number; cols: number }

/** Whole rows and columns covering view window w, grown by `margin` (a fraction of its size, each
 * side) while it stays within `max` rows and columns; null when w itself needs more than `max`. */
export function tileWindow(w: ViewWindow, rows: number, cols: number, max = 256, margin = 0.25): TileWindow | null {
  const axis = (a: number, b: number, n: number): [number, number] | null => {
    let lo = Math.max(0, Math.floor(a + 1e-9)), hi = Math.min(n, Math.ceil(b - 1e-9));
    if (hi - lo > max) return null;
    const grow = Math.min(Math.ceil((hi - lo) * margin), Math.floor((max - (hi - lo)) / 2));
    lo = Math.max(0, lo - grow);
    hi = Math.min(n, hi + grow);
    return [lo, hi];
  };
  const r = axis(w.y0, w.y1, rows), c = axis(w.x0, w.x1, cols);
  return r && c ? { r0: r[0], c0: c[0], rows: r[1] - r[0], cols: c[1] - c[0] } : null;
}

/** Whether tile a holds every cell of window w (whole rows and columns). */
export function tileCovers(a: TileWindow, w: ViewWindow): boolean {
  return a.r0 <= Math.floor(w.y0 + 1e-9) && a.c0 <= Math.floor(w.x0 + 1e-9) &&
    a.r0 + a.rows >= Math.ceil(w.y1 - 1e-9) && a.c0 + a.cols >= Math.ceil(w.x1 - 1e-9);
}
