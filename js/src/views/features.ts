// FeatureView: a sparse dictionary's features on a text. Tokens are coloured by their strongest
// feature (or by the selected feature); click a token -> its top features with activations and
// direct logit effects; click a feature -> its activation over the text, top promoted / suppressed
// tokens, and (with a corpus) its top-activating contexts and activation histogram. Reconstruction
// quality (FVU, L0, error norm per token, loss recovered) is always shown. After view.patch(...):
// the selected token's features that restore most when patched from the clean run (feature patching).
import { decode, Packed } from "../lib/buffers";
import { ColorBar } from "../lib/colorbar";
import { sequentialScale } from "../lib/colors";
import { h } from "../lib/dom";
import { fmt, fmtSigned, pct, prob, quoted } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { max } from "../lib/ndarray";
import { fromSelection } from "../lib/selection";
import { SortableTable } from "../lib/table";
import { showRoles, TokenStrip } from "../lib/tokens";
import type { FeatureViewState } from "../generated/state";
import { rowMax } from "../lib/sparse";


function render({ model, el }: { model: Model<FeatureViewState>; el: HTMLElement }) {
  const f = frame(model, el, "features");
  const labels: string[] = model.get("tokens");
  const T = labels.length;
  const F: number = model.get("n_features");
  const input = h("input", { class: "lw-select", type: "number", min: 0, max: F - 1, placeholder: "feature #", "data-testid": "feature-input", style: "width:100px" }) as HTMLInputElement;
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  f.toolbar.append(h("label", { text: "feature " }, input), info);
  if (f.exported) f.disable(input, "other features need the kernel: this is a static export");

  const strip = new TokenStrip(labels, { onClick: (i) => f.commit({ selected_token: i }) });
  showRoles(strip, model);
  const bar = new ColorBar("features-colorbar");
  const quality = h("div", { "data-testid": "quality" });
  const tokenBox = h("div", { "data-testid": "token-features" });
  const featureBox = h("div", { "data-testid": "feature" });
  const corpusBox = h("div", { class: "lw-muted", "data-testid": "corpus" });
  const editBox = h("div", { "data-testid": "edit" });
  const patchBox = h("div", { "data-testid": "patching" });
  f.body.append(quality, strip.el, bar.el, h("div", { class: "lw-row" }, tokenBox, featureBox), editBox, patchBox, corpusBox,
    h("div", { class: "lw-muted", text: "Click a token for its most active features; click a feature to see it over the text, its logits and contexts." }));

  const drawQuality = () => {
    const q = model.get("quality");
    const err = decode(model.get("error_norm") as Packed);
    const l0 = decode(model.get("l0") as Packed);
    const parts = [`site ${model.get("site")}`, `${F} features`, `FVU ${fmt(q.fvu)}`, `mean L0 ${fmt(q.mean_l0, 1)}`];
    if (err) parts.push(`max error norm ${fmt(max(err.values))}`);
    if (q.loss) parts.push(`loss: original ${fmt(q.loss.original)}, spliced ${fmt(q.loss.spliced)}, zero-ablated ${fmt(q.loss.zero)}, recovered ${pct(q.loss.recovered)}`);
    else if (q.loss_note) parts.push(`loss recovered: ${q.loss_note}`);
    quality.replaceChildren(h("div", { class: "lw-muted", text: parts.join(" \u00b7 ") }));
    const tok = fromSelection(model.get("selected_token"));
    if (tok >= 0 && err && l0) info.textContent = `token ${tok}: L0 ${l0.values[tok]}, error norm ${fmt(err.values[tok])}`;
  };

  const paint = () => {
    const feat = model.get("feature");
    if (feat.over_text) {
      const w = Float32Array.from(feat.over_text);
      const s = sequentialScale(max(w), `activation of feature ${feat.id}`);
      strip.paint(w, s); bar.set(s);
    } else {
      const v = decode(model.get("top_values") as Packed);
      if (!v) return;
      const w = rowMax(v.values, T, model.get("k"));
      const s = sequentialScale(max(w), "strongest feature's activation");
      strip.paint(w, s); bar.set(s);
    }
  };

  const drawToken = () => {
    const tok = fromSelection(model.get("selected_token"));
    strip.select(tok);
    const rows = model.get("token_features");
    if (tok < 0) { tokenBox.replaceChildren(h("div", { class: "lw-muted", text: "No token selected." })); return; }
    const table = new SortableTable(
      [{ key: "feature", label: "feature" }, { key: "activation", label: "activation", format: fmt },
        { key: "promoted", label: "promotes" }, { key: "suppressed", label: "suppresses" }],
      rows.map((r) => ({ feature: r.feature, activation: r.activation, promoted: r.promoted.map(quoted).join(" "),
        suppressed: r.suppressed.map(quoted).join(" ") })),
      (r) => String(r.feature), (r) => f.commit({ selected_feature: Number(r.feature) }), "token-feature-table");
    table.sortBy("activation", true);
    table.select(String(model.get("selected_feature")));
    tokenBox.replaceChildren(h("div", { class: "lw-title", text: `top features on ${quoted(labels[tok])}` }), table.el);
    drawQuality();
  };

  const histogram = (counts: number[], edges: number[]) => {
    const top = Math.max(1, ...counts);
    return h("div", { "data-testid": "histogram" }, h("div", { class: "lw-title", text: "activation histogram (corpus, log bins)" }),
      ...counts.map((c, i) => h("div", { style: "display:flex;gap:6px;align-items:center;font-size:11px" },
        h("span", { style: "width:120px", text: `${fmt(edges[i], 2)}\u2013${fmt(edges[i + 1], 2)}` }),
        h("span", { style: `display:inline-block;height:8px;background:#2171b5;width:${Math.round(160 * c / top)}px` }),
        h("span", { text: String(c) }))).filter((_, i) => counts[i] > 0 || i === 0));
  };

  const drawFeature = () => {
    const feat = model.get("feature");
    const id = model.get("selected_feature");
    input.value = id === null || id === undefined ? "" : String(id);
    paint();
    if (feat.id === undefined) { featureBox.replaceChildren(); return; }
    const parts: HTMLElement[] = [h("div", { class: "lw-title", text: `feature ${feat.id}` })];
    if (feat.logits) {
      const list = (xs: [string, number][]) => h("ol", { style: "margin:2px 0 0 18px;padding:0" }, ...xs.map(([t, v]) => h("li", { text: `${quoted(t)} ${fmt(v)}` })));
      parts.push(h("div", { class: "lw-row" }, h("div", {}, h("div", { class: "lw-muted", text: "promotes" }), list(feat.logits.promoted)),
        h("div", {}, h("div", { class: "lw-muted", text: "suppresses" }), list(feat.logits.suppressed))));
    }
    if (feat.contexts) {
      parts.push(h("div", { class: "lw-muted", text: `fires on ${pct(feat.density, 2)} of corpus tokens; max ${fmt(feat.max)}` }));
      parts.push(h("div", { "data-testid": "contexts" }, h("div", { class: "lw-title", text: "top-activating contexts" }),
        ...feat.contexts.map((c) => h("div", { style: "font-size:12px" },
          h("span", { class: "lw-muted", text: `${fmt(c.activation)} ` }),
          ...c.tokens.map((t, i) => h("span", { text: t, style: i === c.at ? "font-weight:bold;background:rgba(33,113,181,.3)" : "" }))))));
      parts.push(histogram(feat.hist ?? [], feat.edges ?? []));
    }
    featureBox.replaceChildren(...parts);
  };

  const drawCorpus = () => {
    const c = model.get("corpus_summary");
    const p: number = model.get("progress");
    if (p >= 0) corpusBox.textContent = `${model.get("progress_label") || "corpus"}: ${pct(p, 0)}`;
    else if (c.n_texts !== undefined) corpusBox.textContent = `corpus: ${c.n_texts} texts, ${c.n_tokens} tokens; ${c.dead} dead features (never fire)`
      + (c.dead ? `: ${c.dead_ids.slice(0, 20).join(", ")}${c.dead > 20 ? ", \u2026" : ""}` : "");
    else corpusBox.textContent = "no corpus: pass corpus=[texts] for top contexts, histograms and dead features";
  };

  const drawEdit = () => {
    const e = model.get("edit_probs");
    if (!e.outputs) { editBox.replaceChildren(); return; }
    const rows = e.outputs.map((t, i) => h("tr", {}, h("td", { text: quoted(t) }),
      h("td", { text: prob(e.before[i]) }), h("td", { text: prob(e.after[i]) }),
      h("td", { text: fmtSigned((e.after[i] - e.before[i]) * 100, 1) })));
    editBox.replaceChildren(h("div", { class: "lw-title", text: `feature edit (${e.description}): next-token probabilities at position ${e.position}` }),
      h("table", { class: "lw-table" }, h("tr", {}, ...["output", "before", "after", "change (pts)"].map((c) => h("th", { text: c }))), ...rows));
  };

  const drawPatching = () => {
    const pt = model.get("patching");
    if (!pt.top) { patchBox.replaceChildren(); return; }
    const tok = fromSelection(model.get("selected_token"));
    const head = h("div", { class: "lw-title", text: `feature patching, clean \u2192 corrupted: ${pt.metric} ${fmt(pt.clean_metric)} \u2192 ${fmt(pt.corrupted_metric)} (score 1 = fully restored)` });
    const rows = tok >= 0 ? (pt.top[String(tok)] as [number, number][] | undefined) : undefined;
    if (!rows) {
      patchBox.replaceChildren(head, h("div", { class: "lw-muted", text: tok < 0 ? "Select a token for the features that restore most there." : `position ${tok} was not patched` }));
      return;
    }
    const table = new SortableTable([{ key: "feature", label: "feature" }, { key: "score", label: "score", format: fmt }],
      rows.map(([feat, score]) => ({ feature: feat, score })), (r) => String(r.feature),
      (r) => f.commit({ selected_feature: Number(r.feature) }), "patching-table");
    table.sortBy("score", true);
    patchBox.replaceChildren(head,
      h("div", { class: "lw-muted", text: `at ${quoted(labels[tok])} (corrupted ${quoted(pt.corrupted_tokens[tok])}); error term alone: ${fmt(pt.error[String(tok)])}` }),
      table.el, h("div", { class: "lw-muted", text: pt.note }));
  };

  input.addEventListener("change", () => {
    const n = Math.floor(Number(input.value));
    if (Number.isFinite(n) && n >= 0 && n < F) f.commit({ selected_feature: n });
    else info.textContent = `feature must be 0..${F - 1}`;
  });
  f.watch(["selected_token", "token_features"], drawToken);
  f.watch(["selected_feature", "feature"], drawFeature);
  f.watch(["quality", "error_norm", "l0"], drawQuality);
  f.watch(["corpus_summary", "progress", "progress_label"], drawCorpus);
  f.watch(["edit_probs"], drawEdit);
  f.watch(["patching", "selected_token"], drawPatching);
  drawQuality(); drawToken(); drawFeature(); drawCorpus(); drawEdit(); drawPatching();
  f.root.dataset.ready = "1";
  expose(el, { strip });
  return () => f.cleanup();
}

export default { render };
