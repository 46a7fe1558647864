// AttentionView: layer x head grid of thumbnails (model view), the selected head / layer mean /
// rollout as a large zoomable heatmap (head view), a token strip showing where the hovered or
// selected token attends (on the heatmap's colour scale), and a sortable table of per-head statistics.
//
// Long inputs: `matrix` is an overview (each cell the largest weight of a step x step block of
// tokens); zooming in to at most TILE_MAX x TILE_MAX tokens asks Python for the exact weights of the
// window (`tile_request` -> `tile`). The thumbnails (`grid`) and statistics (`stats`) may arrive
// after the first frame ({} until then).
import { decode, slice2d, NDArray, Packed } from "../lib/buffers";
import { ColorBar } from "../lib/colorbar";
import { css, divergingScale, ink, pixels, sequentialScale } from "../lib/colors";
import { h, localPoint, savePNG, scrollCue, themeInk, THEME_EVENT, watchWidth, whenShown } from "../lib/dom";
import { fmt } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { blockOf, blockRange, cellCenter, cellRect, gridSize, hitCell, thumbGrid, tileCovers, TileWindow, tileWindow } from "../lib/geometry";
import { hatch, Heatmap, labelRoom, NOT_AVAILABLE } from "../lib/heatmap";
import { at, max, row as rowOf } from "../lib/ndarray";
import { fromSelection } from "../lib/selection";
import { Cell, Row, SortableTable } from "../lib/table";
import { MAX_SPANS, showRoles, TokenStrip } from "../lib/tokens";
import type { AttentionViewState } from "../generated/state";

/** The arrays a static export ships (AttentionView._export_record). */
type Exported = Pick<NonNullable<AttentionViewState["_export"]>, "heads" | "mean" | "rollout">;
/** Keys Python sends with `matrix` (step, n: long inputs; absent: the exact matrix). */
interface MatrixKeys { mode?: string; layer?: number; head?: number; step?: number; n?: number }
export interface TileRequest extends TileWindow { mode: string; layer: number; head: number }

export const TILE_MAX = 256; // the largest exact window (rows and columns) Python answers
export const TILE_DEBOUNCE_MS = 100;

/** The least plot side (CSS px) of a head view beside the grid. */
export const BESIDE_MIN = 420;

/** Plot side (CSS px) of the head view for a view `width` px wide, beside a grid `gridW` px wide when
 * that leaves room enough, else below it (full width). */
export function headViewSize(width: number, gridW: number, room: number): number {
  const beside = width - gridW - 16 - room - 6;
  const plot = beside >= BESIDE_MIN ? beside : width - room - 8;
  return Math.max(200, Math.min(880, Math.floor(plot)));
}

/** Thumbnail side (CSS px) of the layer x head grid: as large as fits `width` px (H columns of
 * thumb + gap after the layer labels), between 18 and 64 px, and no larger than 600 px of heads. */
export function gridThumb(width: number, heads: number, gap = 4, left = 26): number {
  const fit = Math.floor((width - left - 2) / Math.max(1, heads)) - gap;
  return Math.max(18, Math.min(64, Math.floor(600 / Math.max(1, heads)) - gap, fit));
}

/** Why block `layer` has no softmax attention to draw ('' where it has): from `unavailable`
 * (block -> reason, e.g. a linear-attention or state-space mixer in a hybrid stack). */
export function unavailableWhy(unavailable: Record<string, string>, layer: number): string {
  const why = unavailable[String(layer)];
  return why === undefined ? "" : `block ${layer}: ${NOT_AVAILABLE} (no softmax attention: ${why || "no weights"})`;
}

/** A statistic as drawn on a thumbnail `width` px wide: two decimals, else one, in a font of 10 px
 * down to 7 px (about 0.6 em per character); null when even that does not fit (the table and the
 * tooltip still give the number). */
export function statLabel(v: number, width: number): { text: string; font: number } | null {
  for (const digits of [2, 1]) {
    const text = fmt(v, digits);
    for (let font = 10; font >= 7; font--) if (text.length * 0.6 * font <= width) return { text, font };
  }
  return null;
}

function render({ model, el }: { model: Model<AttentionViewState>; el: HTMLElement }) {
  const f = frame(model, el, "attention");
  const labels: string[] = model.get("tokens");
  const L: number = model.get("n_layers");
  const H: number = model.get("n_heads");
  const T: number = model.get("n_tokens") || labels.length;
  const statNames: string[] = model.get("stat_names") || [];
  const statHelp: Record<string, string> = model.get("stat_help") || {};
  const unavailable: Record<string, string> = model.get("unavailable") || {}; // blocks without softmax attention
  const absent = (l: number) => String(l) in unavailable;
  const exp: Exported = model.get("_export") || {};
  const cache: Record<string, NDArray | null> = {};
  const exported = (k: keyof Exported) => (k in cache ? cache[k] : (cache[k] = decode(exp[k])));

  // toolbar
  const modeSel = h("select", { class: "lw-select", "data-testid": "mode" },
    ...["head", "mean", "rollout"].map((m) => h("option", { value: m, text: m === "head" ? "single head" : m === "mean" ? "mean over heads" : "attention rollout" })));
  const statSel = h("select", { class: "lw-select", "data-testid": "grid-stat" },
    h("option", { value: "", text: "grid: attention" }),
    ...statNames.map((s) => h("option", { value: s, text: `grid: ${s}`, title: statHelp[s] })));
  const pngBtn = h("button", { class: "lw-btn", text: "PNG", title: "Save the large heatmap as PNG" });
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  f.toolbar.append(modeSel, statSel, pngBtn, info);

  // grid of thumbnails on one canvas (the thumbnails and statistics may come later)
  // sized to the output area's width (sizeGrid, again whenever the panel narrows or widens)
  const gap = 4, gl = 26, gt = 16;
  let thumb = gridThumb(Infinity, H, gap, gl);
  let layout = thumbGrid(L, H, thumb, gap, gl, gt); // rows: layers, columns: heads
  const gridCanvas = h("canvas", { class: "lw-canvas", "data-testid": "grid" }) as HTMLCanvasElement;
  let [gw, gh] = gridSize(layout);
  const dpr = window.devicePixelRatio || 1;
  const sizeGrid = (width: number) => {
    thumb = gridThumb(width, H, gap, gl);
    layout = thumbGrid(L, H, thumb, gap, gl, gt);
    [gw, gh] = gridSize(layout);
    Object.assign(gridCanvas.dataset, { thumb: String(thumb), gap: String(gap), left: String(gl), top: String(gt), layers: String(L), heads: String(H) });
    gridCanvas.width = gw * dpr; gridCanvas.height = gh * dpr;
    gridCanvas.style.width = `${gw}px`; gridCanvas.style.height = `${gh}px`;
  };
  sizeGrid(Infinity);
  const gridBar = new ColorBar("grid-colorbar");
  const statBar = new ColorBar("stat-colorbar");
  const gridNote = h("div", { class: "lw-muted", "data-testid": "grid-status" });
  let tiles: (HTMLCanvasElement | null)[] = [];
  let grid: NDArray | null = null;
  let stats: NDArray | null = null;
  const loadGrid = () => {
    grid = decode(model.get("grid") as Packed);
    tiles = [];
    if (!grid) {
      gridBar.set(null);
      gridNote.textContent = "computing the thumbnails of every head\u2026";
      return;
    }
    gridNote.textContent = "";
    const S = grid.shape[2];
    const scale = sequentialScale(Math.max(0, max(grid.values)), S < T ? "attention weight (thumbnails: block means)" : "attention weight");
    gridBar.set(scale); // one scale for every thumbnail: heads compare by colour
    for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) {
      const m = slice2d(grid, l, hd);
      const c = document.createElement("canvas");
      c.width = S; c.height = S;
      const ctx = c.getContext("2d");
      if (ctx) {
        const img = ctx.createImageData(S, S);
        img.data.set(pixels(m.values, scale.color));
        ctx.putImageData(img, 0, 0);
      }
      tiles.push(ctx ? c : null);
    }
  };
  const statIndex = () => (stats ? statNames.indexOf(statSel.value) : -1);
  const drawGrid = () => {
    const si = statIndex();
    let smin = Infinity, smax = -Infinity;
    if (si >= 0) for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) { // blocks without attention have no statistics
      const v = at(stats!, si, l, hd);
      if (!absent(l) && Number.isFinite(v)) { smin = Math.min(smin, v); smax = Math.max(smax, v); }
    }
    const statScale = si < 0 || !(smax >= smin) ? null
      : smin < 0 && smax > 0 ? divergingScale(Math.max(-smin, smax), statNames[si])
      : sequentialScale(smax > smin ? smax : smin + 1, statNames[si], smax > smin ? smin : smin - 1);
    statBar.set(statScale);
    const ctx = gridCanvas.getContext("2d");
    if (!ctx) return;
    const theme = themeInk(gridCanvas);
    if (!gridCanvas.isConnected) whenShown(gridCanvas, drawGrid);
    gridCanvas.dataset.ink = theme.muted;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, gw, gh);
    ctx.imageSmoothingEnabled = false;
    ctx.font = "10px system-ui,sans-serif";
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (let hd = 0; hd < H; hd++) ctx.fillText(`H${hd}`, cellCenter(layout, 0, hd)[0], gt / 2);
    ctx.textAlign = "left";
    for (let l = 0; l < L; l++) ctx.fillText(`L${l}`, 2, cellCenter(layout, l, 0)[1]);
    const mode = model.get("mode"), sl = model.get("selected_layer"), sh = model.get("selected_head");
    for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) {
      const { x, y } = cellRect(layout, l, hd);
      const t = tiles[l * H + hd];
      if (absent(l)) { // no softmax attention in this block: hatched, never drawn as weights of 0
        hatch(ctx, x, y, thumb, thumb, theme.muted, theme.bg, 5);
        ctx.strokeStyle = theme.line; ctx.lineWidth = 1;
        ctx.strokeRect(x - 1, y - 1, thumb + 2, thumb + 2);
        continue;
      }
      if (t) ctx.drawImage(t, x, y, thumb, thumb);
      else { ctx.fillStyle = theme.line; ctx.fillRect(x, y, thumb, thumb); }
      if (statScale) {
        const v = at(stats!, si, l, hd);
        const c = statScale.color(v);
        ctx.fillStyle = css(c);
        ctx.fillRect(x, y + thumb - 12, thumb, 12);
        const label = statLabel(v, thumb - 2); // the number in the largest font that fits the thumbnail
        if (label) {
          ctx.font = `${label.font}px system-ui,sans-serif`;
          ctx.fillStyle = ink(c); ctx.textAlign = "center"; // black or white, whichever contrasts more (WCAG)
          ctx.fillText(label.text, x + thumb / 2, y + thumb - 6);
          ctx.font = "10px system-ui,sans-serif";
        }
      }
      const sel = l === sl && (mode !== "head" || hd === sh);
      ctx.strokeStyle = sel ? "#d62728" : theme.line;
      ctx.lineWidth = sel ? 2 : 1;
      ctx.strokeRect(x - 1, y - 1, thumb + 2, thumb + 2);
    }
  };
  gridCanvas.addEventListener(THEME_EVENT, () => { loadGrid(); drawGrid(); }); // thumbnails in the theme's palette
  gridCanvas.addEventListener("click", (e) => {
    const [l, hd] = hitCell(layout, ...localPoint(e, gridCanvas));
    if (l >= 0 && !absent(l)) f.commit({ selected_layer: l, selected_head: hd });
  });
  gridCanvas.addEventListener("mousemove", (e) => { // the tooltip: why a hatched block has nothing to draw
    const [l, hd] = hitCell(layout, ...localPoint(e, gridCanvas));
    gridCanvas.title = l < 0 ? "" : absent(l) ? unavailableWhy(unavailable, l) : `layer ${l}, head ${hd}`;
    gridCanvas.style.cursor = l >= 0 && absent(l) ? "not-allowed" : "";
  });

  // large heatmap + token strip
  const heat = new Heatmap("heatmap");
  const hint = h("div", { class: "lw-muted", text: "Rows: attending token (query). Columns: attended token (key). Hover a cell or token; click to select. Scroll or double-click to zoom, drag to pan." });
  const stripNote = h("div", { class: "lw-muted", "data-testid": "strip-range" });
  const strip = new TokenStrip(labels, {
    onHover: (i) => { stripHover = i; showRow(i, null); },
    onClick: (i) => f.commit({ selected_token: i }),
  });
  showRoles(strip, model); // a chat input: its role segments
  const right = h("div", { "data-testid": "head-view" }, heat.el, stripNote, strip.el, hint);
  // beside the grid exactly when headViewSize sizes the heatmap for beside (its text must not push it below)
  right.style.flex = `1 1 ${BESIDE_MIN + labelRoom(labels) + 10}px`;
  right.style.minWidth = "0";
  // more heads than fit even at the smallest thumbnails: the grid scrolls, and says so
  const gridScroll = h("div", { class: "lw-hscroll", "data-testid": "grid-scroll" }, gridCanvas);
  const gridCue = scrollCue(gridScroll, "heads");
  const gridBox = h("div", { "data-testid": "grid-box", style: "min-width:0;max-width:100%" }, gridScroll, gridCue, gridNote, gridBar.el, h("div", {}, statBar.el));
  f.body.append(h("div", { class: "lw-row" }, gridBox, right));

  let current: NDArray | null = null;
  let drawn: Required<Pick<MatrixKeys, "mode" | "layer" | "head" | "step">> | null = null;
  let stripHover: number | null = null;
  let lastReq: TileRequest | null = null;
  let viewTimer: ReturnType<typeof setTimeout> | undefined;

  /** The strip: the tokens of the visible columns (at most MAX_SPANS, around `row`), coloured by
   * row `row` on the heatmap's scale. */
  const syncStrip = (row: number | null) => {
    if (T > MAX_SPANS) {
      const w = heat.window;
      const c0 = Math.max(0, Math.floor(w.x0)), c1 = Math.min(T, Math.ceil(w.x1));
      if (c1 - c0 <= MAX_SPANS) strip.setRange(c0, c1);
      else {
        const [lo, hi] = strip.range;
        const focus = row ?? fromSelection(model.get("selected_token"));
        if (focus >= 0 ? focus < lo || focus >= hi : lo < c0 || hi > c1) strip.showAround(focus >= 0 ? focus : c0, c0, c1);
      }
      const [lo, hi] = strip.range;
      stripNote.textContent = `tokens ${lo}\u2013${hi - 1} of ${T} (zoom or pan the heatmap for others)`;
    }
    if (!current || !drawn || row === null || row < 0 || row >= T) { strip.paint(null, null); return; }
    if (drawn.step <= 1) { strip.paint(rowOf(current, row), heat.scale); return; }
    const [lo, hi] = strip.range;
    const w = new Float32Array(hi);
    let exact = true;
    for (let c = lo; c < hi; c++) { w[c] = heat.valueAt(row, c); exact = exact && heat.exactAt(row, c); }
    strip.paint(w, heat.scale);
    strip.el.dataset.exact = exact ? "1" : "0";
    if (!exact) stripNote.textContent += " \u00b7 block maxima: zoom in for exact weights";
  };

  const showRow = (r: number | null, c: number | null) => {
    const sel = fromSelection(model.get("selected_token")); // null: nothing selected
    heat.highlight(r, c, sel >= 0 ? sel : null); // crosshair: the hovered cell's row and column
    syncStrip(r ?? (sel >= 0 ? sel : null));
  };
  heat.canvas.addEventListener("mouseleave", () => showRow(null, null));

  // exact tiles of the overview for zoomed-in windows
  const applyTile = () => {
    const p = model.get("tile"); // typed by what Python declares it is of (TILE_OF)
    if (!p || !p.shape || !drawn || !lastReq) return;
    const d = drawn, q = lastReq;
    if (p.mode !== d.mode || p.layer !== d.layer || (d.mode === "head" && p.head !== d.head)) return; // another head
    if (p.mode !== q.mode || p.layer !== q.layer || p.head !== q.head || p.r0 !== q.r0 || p.c0 !== q.c0) return; // not our request
    const m = decode(p);
    if (!m || m.shape[0] < 1 || m.shape[1] < 1 || q.r0 + m.shape[0] > T || q.c0 + m.shape[1] > T) return;
    heat.setTile({ r0: q.r0, c0: q.c0, m });
    heat.canvas.dataset.tile = `${q.r0},${q.c0},${m.shape[0]},${m.shape[1]}`;
    showRow(null, null);
  };
  const requestTile = () => {
    if (f.exported || !drawn || drawn.step <= 1 || drawn.mode === "rollout") return; // rollout: no tiles
    const w = heat.window;
    const win = tileWindow(w, T, T, TILE_MAX);
    if (!win) return;
    const t = heat.tile;
    if (t && tileCovers({ r0: t.r0, c0: t.c0, rows: t.m.shape[0], cols: t.m.shape[1] }, w)) return;
    if (lastReq && tileCovers(lastReq, w)) return; // asked already: the answer is on its way
    lastReq = { mode: drawn.mode, layer: drawn.layer, head: drawn.head, ...win };
    f.commit({ tile_request: lastReq });
  };
  /** The view window moved: after it rests TILE_DEBOUNCE_MS, refresh the strip and ask for a tile. */
  const viewChanged = () => {
    clearTimeout(viewTimer);
    viewTimer = setTimeout(() => {
      const sel = fromSelection(model.get("selected_token"));
      syncStrip(stripHover ?? (sel >= 0 ? sel : null));
      requestTile();
    }, TILE_DEBOUNCE_MS);
  };

  let plotSize = 520;
  const drawMatrix = () => {
    const mode: string = model.get("mode");
    const l: number = model.get("selected_layer"), hd: number = model.get("selected_head");
    let m: NDArray | null = null, step = 1;
    if (f.exported) {
      const src = exported(mode === "head" ? "heads" : (mode as keyof Exported));
      if (src) m = mode === "head" ? slice2d(src, l, hd) : slice2d(src, l);
    }
    const packed = model.get("matrix"); // typed by MATRIX_OF
    if (!m && packed && packed.mode === mode && packed.layer === l && (mode !== "head" || packed.head === hd)) {
      m = decode(packed);
      step = Math.max(1, Math.floor(packed.step ?? 1)); // old matrices without step: exact
    }
    if (!m) {
      info.textContent = f.exported ? "This head is not stored in the export at full resolution (input too long)." : "loading\u2026";
      return;
    }
    const next = { mode, layer: l, head: hd, step };
    if (!drawn || drawn.mode !== mode || drawn.layer !== l || drawn.head !== hd) lastReq = null;
    current = m;
    drawn = next;
    const what = mode === "head" ? `layer ${l}, head ${hd}` : mode === "mean" ? `layer ${l}, mean over ${H} heads` : `rollout through layer ${l}`;
    info.textContent = `${what} \u00b7 ${T} tokens` + (step > 1 ? ` \u00b7 overview: each cell the largest weight of ${step}\u00d7${step} tokens; zoom in for exact weights` : "");
    const block = (i: number) => blockRange(blockOf(i, step), step, T);
    heat.draw(m, {
      rowLabels: labels, colLabels: labels, scale: "seq", label: "attention weight", step, extent: [T, T], maxSize: plotSize,
      onClick: (r) => f.commit({ selected_token: r }),
      describe: (r, c, v, exact) => {
        if (exact) return `${labels[r]} [${r}] \u2192 ${labels[c]} [${c}]: ${fmt(v, 4)}`;
        const [a0, a1] = block(r), [b0, b1] = block(c);
        return `${labels[r]} [${r}] \u2192 ${labels[c]} [${c}]\nblock: queries ${a0}\u2013${a1 - 1} \u2192 keys ${b0}\u2013${b1 - 1}, largest weight ${fmt(v, 4)}\n(zoom in for exact weights)`;
      },
      onHover: (r, c) => showRow(r, c),
      onView: viewChanged,
    });
    delete heat.canvas.dataset.tile;
    Object.assign(right.dataset, { mode, layer: String(l), head: String(hd), step: String(step) });
    applyTile();
    showRow(null, null);
    if (step > 1) viewChanged();
    f.root.dataset.ready = "1";
  };

  // statistics table
  const statRows = (): Row[] => {
    const rows: Row[] = [];
    if (!stats) return rows;
    for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) {
      if (absent(l)) continue; // no softmax attention: no statistics (the grid says why)
      const row: Row = { layer: l, head: hd };
      statNames.forEach((s, si) => (row[s] = at(stats!, si, l, hd)));
      rows.push(row);
    }
    return rows;
  };
  const table = new SortableTable(
    [{ key: "layer", label: "layer" }, { key: "head", label: "head" },
     ...statNames.map((s) => ({ key: s, label: s, help: statHelp[s], format: (v: Cell) => fmt(v) }))],
    [], (r) => `${r.layer}-${r.head}`, (r) => f.commit({ selected_layer: r.layer, selected_head: r.head, mode: "head" }), "stats");
  table.sortBy("layer", false);
  const statsNote = h("div", { class: "lw-muted", "data-testid": "stats-status" });
  f.body.append(h("details", { open: true }, h("summary", { text: "Head statistics (click a header to sort, a row to select)" }), statsNote, table.el));
  const loadStats = () => {
    stats = decode(model.get("stats") as Packed);
    statsNote.textContent = stats ? "" : "computing the statistics of every head\u2026";
    table.setRows(statRows());
  };

  const syncSelection = () => {
    modeSel.value = model.get("mode");
    table.select(`${model.get("selected_layer")}-${model.get("selected_head")}`);
    drawGrid();
    drawMatrix();
  };
  modeSel.addEventListener("change", () => f.commit({ mode: modeSel.value }));
  statSel.addEventListener("change", () => { drawGrid(); if (statSel.value) table.sortBy(statSel.value, true); });
  pngBtn.addEventListener("click", () => savePNG(heat.canvas, `attention-${model.get("mode")}-L${model.get("selected_layer")}H${model.get("selected_head")}.png`));
  f.watch(["mode", "selected_layer", "selected_head", "matrix"], syncSelection);
  f.watch(["tile"], applyTile);
  f.watch(["grid"], () => { loadGrid(); drawGrid(); });
  f.watch(["stats"], () => { loadStats(); drawGrid(); });
  f.watch(["selected_token"], () => { strip.select(fromSelection(model.get("selected_token"))); showRow(null, null); });
  strip.select(fromSelection(model.get("selected_token")));
  // the head view takes the width the output area has (beside the grid, or below it)
  const room = labelRoom(labels);
  const stopWatch = watchWidth(f.root, (w) => {
    if (gridThumb(w, H, gap, gl) !== thumb) { sizeGrid(w); drawGrid(); }
    const size = headViewSize(w, gw, room);
    if (size === plotSize) return;
    plotSize = size;
    if (drawn) drawMatrix();
  });
  loadGrid();
  loadStats();
  syncSelection();
  expose(el, { heat, strip, table });
  return () => { clearTimeout(viewTimer); stopWatch(); f.cleanup(); };
}

export default { render };
