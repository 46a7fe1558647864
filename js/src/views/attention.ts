// AttentionView: layer x head grid of thumbnails (model view), the selected head / layer mean /
// rollout as a large heatmap (head view), a token strip showing where the hovered or selected token
// attends, and a sortable table of per-head statistics computed in Python.
import { decode, slice2d, NDArray, Packed } from "../lib/buffers";
import { pixels, seq } from "../lib/colors";
import { h, localPoint, savePNG } from "../lib/dom";
import { fmt } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { cellCenter, cellRect, gridSize, hitCell, thumbGrid } from "../lib/geometry";
import { Heatmap } from "../lib/heatmap";
import { Cell, SortableTable } from "../lib/table";
import { TokenStrip } from "../lib/tokens";
import { at, max, row as rowOf } from "../lib/ndarray";

interface Exported { heads?: Packed; mean?: Packed; rollout?: Packed }

function render({ model, el }: { model: Model; el: HTMLElement }) {
  const f = frame(model, el, "attention");
  const labels: string[] = model.get("tokens");
  const L: number = model.get("n_layers");
  const H: number = model.get("n_heads");
  const T = labels.length;
  const statNames: string[] = model.get("stat_names");
  const statHelp: Record<string, string> = model.get("stat_help");
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

  // grid of thumbnails on one canvas
  const grid = decode(model.get("grid") as Packed)!;
  const S = grid.shape[2];
  const stats = decode(model.get("stats") as Packed)!;
  const thumb = Math.max(18, Math.min(64, Math.floor(600 / H) - 4));
  const gap = 4, gl = 26, gt = 16;
  const layout = thumbGrid(L, H, thumb, gap, gl, gt); // rows: layers, columns: heads
  const gridCanvas = h("canvas", { class: "lw-canvas", "data-testid": "grid" }) as HTMLCanvasElement;
  Object.assign(gridCanvas.dataset, { thumb: String(thumb), gap: String(gap), left: String(gl), top: String(gt), layers: String(L), heads: String(H) });
  const [gw, gh] = gridSize(layout);
  const dpr = window.devicePixelRatio || 1;
  gridCanvas.width = gw * dpr; gridCanvas.height = gh * dpr;
  gridCanvas.style.width = `${gw}px`; gridCanvas.style.height = `${gh}px`;
  const tiles: HTMLCanvasElement[] = [];
  for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) {
    const m = slice2d(grid, l, hd);
    const c = document.createElement("canvas");
    c.width = S; c.height = S;
    const ctx = c.getContext("2d");
    if (ctx) {
      const img = ctx.createImageData(S, S);
      const vmax = max(m.values);
      img.data.set(pixels(m.values, (v) => seq(v, vmax)));
      ctx.putImageData(img, 0, 0);
    }
    tiles.push(c);
  }
  const statIndex = () => statNames.indexOf(statSel.value);
  const drawGrid = () => {
    const ctx = gridCanvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, gw, gh);
    ctx.imageSmoothingEnabled = false;
    ctx.font = "10px system-ui,sans-serif";
    ctx.fillStyle = "#555";
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (let hd = 0; hd < H; hd++) ctx.fillText(`H${hd}`, cellCenter(layout, 0, hd)[0], gt / 2);
    ctx.textAlign = "left";
    for (let l = 0; l < L; l++) ctx.fillText(`L${l}`, 2, cellCenter(layout, l, 0)[1]);
    const si = statIndex();
    let smin = Infinity, smax = -Infinity;
    if (si >= 0) for (const v of rowOf(stats, si)) { smin = Math.min(smin, v); smax = Math.max(smax, v); }
    const mode = model.get("mode"), sl = model.get("selected_layer"), sh = model.get("selected_head");
    for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) {
      const { x, y } = cellRect(layout, l, hd);
      ctx.drawImage(tiles[l * H + hd], x, y, thumb, thumb);
      if (si >= 0) {
        const v = at(stats, si, l, hd);
        const a = smax > smin ? (v - smin) / (smax - smin) : 0;
        ctx.fillStyle = `rgba(214,39,40,${0.15 + 0.6 * a})`;
        ctx.fillRect(x, y + thumb - 12, thumb, 12);
        ctx.fillStyle = "#fff"; ctx.textAlign = "center";
        ctx.fillText(fmt(v, 2), x + thumb / 2, y + thumb - 6);
      }
      const sel = l === sl && (mode !== "head" || hd === sh);
      ctx.strokeStyle = sel ? "#d62728" : "#ddd";
      ctx.lineWidth = sel ? 2 : 1;
      ctx.strokeRect(x - 1, y - 1, thumb + 2, thumb + 2);
    }
  };
  gridCanvas.addEventListener("click", (e) => {
    const [l, hd] = hitCell(layout, ...localPoint(e, gridCanvas));
    if (l >= 0) f.commit({ selected_layer: l, selected_head: hd });
  });

  // large heatmap + token strip
  const heat = new Heatmap("heatmap");
  const hint = h("div", { class: "lw-muted", text: "Rows: attending token (query). Columns: attended token (key). Hover a cell or token; click to select." });
  const strip = new TokenStrip(labels, {
    onHover: (i) => showRow(i),
    onClick: (i) => f.commit({ selected_token: i }),
  });
  const right = h("div", { "data-testid": "head-view" }, heat.el, strip.el, hint);
  f.body.append(h("div", { class: "lw-row" }, gridCanvas, right));

  let current: NDArray | null = null;
  const showRow = (i: number | null) => {
    const sel: number = model.get("selected_token") ?? -1;  // null: nothing selected
    const row = i ?? (sel >= 0 ? sel : null);
    heat.highlight(i, i, sel);
    strip.setWeights(current && row !== null ? rowOf(current, row) : null);
  };
  heat.canvas.addEventListener("mouseleave", () => showRow(null));

  const drawMatrix = () => {
    const mode: string = model.get("mode");
    const l: number = model.get("selected_layer"), hd: number = model.get("selected_head");
    let m: NDArray | null = null;
    if (f.exported) {
      const src = exported(mode === "head" ? "heads" : (mode as keyof Exported));
      if (src) m = mode === "head" ? slice2d(src, l, hd) : slice2d(src, l);
    }
    const packed = model.get("matrix") as Packed & { mode?: string; layer?: number; head?: number };
    if (!m && packed && packed.mode === mode && packed.layer === l && (mode !== "head" || packed.head === hd)) m = decode(packed);
    if (!m) {
      info.textContent = f.exported ? "This head is not stored in the export at full resolution (input too long)." : "loading\u2026";
      return;
    }
    current = m;
    const what = mode === "head" ? `layer ${l}, head ${hd}` : mode === "mean" ? `layer ${l}, mean over ${H} heads` : `rollout through layer ${l}`;
    info.textContent = `${what} \u00b7 ${T} tokens`;
    heat.draw(m, {
      rowLabels: labels, colLabels: labels, scale: "seq",
      onClick: (r) => f.commit({ selected_token: r }),
      describe: (r, c, v) => `${labels[r]} \u2192 ${labels[c]}: ${fmt(v, 4)}`,
      onHover: (r) => showRow(r),
    });
    Object.assign(right.dataset, { mode, layer: String(l), head: String(hd) });
    showRow(null);
    f.root.dataset.ready = "1";
  };

  // statistics table
  const rows: Record<string, number | string>[] = [];
  for (let l = 0; l < L; l++) for (let hd = 0; hd < H; hd++) {
    const row: Record<string, number | string> = { layer: l, head: hd };
    statNames.forEach((s, si) => (row[s] = at(stats, si, l, hd)));
    rows.push(row);
  }
  const table = new SortableTable(
    [{ key: "layer", label: "layer" }, { key: "head", label: "head" },
     ...statNames.map((s) => ({ key: s, label: s, help: statHelp[s], format: (v: Cell) => fmt(v) }))],
    rows, (r) => `${r.layer}-${r.head}`, (r) => f.commit({ selected_layer: r.layer, selected_head: r.head, mode: "head" }), "stats");
  table.sortBy("layer", false);
  f.body.append(h("details", { open: true }, h("summary", { text: "Head statistics (click a header to sort, a row to select)" }), table.el));

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
  f.watch(["selected_token"], () => { strip.select(model.get("selected_token") ?? -1); showRow(null); });
  strip.select(model.get("selected_token") ?? -1);
  syncSelection();
  expose(el, { heat, strip, table });
  return () => f.cleanup();
}

export default { render };
