// LogitLensView: layers (rows, embeddings first) x positions (columns); each cell shows the top
// next-token guess read from that layer's residual stream, coloured by its probability (or by the
// probability of the actual next token). Click a cell for the top-k list.
import { decode, Packed } from "../lib/buffers";
import { h } from "../lib/dom";
import { prob, quoted } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { Heatmap } from "../lib/heatmap";
import { at, slice } from "../lib/ndarray";
import { fromSelection, hiddenRow, LayerSelection, layerOfRow } from "../lib/selection";

function render({ model, el }: { model: Model; el: HTMLElement }) {
  const f = frame(model, el, "logit_lens");
  const tokens: string[] = model.get("tokens");
  const rows: string[] = model.get("layer_names");
  const labels: string[] = model.get("top_tokens");
  const idx = decode(model.get("top_index") as Packed)!;
  const pr = decode(model.get("top_probs") as Packed)!;
  const nxt = decode(model.get("next_prob") as Packed)!;
  const R = idx.shape[0], T = idx.shape[1], K = idx.shape[2];
  const colourSel = h("select", { class: "lw-select", "data-testid": "colour" },
    h("option", { value: "top", text: "colour: top-token probability" }),
    h("option", { value: "next", text: "colour: probability of the actual next token" }));
  f.toolbar.append(colourSel);
  const heat = new Heatmap("heatmap");
  const detail = h("div", { "data-testid": "detail", style: "min-width:220px" });
  f.body.append(h("div", { class: "lw-row" }, heat.el, detail),
    h("div", { class: "lw-muted", text: "Rows: residual stream after each layer (read through the final norm and unembedding). Columns: input positions; each cell predicts the token after its column." }));

  const topLabel = (r: number, c: number) => labels[at(idx, r, c, 0)];
  const draw = () => {
    const colour: string = model.get("colour");
    colourSel.value = colour;
    const values = new Float32Array(R * T);
    for (let i = 0; i < R * T; i++) values[i] = colour === "next" ? nxt.values[i] : pr.values[i * K];
    heat.draw({ shape: [R, T], values }, {
      rowLabels: rows, colLabels: tokens, scale: "seq", vmax: 1, maxSize: 720, minCell: 18,
      label: colour === "next" ? "probability of the actual next token" : "probability of the top token",
      cellText: (r, c) => topLabel(r, c),
      onClick: (r, c) => f.commit({ selected_layer: layerOfRow(r), selected_token: c }), // row 0: the embeddings
      describe: (r, c) => `${rows[r]}, after "${tokens[c]}": top ${quoted(topLabel(r, c))} ${prob(at(pr, r, c, 0))}` +
        (c + 1 < T ? `; actual next ${quoted(tokens[c + 1])} ${prob(at(nxt, r, c))}` : ""),
    });
    showDetail();
    f.root.dataset.ready = "1";
  };
  const showDetail = () => {
    const layer: LayerSelection = model.get("selected_layer"), tok: number | null = model.get("selected_token");
    const r = hiddenRow(layer), c = fromSelection(tok); // row 0: the embeddings
    heat.highlight(r >= 0 ? r : null, c >= 0 ? c : null, null);
    Object.assign(detail.dataset, { layer: String(layer), token: String(tok) });
    if (r < 0 || c < 0) { detail.replaceChildren(h("div", { class: "lw-muted", text: "Click a cell for its top tokens." })); return; }
    const top = slice(idx, r, c).values, probs = slice(pr, r, c).values;
    const items = Array.from(top, (t, j) => h("li", { text: `${quoted(labels[t])} ${prob(probs[j])}` }));
    detail.replaceChildren(h("div", { class: "lw-title", text: `${rows[r]}, after "${tokens[c]}"` }), h("ol", { style: "margin:2px 0 0 18px;padding:0" }, ...items),
      c + 1 < T ? h("div", { text: `actual next token ${quoted(tokens[c + 1])}: ${prob(at(nxt, r, c))}` }) : "");
  };
  colourSel.addEventListener("change", () => f.commit({ colour: colourSel.value }));
  f.watch(["colour"], draw);
  f.watch(["selected_layer", "selected_token"], showDetail);
  draw();
  expose(el, { heat });
  return () => f.cleanup();
}

export default { render };
