// LogitLensView: layers (rows, embeddings first) x positions (columns); each cell shows the top
// next-token guess read from that layer's residual stream, coloured by its probability (or by the
// probability of the actual next token). Click a cell for the top-k list. With lens="tuned", the
// logit lens and the tuned lens side by side (one selection for both), and a chart of each row's
// KL divergence to the model's final distribution.
import { decode, NDArray, Packed } from "../lib/buffers";
import { h } from "../lib/dom";
import { fmt, prob, quoted } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { cellWidthFor, Heatmap } from "../lib/heatmap";
import { LineChart } from "../lib/linechart";
import { at, slice } from "../lib/ndarray";
import { fromSelection, hiddenRow, LayerSelection, layerOfRow } from "../lib/selection";
import type { LogitLensViewState } from "../generated/state";

interface Lens { name: string; labels: string[]; idx: NDArray; pr: NDArray; nxt: NDArray; heat: Heatmap }

const COLOURS = ["#1f77b4", "#ff7f0e"];
/** Characters of a top token a cell shows whole (a longer one ends in an ellipsis). */
export const CELL_CHARS = 12;

function render({ model, el }: { model: Model<LogitLensViewState>; el: HTMLElement }) {
  const f = frame(model, el, "logit_lens");
  const tokens: string[] = model.get("tokens");
  const rows: string[] = model.get("layer_names");
  const tuned = model.get("lens") === "tuned";
  const colourSel = h("select", { class: "lw-select", "data-testid": "colour" },
    h("option", { value: "top", text: "colour: top-token probability" }),
    h("option", { value: "next", text: "colour: probability of the actual next token" }));
  f.toolbar.append(colourSel);
  const detail = h("div", { "data-testid": "detail", style: "min-width:220px" });
  const row = h("div", { class: "lw-row" });
  const chartBox = h("div", { "data-testid": "kl-chart" });
  f.body.append(row, chartBox,
    h("div", { class: "lw-muted", text: "Rows: residual stream after each layer (read through the final norm and unembedding" +
      (tuned ? "; the tuned lens first applies its learned affine translator for that layer" : "") +
      "). Columns: input positions; each cell predicts the token after its column." }));
  const lens = (name: string, prefix: "" | "tuned_", testid: string): Lens | null => {
    const idx = decode(model.get(`${prefix}top_index`) as Packed);
    if (!idx) return null;
    return { name, labels: model.get(`${prefix}top_tokens`), idx, pr: decode(model.get(`${prefix}top_probs`) as Packed)!,
      nxt: decode(model.get(`${prefix}next_prob`) as Packed)!, heat: new Heatmap(testid) };
  };
  let names: string[] = [], lenses: Lens[] = [], kl: NDArray | null = null, chart: LineChart | null = null;
  let R = 0, T = 0, K = 0;

  // (re)build the panels: the tuned lens arrives later when it is trained in the background
  const build = () => {
    names = tuned ? model.get("lens_names") : ["logit lens"];
    const tunedLens = tuned ? lens(names[1], "tuned_", "heatmap-tuned") : null;
    lenses = [lens(names[0], "", "heatmap")!, ...(tunedLens ? [tunedLens] : [])];
    [R, T, K] = lenses[0].idx.shape;
    const panels = lenses.map((l) => (tuned ? h("div", {}, h("div", { class: "lw-title", text: l.name }), l.heat.el) : l.heat.el));
    const waiting = tuned && !tunedLens ? [h("div", { class: "lw-muted", "data-testid": "tuned-pending", text: `${names[1]}: being trained\u2026` })] : [];
    row.replaceChildren(...panels, ...waiting, detail);
    kl = tunedLens ? decode(model.get("kl") as Packed) : null;
    chart = null;
    chartBox.replaceChildren();
    if (kl) {
      const k = kl;
      const rowName = (r: number) => (r === 0 ? "emb" : String(r - 1));
      const series = names.map((name, j) => ({ name, values: slice(k, j).values, color: COLOURS[j % COLOURS.length] }));
      chart = new LineChart(R, series, {
        width: 420, height: 220, yMin: 0, yLabel: "KL to final (nats)", testid: "kl",
        xTick: rowName, onClick: (r) => f.commit({ selected_layer: layerOfRow(r) }),
        describe: (r) => `${rows[r]}: ` + names.map((n, j) => `${n} ${fmt(at(k, j, r))}`).join(", ") + " nats",
      });
      chartBox.replaceChildren(h("div", { class: "lw-title", text: "KL divergence to the final distribution, mean over positions" }), chart.el);
    }
    draw();
    expose(el, { heat: lenses[0].heat, heats: lenses.map((l) => l.heat), chart });
  };

  const topLabel = (l: Lens, r: number, c: number) => l.labels[at(l.idx, r, c, 0)];
  const draw = () => {
    const colour: string = model.get("colour");
    colourSel.value = colour;
    for (const l of lenses) {
      // cells as wide as the longest top token, up to CELL_CHARS characters (longer ones end in an
      // ellipsis; the tooltip has them whole); wider than the output area: the view scrolls, with a cue
      let longest = 1;
      for (let i = 0; i < R * T; i++) longest = Math.max(longest, (l.labels[l.idx.values[i * K]] ?? "").length);
      const values = new Float32Array(R * T);
      for (let i = 0; i < R * T; i++) values[i] = colour === "next" ? l.nxt.values[i] : l.pr.values[i * K];
      l.heat.draw({ shape: [R, T], values }, {
        rowLabels: rows, colLabels: tokens, scale: "seq", vmax: 1, maxSize: tuned ? 480 : 720, minCell: 18,
        cellWidth: cellWidthFor(Math.min(CELL_CHARS, longest)),
        label: colour === "next" ? "probability of the actual next token" : "probability of the top token",
        cellText: (r, c) => topLabel(l, r, c),
        onClick: (r, c) => f.commit({ selected_layer: layerOfRow(r), selected_token: c }), // row 0: the embeddings
        describe: (r, c) => `${l.name}, ${rows[r]}, after "${tokens[c]}": top ${quoted(topLabel(l, r, c))} ${prob(at(l.pr, r, c, 0))}` +
          (c + 1 < T ? `; actual next ${quoted(tokens[c + 1])} ${prob(at(l.nxt, r, c))}` : ""),
      });
    }
    showDetail();
    f.root.dataset.ready = "1";
  };
  const showDetail = () => {
    const layer: LayerSelection = model.get("selected_layer"), tok: number | null = model.get("selected_token");
    const r = hiddenRow(layer), c = fromSelection(tok); // row 0: the embeddings
    for (const l of lenses) l.heat.highlight(r >= 0 ? r : null, c >= 0 ? c : null, null);
    if (r >= 0) chart?.select(r);
    Object.assign(detail.dataset, { layer: String(layer), token: String(tok) });
    if (r < 0 || c < 0) { detail.replaceChildren(h("div", { class: "lw-muted", text: "Click a cell for its top tokens." })); return; }
    const parts = lenses.map((l) => {
      const top = slice(l.idx, r, c).values, probs = slice(l.pr, r, c).values;
      const items = Array.from(top, (t, j) => h("li", { text: `${quoted(l.labels[t])} ${prob(probs[j])}` }));
      return h("div", { "data-lens": l.name }, ...(tuned ? [h("div", { class: "lw-muted", text: l.name })] : []),
        h("ol", { style: "margin:2px 0 0 18px;padding:0" }, ...items),
        c + 1 < T ? h("div", { text: `actual next token ${quoted(tokens[c + 1])}: ${prob(at(l.nxt, r, c))}` }) : "");
    });
    const k = kl;
    detail.replaceChildren(h("div", { class: "lw-title", text: `${rows[r]}, after "${tokens[c]}"` }), ...parts,
      k ? h("div", { class: "lw-muted", text: `KL to final (mean over positions): ${names.map((n, j) => `${n} ${fmt(at(k, j, r))}`).join(", ")}` }) : "");
  };
  colourSel.addEventListener("change", () => f.commit({ colour: colourSel.value }));
  f.watch(["colour"], draw);
  f.watch(["selected_layer", "selected_token"], showDetail);
  f.watch(["tuned_top_index", "kl", "lens_names"], build);
  build();
  return () => f.cleanup();
}

export default { render };
