// ConceptView: PCA scatter of activations at one layer, coloured by k-means cluster or label; drag a
// rectangle to select points (-> selected_indices) and read them in their contexts; the layer slider
// switches to that layer's projection (all layers travel with the view, so exports keep working).
import { decode, slice2d, NDArray, Packed } from "../lib/buffers";
import { h } from "../lib/dom";
import { pct } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { Scatter, category } from "../lib/scatter";
import { TokenStrip } from "../lib/tokens";
import { EMBEDDINGS, hiddenRow, LayerSelection, layerOfRow } from "../lib/selection";
import type { ConceptViewState } from "../generated/state";

const MAX_SHOWN = 60;

function render({ model, el }: { model: Model<ConceptViewState>; el: HTMLElement }) {
  const f = frame(model, el, "concepts");
  // the slider's positions are rows of the arrays: 0 = the embeddings, i + 1 = block i
  const slider = h("input", { type: "range", min: 0, max: model.get("n_layers"), step: 1, "data-testid": "layer" }) as HTMLInputElement;
  const layerLabel = h("span", { "data-testid": "layer-label" });
  const colorSel = h("select", { class: "lw-select", "data-testid": "color-by" },
    h("option", { value: "cluster", text: "colour: k-means cluster" }), h("option", { value: "label", text: "colour: label" }));
  const clear = h("button", { class: "lw-btn", text: "clear selection", "data-testid": "clear" });
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  f.toolbar.append(h("label", {}, "layer ", slider), layerLabel, colorSel, clear, info);
  const legend = h("div", { class: "lw-muted", "data-testid": "legend", style: "max-width:220px" });
  // the brushed points in their contexts: a list of its own height, scrolled inside (many points
  // must not push the page down)
  const selCount = h("div", { class: "lw-title", "data-testid": "selection-count" });
  const selList = h("div", { class: "lw-list", "data-testid": "selection-list" });
  const selBox = h("div", { "data-testid": "selection", style: "width:min(560px,100%);min-width:0" }, selCount, selList);

  let coords: NDArray | null = null, clusters: NDArray | null = null, explained: NDArray | null = null;
  let labelIdx: NDArray | null = null, rows: NDArray | null = null;
  const tokensOf = () => model.get("texts_tokens") as string[][];
  const N = () => (rows ? rows.shape[1] : 0);
  const textOf = (i: number) => rows!.values[i];
  const tokOf = (i: number) => rows!.values[N() + i];
  const pointName = (i: number) => {
    const toks = tokensOf()[textOf(i)] || [];
    const j = tokOf(i);
    return j >= 0 ? toks[j] : toks.filter((_, k) => k > 0 && k < toks.length - 1).join(" ").slice(0, 60);
  };
  const scatter = new Scatter({
    onBrush: (idx) => f.commit({ selected_indices: idx }),
    describe: (i) => `#${i} ${pointName(i)}`,
    xLabel: model.get("method") === "umap" ? "UMAP 1" : "PC1",
    yLabel: model.get("method") === "umap" ? "UMAP 2" : "PC2",
  });
  f.body.append(h("div", { class: "lw-row" }, scatter.el, legend, selBox));

  const colourIndex = (i: number): number => {
    const row = hiddenRow(model.get("selected_layer")); // arrays: embeddings first
    if (model.get("color_by") === "label" && labelIdx) return labelIdx.values[i];
    return clusters ? clusters.values[row * N() + i] : 0;
  };

  const drawScatter = () => {
    if (!coords) return;
    const layer: LayerSelection = model.get("selected_layer"), row = hiddenRow(layer); // arrays: embeddings first
    const n = N();
    const xy = slice2d(coords, row); // [N, 2]
    const xs = new Float32Array(n), ys = new Float32Array(n);
    for (let i = 0; i < n; i++) { xs[i] = xy.values[2 * i]; ys[i] = xy.values[2 * i + 1]; }
    scatter.setData(xs, ys, Array.from({ length: n }, (_, i) => category(colourIndex(i))));
    slider.value = String(row);
    layerLabel.textContent = layer === EMBEDDINGS ? "embeddings" : `block ${layer}`;
    colorSel.value = model.get("color_by");
    const ev = explained ? [explained.values[2 * row], explained.values[2 * row + 1]] : [NaN, NaN];
    info.textContent = `${n} ${model.get("level") === "token" ? "tokens" : "texts"} \u00b7 ${String(model.get("method")).toUpperCase()}` +
      (Number.isFinite(ev[0]) ? ` (PC1 ${pct(ev[0])}, PC2 ${pct(ev[1])} of variance)` : "") +
      ` \u00b7 k-means k=${model.get("k")} \u00b7 drag to select`;
    // legend: colour -> name and count
    const byLabel = model.get("color_by") === "label" && labelIdx;
    const names: string[] = byLabel ? model.get("label_names") : Array.from({ length: model.get("k") }, (_, c) => `cluster ${c}`);
    const counts = new Array(names.length).fill(0);
    for (let i = 0; i < n; i++) { const c = colourIndex(i); if (c < names.length) counts[c]++; }
    legend.replaceChildren(...names.map((name, c) => h("div", {},
      h("span", { style: `display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px;background:${category(c)}` }),
      `${name} (${counts[c]})`)));
    drawSelection();
  };

  const drawSelection = () => {
    const sel: number[] = model.get("selected_indices") || [];
    scatter.setSelection(sel);
    if (!rows) return;
    const toks = tokensOf();
    selCount.textContent = sel.length ? `${sel.length} selected${sel.length > MAX_SHOWN ? ` (first ${MAX_SHOWN} shown)` : ""}` : "Nothing selected: drag over the scatter.";
    const items: Node[] = [];
    for (const i of sel.slice(0, MAX_SHOWN)) {
      const strip = new TokenStrip(toks[textOf(i)] || [], { testid: "context" });
      if (tokOf(i) >= 0) strip.select(tokOf(i));
      items.push(h("div", { class: "lw-muted", text: `#${i} \u00b7 ${model.get("color_by") === "label" && labelIdx ? (model.get("label_names")[labelIdx.values[i]] ?? "") : `cluster ${colourIndex(i)}`}` }), strip.el);
    }
    selList.replaceChildren(...items);
    selList.style.display = items.length ? "" : "none";
    selList.scrollTop = 0;
  };

  const load = () => {
    if (!model.get("done")) {
      info.textContent = "extracting hidden states and projecting\u2026";
      return;
    }
    coords = decode(model.get("coords") as Packed);
    clusters = decode(model.get("clusters") as Packed);
    explained = decode(model.get("explained") as Packed);
    labelIdx = (model.get("label_names") || []).length ? decode(model.get("label_index") as Packed) : null;
    rows = decode(model.get("rows") as Packed);
    (colorSel.querySelector("option[value=label]") as HTMLOptionElement).disabled = !labelIdx;
    drawScatter();
    f.root.dataset.ready = "1";
  };

  slider.addEventListener("input", () => f.commit({ selected_layer: layerOfRow(Number(slider.value)) }));
  colorSel.addEventListener("change", () => f.commit({ color_by: colorSel.value }));
  clear.addEventListener("click", () => f.commit({ selected_indices: [] }));
  f.watch(["done", "coords", "clusters", "rows"], load);
  f.watch(["selected_layer", "color_by"], drawScatter);
  f.watch(["selected_indices"], drawSelection);
  load();
  expose(el, { scatter });
  return () => f.cleanup();
}

export default { render };
