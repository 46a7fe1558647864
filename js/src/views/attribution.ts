// AttributionView: prompt tokens coloured by their attribution to the selected output (diverging
// scale for signed methods, sequential for saliency); for several outputs (generation) an
// [output x input] matrix with clickable outputs (selected_output) and inputs (selected_token);
// word-level aggregation toggle; the faithfulness panel (completeness, AOPC, deletion curve).
// Every number comes from binary buffers, so a static export behaves like the live view.
import { decode, NDArray, Packed } from "../lib/buffers";
import { h, savePNG } from "../lib/dom";
import { fmt, fmtSigned, pct, quoted } from "../lib/format";
import { expose, frame, Model, NEEDS_KERNEL } from "../lib/frame";
import { ColorBar } from "../lib/colorbar";
import { colorScale, ColorScale } from "../lib/colors";
import { Heatmap } from "../lib/heatmap";
import { LineChart } from "../lib/linechart";
import { showRoles, TokenStrip } from "../lib/tokens";
import { absMax, col, row, topK, topKAbs } from "../lib/ndarray";
import { clampIndex, clickColumn, columnOf, fromSelection, tokenOfColumn, toSelection } from "../lib/selection";
import type { AttributionViewState } from "../generated/state";

/** What a target of several tokens is (issue 29): one output, the sum of its tokens' teacher-forced
 * log-probs; '' for a target of one token. */
export function targetNote(name: string, pieces: readonly string[] | undefined): string {
  if (!pieces || pieces.length < 2) return "";
  return `target ${quoted(name)} is ${pieces.length} tokens (${pieces.map((p) => quoted(p)).join(" + ")}): ` +
    "one output, the sum of their log-probs, each read after the ones before it";
}
/** What the attributed output is, written as the quantity: log p(target) for output 'log_prob',
 * logit(target), p(target); with a contrast the difference the scores explain, e.g.
 * "log p(target) \u2212 log p(contrast)". */
export function outputLabel(output: string, contrast: string | null | undefined): string {
  const of = (x: string) => (output === "log_prob" ? `log p(${x})` : output === "prob" ? `p(${x})` : output === "logit" ? `logit(${x})` : `${output}(${x})`);
  return contrast === null || contrast === undefined ? of("target") : `${of("target")} \u2212 ${of("contrast")}`;
}
interface Summary {
  fx: number | null; fbase: number | null; delta: number | null; relative_delta: number | null;
  comprehensiveness: number | null; sufficiency: number | null;
  deletion_auc: number | null; deletion_random_auc: number | null;
}
interface Faith {
  rows?: Summary[]; percents?: number[];
  comprehensiveness?: Packed; sufficiency?: Packed;
  deletion_x?: Packed; deletion?: Packed; deletion_random?: Packed;
}


function render({ model, el }: { model: Model<AttributionViewState>; el: HTMLElement }) {
  const f = frame(model, el, "attribution");
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  const wordBox = h("input", { type: "checkbox", "data-testid": "word-level" }) as HTMLInputElement;
  const wordLabel = h("label", { title: "Sum the scores of the sub-word tokens of each word" }, wordBox, " word level");
  const legend = h("span", { class: "lw-muted", "data-testid": "legend" });
  const methods = model.get("methods");
  const methodSel = h("select", { class: "lw-select", "data-testid": "method", title: "Recompute with another method" },
    ...Object.entries(methods).map(([k, label]) => h("option", { value: k, text: label }))) as HTMLSelectElement;
  // methods are compared by colour: one stated range for every method shown so far (default), or each
  // method on its own range
  const scaleSel = h("select", { class: "lw-select", "data-testid": "scale-mode", title: "Which range the colours span" },
    h("option", { value: "shared", text: "colour: one scale for the methods shown" }),
    h("option", { value: "own", text: "colour: this method's own range" })) as HTMLSelectElement;
  f.toolbar.append(methodSel, scaleSel, info, wordLabel, legend);
  scaleSel.addEventListener("change", () => build());
  if (f.exported) f.disable(methodSel, `another method ${NEEDS_KERNEL}`);
  wordBox.addEventListener("change", () => f.commit({ word_level: wordBox.checked }));
  methodSel.addEventListener("change", () => f.commit({ method: methodSel.value }));
  const showMethod = () => { methodSel.value = model.get("method"); };
  showMethod();

  const multiNote = h("div", { class: "lw-muted", "data-testid": "target-tokens", style: "display:none" });
  const outputsBox = h("div", { "data-testid": "outputs-box" });
  const inputBox = h("div");
  const matrixBox = h("div");
  const faithBox = h("div", { "data-testid": "faithfulness", style: "margin-top:10px" });
  f.body.append(multiNote, outputsBox, inputBox, matrixBox, faithBox);

  // state rebuilt when the data arrive (background work) or the word-level toggle changes
  let M: NDArray | null = null; // [K, C]: C tokens or words
  let colLabels: string[] = [];
  let outStrip: TokenStrip | null = null;
  let inStrip: TokenStrip | null = null;
  let heat: Heatmap | null = null;
  let caption: HTMLElement | null = null;
  let outCaption: HTMLElement | null = null;
  let topList: HTMLElement | null = null;
  let preview: number | null = null; // output row under the mouse
  let scale: ColorScale = colorScale("div", 0); // one scale for the matrix and both strips
  const seen = new Map<string, { label: string; max: number }>(); // method (and level) -> its largest |score|
  const stripBar = new ColorBar("tokens-colorbar");

  const targets = (): string[] => model.get("targets") || [];
  const groups = (): number[] => model.get("groups") || [];
  const wordLevel = (): boolean => Boolean(model.get("word_level"));
  const meta = () => model.get("info"); // {} until computed (its fields then undefined)
  // column shown for the selected prompt token (a word in word-level mode) and back
  const colOf = (tok: number) => columnOf(tok, wordLevel(), groups());
  const tokenOf = (c: number) => tokenOfColumn(c, wordLevel(), groups());

  const build = () => {
    const packed = model.get(wordLevel() ? "word_scores" : "scores") as Packed;
    M = decode(packed);
    if (!M) {
      inputBox.replaceChildren(h("div", { class: "lw-muted", text: model.get("error") ? "" : "computing attributions\u2026" }));
      return;
    }
    const K = M.shape[0];
    const names = targets();
    const m = meta();
    const signed = m.signed !== false;
    colLabels = wordLevel() ? model.get("words") : model.get("tokens");
    const own = absMax(M.values);
    const level = wordLevel() ? "words" : "tokens";
    seen.set(`${m.method}|${level}`, { label: m.method_label, max: own });
    const same = [...seen.entries()].filter(([k]) => k.endsWith(`|${level}`)).map(([, v]) => v);
    const shared = scaleSel.value === "shared" && same.length > 1;
    const vmax = shared ? Math.max(...same.map((v) => v.max)) : own;
    const unit = signed ? `attribution score (${m.method_label})` : `|attribution| (${m.method_label})`;
    scale = colorScale(signed ? "div" : "seq", vmax, shared ? `${unit}; scale shared with ${same.filter((v) => v.label !== m.method_label).map((v) => v.label).join(", ")}` : unit);
    f.root.dataset.scaleMax = String(vmax);
    stripBar.set(scale);
    const steps = m.method === "ig" ? ` (${m.steps} steps)` : m.n_samples ? ` (${m.n_samples} samples)` : "";
    info.textContent = `${m.method_label}${steps} \u00b7 ${K > 1 ? `${K} outputs` : `target: ${names[0] ?? ""}`} (${m.output})` +
      ` \u00b7 baseline: ${m.baseline}`;
    multiNote.textContent = targetNote(names[0] ?? "", m.target_tokens);
    multiNote.style.display = multiNote.textContent ? "" : "none";
    legend.textContent = signed ? "red raises the output, blue lowers it" : "darker: larger |gradient| (unsigned)";
    wordBox.checked = wordLevel();

    outStrip = null;
    outCaption = null;
    if (K > 1) {
      outCaption = h("div", { class: "lw-muted", "data-testid": "outputs-caption" });
      outStrip = new TokenStrip(names, {
        testid: "outputs",
        onClick: (r) => f.commit({ selected_output: r }),
        onHover: (r) => { preview = r; paint(); },
      });
      outputsBox.replaceChildren(h("div", { text: m.generated ? "Generated tokens (click one):" : "Outputs (click one):" }), outStrip.el, outCaption);
    } else outputsBox.replaceChildren();

    caption = h("div", { "data-testid": "caption" });
    inStrip = new TokenStrip(colLabels, {
      testid: "tokens",
      onClick: (c) => { // a second click on the selected token (or word) clears the selection
        f.commit({ selected_token: toSelection(clickColumn(fromSelection(model.get("selected_token")), c, wordLevel(), groups())) });
      },
    });
    if (!wordLevel()) showRoles(inStrip, model); // a chat input: its role segments (per token)
    topList = h("div", { class: "lw-muted", "data-testid": "top" });
    inputBox.replaceChildren(caption, inStrip.el, stripBar.el, topList);

    heat = null;
    if (K > 1) {
      heat = new Heatmap("matrix");
      heat.draw(M, {
        rowLabels: names, colLabels, scale: scale.kind, vmax, label: scale.label, maxSize: 640,
        minCell: K <= 32 ? 8 : 0.25, // long prompts scroll sideways rather than shrink rows to a pixel
        onClick: (r, c) => f.commit({ selected_output: r, selected_token: toSelection(tokenOf(c)) }),
        onHover: (r) => { if (preview !== r) { preview = r; paint(); } },
        onLeave: () => { preview = null; paint(); },
        describe: (r, c, v) => `${names[r]} \u2190 ${colLabels[c]}: ${fmt(v, 4)}`,
        markSelColumn: false, // rows are outputs, columns prompt tokens
      });
      const png = h("button", { class: "lw-btn", text: "PNG", title: "Save the matrix as PNG" });
      const hm = heat;
      png.addEventListener("click", () => savePNG(hm.canvas, `attribution-${m.method}.png`));
      matrixBox.replaceChildren(h("div", { class: "lw-head" },
        h("span", { class: "lw-muted", text: `Rows: outputs. Columns: ${wordLevel() ? "words" : "prompt tokens"}. Click a cell to select both. Colour scale \u00b1${vmax.toPrecision(3)}.` }), png), heat.el);
    } else matrixBox.replaceChildren();
    paint();
    drawFaith();
    f.root.dataset.ready = "1";
  };

  const paint = () => {
    if (!M || !inStrip || !caption || !topList) return;
    const K = M.shape[0];
    const signed = meta().signed !== false;
    const names = targets();
    const sel = clampIndex(model.get("selected_output"), K);
    const r = preview ?? sel;
    const tok = fromSelection(model.get("selected_token"));
    const c = colOf(tok);
    const w = row(M, r);
    inStrip.paint(w, scale); // the matrix's scale: rows compare by colour
    inStrip.select(c);
    const vmax = scale.domain[1];
    caption.textContent = `Attribution of ${K > 1 ? "output" : "target"} \u201c${names[r] ?? ""}\u201d to each ${wordLevel() ? "word" : "prompt token"}` +
      ` (colour scale ${signed ? "\u00b1" : "0\u2013"}${vmax.toPrecision(3)}${K > 1 ? ", shared by every output" : ""}; ` +
      // inside the Explorer the strip is its shared one (which hides this one: .lw-shared-src)
      (inStrip.el.classList.contains("lw-shared-src") ? "shown on the shared token strip above)" : "hover a token for its score):");
    const order = (signed ? topKAbs(w) : topK(w)).filter((i) => w[i] !== 0).slice(0, 5); // the strongest either way
    topList.textContent = order.length ? (signed ? "strongest (|score|): " : "top: ") + order.map((i) => `${colLabels[i]} [${i}] ${fmtSigned(w[i])}`).join(", ") : "";
    if (outStrip && outCaption) {
      outStrip.select(sel);
      if (c >= 0) {
        outStrip.paint(col(M, c), scale);
        outCaption.textContent = `Colour: influence of \u201c${colLabels[c]}\u201d on every output (click it again to clear).`;
      } else {
        outStrip.setWeights(null);
        outCaption.textContent = "Click a prompt token to see its influence on every output.";
      }
    }
    heat?.highlight(preview, c >= 0 ? c : null, sel);
    Object.assign(f.root.dataset, { selectedOutput: String(sel), selectedToken: String(tok), wordLevel: wordLevel() ? "1" : "0" });
  };

  const drawFaith = () => {
    const fa: Faith = model.get("faithfulness") || {};
    if (!fa.rows || !fa.rows.length) {
      faithBox.replaceChildren(h("div", { class: "lw-muted", text: "Faithfulness was not computed." }));
      return;
    }
    const K = fa.rows.length;
    const r = clampIndex(model.get("selected_output"), K);
    const s = fa.rows[r];
    const m = meta();
    const complete = m.method === "ig" || m.method === "shapley";
    const rel = s.relative_delta;
    const warn = complete && rel !== null && rel > 0.05;
    const line = (label: string, value: string, help: string, testid: string, bad = false) =>
      h("tr", {}, h("th", { text: label, title: help, style: "text-align:left" }),
        h("td", { text: value, "data-testid": testid, class: bad ? "lw-bad" : null }),
        h("td", { class: "lw-muted", text: help, style: "text-align:left" }));
    const table = h("table", { class: "lw-table" },
      line("f(x), f(baseline)", `${fmt(s.fx, 4)}, ${fmt(s.fbase, 4)}`, `the output, f = ${outputLabel(m.output, m.contrast)}, on the prompt and on the baseline`, "faith-f"),
      line("completeness \u0394", `${fmt(s.delta, 4)} (${pct(rel)} of f(x) \u2212 f(x\u2032))`,
        complete ? "sum of scores \u2212 (f(x) \u2212 f(baseline)); near 0 when the attribution is complete" :
          "sum of scores \u2212 (f(x) \u2212 f(baseline)); only IG and Shapley are complete by construction", "faith-delta", warn),
      line("comprehensiveness (AOPC)", fmt(s.comprehensiveness, 4), `drop in f when the top-k% tokens are removed, k in {${(fa.percents || []).join(", ")}}%: higher is better`, "faith-comp"),
      line("sufficiency (AOPC)", fmt(s.sufficiency, 4), "drop in f when ONLY the top-k% tokens are kept: lower is better", "faith-suff"),
      line("deletion AUC", `${fmt(s.deletion_auc, 4)} vs random ${fmt(s.deletion_random_auc, 4)}`, "area under the deletion curve: below random means the top tokens matter", "faith-auc"));
    const xs = decode(fa.deletion_x);
    const del = decode(fa.deletion);
    const rnd = decode(fa.deletion_random);
    let chart: Node | null = null;
    if (xs && del && rnd) {
      const n = xs.values.length;
      chart = new LineChart(n, [
        { name: "top tokens first", values: row(del, r), color: "#c0392b" },
        { name: "random order", values: row(rnd, r), color: "#7f8c8d", dashed: true },
      ], {
        width: 460, height: 240, xLabel: "fraction of prompt tokens removed", yLabel: `f = ${outputLabel(m.output, m.contrast)}`,
        testid: "deletion-chart",
        xs: xs.values, xFormat: (v) => `${Math.round(100 * v)}%`,
        describe: (i) => `${Math.round(100 * xs.values[i])}% removed: top-first ${fmt(row(del, r)[i], 4)}, random ${fmt(row(rnd, r)[i], 4)}`,
      }).el;
    }
    const names = targets();
    faithBox.dataset.row = String(r);
    faithBox.replaceChildren(
      h("div", { class: "lw-title", text: `Faithfulness${K > 1 ? ` of output \u201c${names[r] ?? ""}\u201d` : ""}` }),
      h("div", { class: "lw-row" }, table, chart));
  };

  f.watch(["scores", "word_scores", "tokens", "targets", "info", "word_level"], build);
  f.watch(["error"], () => { if (!M) build(); });
  f.watch(["faithfulness"], drawFaith);
  f.watch(["method"], showMethod);
  f.watch(["selected_output"], () => { preview = null; paint(); drawFaith(); });
  f.watch(["selected_token"], paint);
  build();
  expose(el, { get heat() { return heat; }, get matrix() { return M; } });
  return () => f.cleanup();
}

export default { render };
