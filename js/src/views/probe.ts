// ProbeView: held-out probe accuracy (95% Wilson interval over the n held-out rows), control accuracy
// and the majority baseline against layer; selectivity (a difference) on its own axis below; click a
// layer for its confusion matrix and most confidently wrong examples.
import { decode, slice2d, NDArray, Packed } from "../lib/buffers";
import { h, watchWidth } from "../lib/dom";
import { fmt } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { Heatmap } from "../lib/heatmap";
import { LineChart, plotMargins } from "../lib/linechart";
import { Row, SortableTable } from "../lib/table";
import { TokenStrip } from "../lib/tokens";
import { absMax, at, max, row as rowOf } from "../lib/ndarray";
import { ColorBar } from "../lib/colorbar";
import { divergingScale } from "../lib/colors";
import { EMBEDDINGS, hiddenRow, LayerSelection, layerOfRow } from "../lib/selection";
import type { ProbeViewState } from "../generated/state";

/** Width (px) of the accuracy chart, and the least width the detail panel needs beside it. */
export const CHART_W = 520;
export const DETAIL_MIN = 360;

type Example = ProbeViewState["examples"][number][number];

/** "0.886–1.000": an interval's ends at the precision shown. */
export function span(lo: number, hi: number): string {
  return `${fmt(lo)}–${fmt(hi)}`;
}

/** The columns whose accuracy reads the same as the best one's at the precision shown (3 decimals):
 * a tie is reported as a tie, not as the first of them. */
export function bestOf(acc: ArrayLike<number>, best: number): number[] {
  const out: number[] = [];
  for (let l = 0; l < acc.length; l++) if (fmt(acc[l]) === fmt(acc[best])) out.push(l);
  return out;
}

function render({ model, el }: { model: Model<ProbeViewState>; el: HTMLElement }) {
  const f = frame(model, el, "probe");
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  f.toolbar.append(info);
  const chartBox = h("div", { "data-testid": "chart-box" });
  const detail = h("div", { "data-testid": "detail" });
  const tableBox = h("div");
  // the detail panel's place depends on the width alone (never on what it shows): beside the chart
  // where both fit, else below it
  const split = h("div", { class: "lw-split", "data-testid": "probe-split" }, chartBox, detail);
  f.body.append(split, tableBox);
  const stopWidth = watchWidth(f.root, (w) => {
    const beside = w >= CHART_W + 12 + DETAIL_MIN;
    split.style.gridTemplateColumns = beside ? `${CHART_W}px minmax(0,1fr)` : "minmax(0,1fr)";
    detail.dataset.place = beside ? "beside" : "below";
  });

  let chart: LineChart | null = null;
  let selChart: LineChart | null = null;
  let interval: NDArray | null = null;
  let curves: NDArray | null = null;
  let confusion: NDArray | null = null;
  let table: SortableTable | null = null;
  const heat = new Heatmap("confusion");

  const drawAll = () => {
    if (!model.get("done")) {
      info.textContent = "extracting hidden states and training probes\u2026";
      return;
    }
    // columns: the embeddings, then blocks 0..n_layers-1 (selected_layer = layerOfRow(column))
    const L: number = model.get("n_layers") + 1;
    const name = (c: number) => (c === 0 ? "embeddings" : `layer ${c - 1}`);
    curves = decode(model.get("curves") as Packed)!;
    confusion = decode(model.get("confusion") as Packed)!;
    const [acc, , ctrl, , sel] = [0, 1, 2, 3, 4].map((k) => rowOf(curves!, k));
    interval = decode(model.get("interval") as Packed | null);
    const nTest: number = model.get("n_test");
    // the 95% Wilson interval counting the held-out rows (honest at 1.000 on a small test set)
    const [accLo, accHi, ctrlLo, ctrlHi] = interval ? [0, 1, 2, 3].map((k) => rowOf(interval!, k)) : [acc, acc, ctrl, ctrl];
    const hasControl = ctrl.every((v) => v >= 0);
    const majority: number = model.get("majority");
    const series = [
      { name: "accuracy", values: acc, lo: accLo, hi: accHi, color: "#1f77b4" },
      ...(hasControl ? [{ name: "control", values: ctrl, lo: ctrlLo, hi: ctrlHi, color: "#ff7f0e" }] : []),
      { name: "majority", values: new Float32Array(L).fill(majority), color: "#7f7f7f", dashed: true },
    ];
    const ciText = (l: number) => (interval ? ` (95% CI ${span(accLo[l], accHi[l])}, n = ${nTest} held-out)` : "");
    const xTick = (c: number) => (c === 0 ? "emb" : String(c - 1));
    const onClick = (c: number) => f.commit({ selected_layer: layerOfRow(c) });
    const describe = (l: number) => `${name(l)}: accuracy ${fmt(acc[l])}${ciText(l)}` +
      (hasControl ? `, control ${fmt(ctrl[l])}, selectivity ${fmt(sel[l])}` : "");
    const accOpts = { width: CHART_W, yMin: 0, yMax: 1, yLabel: "held-out accuracy", onClick, xTick, describe };
    // selectivity is a difference of accuracies: its own axis (through 0), not the accuracy one
    const selSeries = [{ name: "selectivity", values: sel, color: "#2ca02c" },
      { name: "zero", values: new Float32Array(L), color: "#7f7f7f", dashed: true }];
    const selOpts = { width: CHART_W, height: 150, yMin: Math.min(0, ...Array.from(sel)), yMax: Math.max(0, ...Array.from(sel)),
      yLabel: "acc. \u2212 control", onClick, xTick, describe, testid: "selectivity-chart" };
    // one plot area for both (the wider tick labels' and legend's room): layer k sits at one x in both
    const [ma, ms] = [plotMargins(series, L, accOpts), plotMargins(selSeries, L, selOpts)];
    const margins = hasControl ? { l: Math.max(ma.l, ms.l), r: Math.max(ma.r, ms.r) } : ma;
    chart = new LineChart(L, series, { ...accOpts, margins });
    selChart = hasControl ? new LineChart(L, selSeries, { ...selOpts, margins }) : null;
    chartBox.replaceChildren(chart.el, ...(selChart ? [h("div", { class: "lw-muted", "data-testid": "selectivity-title",
      text: "Selectivity: accuracy minus control accuracy (a difference, on its own axis)" }), selChart.el] : []),
      ...(interval ? [h("div", { class: "lw-muted", "data-testid": "interval-note",
        text: `Bands: 95% Wilson intervals for ${nTest} held-out ${model.get("level") === "token" ? "tokens" : "texts"} per split.` })] : []));
    let best = 0;
    for (let l = 1; l < L; l++) if (acc[l] > acc[best]) best = l;
    const tied = bestOf(acc, best);
    info.textContent = `${model.get("level")}-level ${model.get("probe_kind")} probe \u00b7 ${model.get("seeds")} splits` +
      (nTest > 0 ? ` of ${nTest} held-out` : "") + " \u00b7 " +
      `best: ${tied.length > 1 ? `${tied.map(name).join(", ")} (tied at ${fmt(acc[best])})` : `${name(best)} (${fmt(acc[best])})`} \u00b7 majority baseline ${fmt(majority)} \u00b7 click a layer`;
    // `row` sorts (the embeddings first) and is shown as the layer's name; `layer` is the selection
    const rows: Row[] = Array.from({ length: L }, (_, l) => ({ row: l, layer: layerOfRow(l), accuracy: acc[l],
      ci_low: interval ? accLo[l] : NaN, ci_high: interval ? accHi[l] : NaN,
      control: hasControl ? ctrl[l] : NaN, selectivity: hasControl ? sel[l] : NaN }));
    // amnesic probing (ProbeView(..., amnesic=True)): a column per block (none for the embeddings)
    const amnesic = decode(model.get("amnesic_rows") as Packed | null);
    const amnesicKeys = amnesic ? (model.get("amnesic_names") as string[]) : [];
    if (amnesic) rows.forEach((r, l) => amnesicKeys.forEach((k, i) => { r[k] = l === 0 ? NaN : at(amnesic, i, l - 1); }));
    table = new SortableTable(
      [{ key: "row", label: "layer", format: (v) => String(layerOfRow(Number(v))) },
       ...["accuracy", "ci_low", "ci_high", "control", "selectivity", ...amnesicKeys].map((k) => ({ key: k, label: k.replace(/_/g, " "), format: fmt }))],
      rows, (r) => String(r.layer), (r) => f.commit({ selected_layer: r.layer === EMBEDDINGS ? EMBEDDINGS : Number(r.layer) }), "layers");
    table.sortBy("row", false);
    const amnesicNote = amnesic ? h("div", { class: "lw-muted", "data-testid": "amnesic-note",
      text: `Amnesic rows (LEACE at each block's output, ${model.get("amnesic_positions")} positions): ` +
        "\u201cprobe after erasure\u201d answers \u201ccan a fresh probe still read it?\u201d (it should sit at the majority baseline); " +
        `\u201ctask change\u201d answers \u201cdoes the model use it?\u201d: the change in the model's ${model.get("amnesic_metric")} with the concept erased, ` +
        "against \u201crandom change\u201d, erasing a random subspace of the same rank." }) : null;
    tableBox.replaceChildren(h("details", { open: amnesic ? true : null }, h("summary", { text: "Numbers per layer" }), table.el), amnesicNote ?? "");
    drawLayer();
    f.root.dataset.ready = "1";
  };

  const drawLayer = () => {
    const layer: LayerSelection = model.get("selected_layer");
    const classes: string[] = model.get("classes");
    const l = hiddenRow(layer); // column of the arrays (embeddings first)
    if (!curves || !confusion || l < 0) return;
    chart?.select(l);
    selChart?.select(l);
    table?.select(String(layer));
    const C = classes.length;
    const cm: NDArray = slice2d(confusion, l);
    const title = h("div", { class: "lw-title", "data-testid": "layer-title",
      text: `${l === 0 ? "Embeddings" : `Layer ${layer}`}: accuracy ${fmt(at(curves, 0, l))}` +
        (interval ? ` (95% CI ${span(at(interval, 0, l), at(interval, 1, l))}, n = ${model.get("n_test")})` : "") });
    const cmax = Math.max(0, max(cm.values));
    heat.draw(cm, {
      rowLabels: classes, colLabels: classes, scale: "seq", vmax: cmax, maxSize: Math.min(260, 60 * C), minCell: 8,
      label: "examples", zoom: false,
      cellText: (r, c) => String(Math.round(at(cm, r, c))),
      describe: (r, c, v) => `true ${classes[r]}, predicted ${classes[c]}: ${Math.round(v)}`,
    });
    const examples: Example[] = model.get("examples")[l] || [];
    const list = h("div", { "data-testid": "wrong" });
    // every example of the layer on one diverging scale (not each on its own maximum)
    const weights = examples.map((ex) => (ex.weights ? decode(ex.weights) : null));
    const wmax = Math.max(0, ...weights.map((w) => (w ? absMax(w.values) : 0)));
    const wscale = divergingScale(wmax, "share of logit(predicted) \u2212 logit(true)");
    examples.forEach((ex, i) => {
      const strip = new TokenStrip(ex.tokens, { testid: "wrong-example" });
      if (ex.highlight >= 0) strip.select(ex.highlight);
      const w = weights[i];
      if (w) strip.paint(w.values, wscale);
      list.append(h("div", { class: "lw-muted", text: `true ${ex.true} \u2192 predicted ${ex.pred} (p = ${fmt(ex.confidence, 2)})` }), strip.el);
    });
    if (!examples.length) list.append(h("div", { class: "lw-muted", text: "No held-out mistakes at this layer." }));
    if (weights.some((w) => w)) {
      const bar = new ColorBar("weights-colorbar");
      bar.set(wscale);
      list.append(h("div", { class: "lw-muted", "data-testid": "weights-legend",
        text: "Token colour: share of the probe's wrong decision, logit(predicted) \u2212 logit(true) (red: pushed towards the wrong class, blue: towards the true one)." }), bar.el);
    }
    detail.replaceChildren(title, h("div", { class: "lw-muted", text: "Confusion matrix (all splits; rows: true, columns: predicted)" }), heat.el,
      h("div", { class: "lw-muted", text: "Most confidently wrong held-out examples" }), list);
    detail.dataset.layer = String(layer);
  };

  f.watch(["done", "curves", "interval", "n_test", "confusion", "examples"], drawAll);
  f.watch(["selected_layer"], drawLayer);
  drawAll();
  expose(el, { heat });
  return () => { stopWidth(); f.cleanup(); };
}

export default { render };
