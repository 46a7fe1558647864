// NeuronView: MLP neuron activations of one layer. Click a token -> its top-k neurons (table);
// click a neuron or type its number -> every token coloured by that neuron's activation, plus the
// tokens that fire it most. The ablation menu ablates the selected neuron (zero, mean, or resample:
// its activations on the donor text typed beside the menu).
import { decode, slice2d, NDArray } from "../lib/buffers";
import { ColorBar } from "../lib/colorbar";
import { css, divergingScale, ink, seq } from "../lib/colors";
import { h, markInvalid, THEME_EVENT } from "../lib/dom";
import { fmt, fmtSigned, prob, quoted } from "../lib/format";
import { enable, expose, frame, Model, NEEDS_KERNEL } from "../lib/frame";
import { absMax, col, row as rowOf, topK } from "../lib/ndarray";
import { fromSelection } from "../lib/selection";
import { SortableTable } from "../lib/table";
import { showRoles, TokenStrip } from "../lib/tokens";
import type { NeuronViewState } from "../generated/state";

function render({ model, el }: { model: Model<NeuronViewState>; el: HTMLElement }) {
  const f = frame(model, el, "neuron");
  const labels: string[] = model.get("tokens");
  const T = labels.length;
  const L: number = model.get("n_layers");
  const N: number = model.get("n_neurons");
  const all = f.exported ? decode(model.get("_export")?.all) : null;

  const layerSel = h("select", { class: "lw-select", "data-testid": "layer" },
    ...Array.from({ length: L }, (_, l) => h("option", { value: String(l), text: `layer ${l}` })));
  const input = h("input", { class: "lw-select", type: "number", min: 0, max: N - 1, placeholder: "neuron #", "data-testid": "neuron-input", style: "width:90px" }) as HTMLInputElement;
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  const resample = h("option", { value: "resample", text: "resample-ablate neuron (from the donor)" });
  const ablateSel = h("select", { class: "lw-select", "data-testid": "ablation-mode", title: "ablate the selected neuron and show the change in output probabilities" },
    h("option", { value: "", text: "no ablation" }), h("option", { value: "zero", text: "zero-ablate neuron" }),
    h("option", { value: "mean", text: "mean-ablate neuron" }), resample) as HTMLSelectElement;
  const donor = h("input", { class: "lw-select", type: "text", placeholder: "donor text (resample)", "data-testid": "ablation-donor", style: "width:180px",
    title: `resample ablation: the neuron takes its activations on this text (as many tokens as this one: ${T})` }) as HTMLInputElement;
  f.toolbar.append(layerSel, h("label", { text: "neuron " }, input), ablateSel, donor, info);
  if (f.exported && !all) f.disable(layerSel, `other layers: ${NEEDS_KERNEL} (too large to store every layer)`);
  // ablation needs the kernel, and a model with an output head: otherwise say why it cannot work
  // (resample also needs a donor text: the box's, as typed)
  const ablationWhy = () => {
    const note: string = model.get("ablation_note") || "";
    const why = f.exported ? `ablation ${NEEDS_KERNEL}` : note ? `ablation unavailable: ${note}` : "";
    for (const c of [ablateSel, donor]) if (why) f.disable(c, why, c === ablateSel); else enable(c);
    enable(resample); // then disabled again where it needs a donor text: with a note where it is the chosen mode
    if (!why && !donor.value.trim()) f.disable(resample, `resample ablation needs a donor text: type one with as many tokens as this text (${T})`,
      model.get("ablation_mode") === "resample" && donor);
  };
  const showDonor = () => { donor.value = model.get("ablation_donor") ?? ""; ablationWhy(); };
  showDonor();
  f.watch(["ablation_note", "ablation_mode"], ablationWhy);
  f.watch(["ablation_donor"], showDonor);
  donor.addEventListener("input", ablationWhy);
  donor.addEventListener("change", () => f.commit({ ablation_donor: donor.value }));

  const strip = new TokenStrip(labels, { onClick: (i) => f.commit({ selected_token: i }) });
  showRoles(strip, model); // a chat input: its role segments
  const tableBox = h("div", { "data-testid": "top-neurons" });
  const firing = h("div", { "data-testid": "firing" });
  const ablation = h("div", { "data-testid": "ablation" });
  const examples = h("div", { "data-testid": "corpus-examples" }); // corpus=[texts]: the selected neuron's max-activating contexts
  const stripBar = new ColorBar("tokens-colorbar");
  f.body.append(strip.el, stripBar.el, h("div", { class: "lw-row" }, tableBox, firing, ablation), examples,
    h("div", { class: "lw-muted", text: "Click a token for its most active neurons; click a neuron to colour the tokens by its activation." }));

  let acts: NDArray | null = null;
  const current = (): NDArray | null => {
    const layer: number = model.get("selected_layer");
    if (all) return slice2d(all, layer);
    const p = model.get("acts");
    return p && p.layer === layer ? decode(p) : null;
  };

  const drawTable = () => {
    const tok = fromSelection(model.get("selected_token"));
    strip.select(tok);
    if (!acts || tok < 0) { tableBox.replaceChildren(h("div", { class: "lw-muted", text: "No token selected." })); return; }
    const row = rowOf(acts, tok);
    const order = topK(row, model.get("k"));
    const table = new SortableTable(
      [{ key: "neuron", label: "neuron" }, { key: "act", label: "activation", format: fmt }],
      order.map((n) => ({ neuron: n, act: row[n] })), (r) => String(r.neuron),
      (r) => f.commit({ selected_neuron: Number(r.neuron) }), "neuron-table");
    table.sortBy("act", true);
    table.select(String(model.get("selected_neuron")));
    tableBox.replaceChildren(h("div", { class: "lw-title", text: `top neurons on "${labels[tok]}"` }), table.el);
  };

  const drawNeuron = () => {
    const n = fromSelection(model.get("selected_neuron"));
    input.value = n >= 0 ? String(n) : "";
    if (n >= 0) markInvalid(input, null); // a neuron chosen (here or in Python): the box is right again
    if (!acts || n < 0) { strip.paint(null, null); stripBar.set(null); firing.replaceChildren(); return; }
    const w = col(acts, n);
    const scale = divergingScale(absMax(w), `activation of neuron ${n} (layer ${model.get("selected_layer")})`);
    strip.paint(w, scale);
    stripBar.set(scale);
    const order = topK(w, 10);
    firing.replaceChildren(h("div", { class: "lw-title", text: `tokens firing neuron ${n}` }),
      h("ol", { style: "margin:2px 0 0 18px;padding:0" }, ...order.map((i) => h("li", { text: `${quoted(labels[i])} (${i}): ${fmt(w[i])}` }))));
  };

  const drawAll = () => {
    layerSel.value = String(model.get("selected_layer"));
    acts = current();
    info.textContent = acts ? `layer ${model.get("selected_layer")}: ${N} neurons \u00b7 ${T} tokens` : "loading\u2026";
    drawTable();
    drawNeuron();
    if (acts) f.root.dataset.ready = "1";
  };
  const drawAblation = () => {
    ablateSel.value = model.get("ablation_mode");
    const a = model.get("ablation");
    if (!a?.outputs) { ablation.replaceChildren(); return; }
    const rows = a.outputs.map((t, i) => h("tr", {},
      h("td", { text: quoted(t) }), h("td", { text: prob(a.before[i]) }), h("td", { text: prob(a.after[i]) }),
      h("td", { text: fmtSigned((a.after[i] - a.before[i]) * 100, 1) })));
    ablation.replaceChildren(
      h("div", { class: "lw-title", text: `${a.mode}-ablating neuron ${a.neurons.join(", ")} of layer ${a.layer}: output probabilities` }),
      h("table", { class: "lw-table" }, h("tr", {}, ...["output", "before", "after", "change (pts)"].map((c) => h("th", { text: c }))), ...rows));
  };
  const drawExamples = () => {
    const c = model.get("corpus_summary");
    const ex = model.get("corpus_examples") ?? [];
    if (c?.n_texts === undefined) { examples.replaceChildren(); return; } // no corpus, or still scanning (the progress bar says)
    const mark = seq(1, 4); // the strongest token: a light step of the theme's sequential palette
    const n = fromSelection(model.get("selected_neuron"));
    const head = n < 0 ? "select a neuron for its max-activating examples" : ex.length ? `neuron ${n}: max-activating examples`
      : `neuron ${n} is never positive on the corpus`;
    examples.replaceChildren(h("div", { class: "lw-title", text: `${head} (corpus: ${c.n_texts} texts, ${c.n_tokens} tokens)` }),
      ...ex.map((e) => h("div", { style: "font-size:12px" }, h("span", { class: "lw-muted", text: `${fmt(e.activation)} ` }),
        ...e.tokens.map((t, i) => h("span", { text: `${t} `, style: i === e.at ? `font-weight:bold;background:${css(mark)};color:${ink(mark)}` : "" })))));
  };
  f.watch(["corpus_examples", "corpus_summary"], drawExamples);
  strip.el.addEventListener(THEME_EVENT, drawExamples); // the highlight follows the theme, like the strip
  drawExamples();
  ablateSel.addEventListener("change", () => f.commit({ ablation_mode: ablateSel.value }));
  f.watch(["ablation", "ablation_mode"], drawAblation);
  layerSel.addEventListener("change", () => f.commit({ selected_layer: Number(layerSel.value) }));
  input.addEventListener("change", () => {
    const n = Math.floor(Number(input.value));
    const ok = input.value.trim() !== "" && Number.isFinite(n) && n >= 0 && n < N;
    markInvalid(input, ok ? null : `neuron must be a number from 0 to ${N - 1}, got \u201c${input.value}\u201d`);
    if (ok) f.commit({ selected_neuron: n });
  });
  f.watch(["selected_layer", "acts"], drawAll);
  f.watch(["selected_token"], drawTable);
  f.watch(["selected_neuron"], () => { drawTable(); drawNeuron(); });
  drawAll();
  drawAblation();
  expose(el, { strip });
  return () => f.cleanup();
}

export default { render };
