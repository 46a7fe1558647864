// SteeringView: a layers x strengths grid. Language models: steered greedy continuations (tokens
// that differ from the unsteered continuation marked), a concept score and a coherence guard
// (perplexity under the unsteered model) per cell; classifiers: class probability against strength
// per layer. Click a cell to read it; download the vector (safetensors, GGUF control vector).
import { decode, NDArray, Packed } from "../lib/buffers";
import { css, ink, seq, syncTheme } from "../lib/colors";
import { h, scrollCue, watchTheme } from "../lib/dom";
import { fmt } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { LineChart } from "../lib/linechart";
import { at } from "../lib/ndarray";
import type { SteeringViewState } from "../generated/state";

type Cell = SteeringViewState["cells"][number][number];

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/** The bytes of a safetensors file: "layer.{block}" float32 tensors of `vector` [L, D]. */
export function safetensorsBytes(layers: number[], vector: NDArray): Uint8Array {
  const [L, D] = vector.shape;
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  layers.forEach((b, i) => { header[`layer.${b}`] = { dtype: "F32", shape: [D], data_offsets: [i * D * 4, (i + 1) * D * 4] }; });
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + L * D * 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  for (let i = 0; i < L * D; i++) view.setFloat32(8 + head.length + 4 * i, vector.values[i], true);
  return out;
}

/** The bytes of a GGUF (v3) control-vector file as llama.cpp and repeng read it: architecture
 * "controlvector", model_hint, layer_count, one float32 tensor "direction.{block}" per layer. */
export function ggufBytes(layers: number[], vector: NDArray, hint: string): Uint8Array {
  const D = vector.shape[1];
  const parts: number[] = [];
  const u32 = (v: number) => { for (let k = 0; k < 4; k++) parts.push((v >>> (8 * k)) & 255); };
  const u64 = (v: number) => { u32(v); u32(Math.floor(v / 2 ** 32)); };
  const str = (s: string) => { const b = new TextEncoder().encode(s); u64(b.length); b.forEach((x) => parts.push(x)); };
  parts.push(71, 71, 85, 70); // "GGUF"
  u32(3); u64(layers.length); u64(3);
  str("general.architecture"); u32(8); str("controlvector");
  str("controlvector.model_hint"); u32(8); str(hint);
  str("controlvector.layer_count"); u32(4); u32(layers.length);
  const size = D * 4, padded = Math.ceil(size / 32) * 32;
  layers.forEach((b, i) => { str(`direction.${b}`); u32(1); u64(D); u32(0); u64(i * padded); });
  while (parts.length % 32) parts.push(0);
  const out = new Uint8Array(parts.length + padded * layers.length);
  out.set(parts);
  const view = new DataView(out.buffer);
  layers.forEach((_, i) => { for (let d = 0; d < D; d++) view.setFloat32(parts.length + i * padded + 4 * d, vector.values[i * D + d], true); });
  return out;
}

function download(bytes: Uint8Array, filename: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: "application/octet-stream" }));
  const a = h("a", { href: url, download: filename });
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The style of a changed token's <mark>: a light step of the theme's sequential palette, with the
 * ink that reads on it (as NeuronView's corpus highlight), so it is not bright yellow on a dark page. */
export function markStyle(): string {
  const c = seq(1, 4);
  return `background:${css(c)};color:${ink(c)}`;
}

/** A continuation as text, the tokens that differ from the unsteered one marked (<mark>, coloured by
 * the theme: markStyle). */
export function marked(tokens: string[], changed: boolean[]): HTMLElement {
  // wraps anywhere (a continuation can be one long run of word pieces): the grid's columns stay narrow
  const p = h("div", { class: "lw-cont", "data-testid": "continuation", style: "max-width:260px;overflow-wrap:anywhere" });
  tokens.forEach((t, i) => p.append(changed[i] ? h("mark", { text: t, title: "differs from the unsteered continuation", style: markStyle() }) : h("span", { text: t })));
  return p;
}

function render({ model, el }: { model: Model<SteeringViewState>; el: HTMLElement }) {
  const f = frame(model, el, "steering");
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  const saveST = h("button", { class: "lw-btn", text: "vector .safetensors", "data-testid": "save-safetensors" });
  const saveGG = h("button", { class: "lw-btn", text: "vector .gguf", "data-testid": "save-gguf",
    title: "GGUF control vector (llama.cpp --control-vector, repeng); block 0 is never steered there" });
  f.toolbar.append(info, saveST, saveGG);
  const grid = h("div", { "data-testid": "grid" });
  const detail = h("div", { "data-testid": "detail" });
  f.body.append(grid, detail);
  let chart: LineChart | null = null;

  const vectorOf = () => decode(model.get("vector") as Packed);
  saveST.addEventListener("click", () => {
    const v = vectorOf();
    if (v) download(safetensorsBytes(model.get("layers"), v), "steering_vector.safetensors");
  });
  saveGG.addEventListener("click", () => {
    const v = vectorOf();
    const layers: number[] = model.get("layers");
    if (!v) return;
    if (layers.includes(0)) { info.textContent = "GGUF control vectors cannot steer block 0: leave it out of layers."; return; }
    download(ggufBytes(layers, v, model.get("model_hint") || "unknown"), "steering_vector.gguf");
  });

  const drawAll = () => {
    if (!model.get("done")) { info.textContent = "steering\u2026"; return; }
    const layers: number[] = model.get("layers");
    const strengths: number[] = model.get("strengths");
    if (model.get("mode") === "classify") drawClassify(layers, strengths);
    else drawGenerate(layers, strengths);
    drawDetail();
    f.root.dataset.ready = "1";
  };

  const drawClassify = (layers: number[], strengths: number[]) => {
    const probs = decode(model.get("probs") as Packed)!;
    const classes: string[] = model.get("classes");
    const target: string = model.get("target");
    const c = classes.indexOf(target);
    const suggested: (number | null)[] = model.get("suggested");
    info.textContent = `P(${target}) against strength, one line per layer \u00b7 click a point`;
    const series = layers.map((l, i) => ({ name: `layer ${l}`, color: PALETTE[i % PALETTE.length],
      values: Float32Array.from(strengths.map((_, j) => at(probs, i, j, c))) }));
    chart = new LineChart(strengths.length, series, {
      width: 520, yMin: 0, yMax: 1, yLabel: `P(${target})`, xLabel: "strength", xTick: (j) => fmt(strengths[j], 2),
      onClick: (j) => f.commit({ selected_strength: strengths[j] }),
      describe: (j) => `strength ${fmt(strengths[j], 2)}: ` + layers.map((l, i) => `layer ${l} ${fmt(at(probs, i, j, c))}`).join(", "),
    });
    const note = h("div", { class: "lw-muted", "data-testid": "suggested",
      text: "Suggested strength (the smallest reaching 0.5): " + layers.map((l, i) => `layer ${l}: ${suggested[i] == null ? "none" : fmt(suggested[i], 2)}`).join(", ") });
    grid.replaceChildren(chart.el, note);
  };

  const drawGenerate = (layers: number[], strengths: number[]) => {
    const score = decode(model.get("score") as Packed)!;
    const ppl = decode(model.get("perplexity") as Packed)!;
    const broken: boolean[][] = model.get("broken");
    const base: number = model.get("base_perplexity");
    const cells: Cell[][] = model.get("cells");
    info.textContent = `greedy continuations \u00b7 score: movement along the vector (1 = the full contrast) \u00b7 ` +
      `perplexity under the unsteered model (unsteered: ${fmt(base, 1)}; flagged over 4\u00d7) \u00b7 click a cell`;
    const table = h("table", { class: "lw-table", "data-testid": "cells" });
    table.append(h("tr", {}, h("th", { text: "layer \\ strength" }), ...strengths.map((s) => h("th", { text: fmt(s, 2) }))));
    layers.forEach((l, i) => {
      const tr = h("tr", {}, h("th", { text: String(l) }));
      strengths.forEach((s, j) => {
        const bad = broken[i][j];
        const td = h("td", { "data-layer": l, "data-strength": s, class: bad ? "lw-bad" : "",
          title: bad ? "coherence guard: the continuation is much less likely under the unsteered model (broken?)" : "" },
        h("div", { text: `score ${fmt(at(score, i, j), 2)} \u00b7 ppl ${fmt(at(ppl, i, j), 1)}${bad ? " \u26a0" : ""}` }),
        marked(cells[i][j].tokens[0], cells[i][j].changed[0]));
        td.style.cursor = "pointer";
        td.style.verticalAlign = "top";
        td.addEventListener("click", () => f.commit({ selected_layer: l, selected_strength: s }));
        tr.append(td);
      });
      table.append(tr);
    });
    const box = h("div", { class: "lw-scroll" }, table);
    grid.replaceChildren(box, scrollCue(box, "strengths"));
  };

  const drawDetail = () => {
    if (!model.get("done")) return;
    const layers: number[] = model.get("layers");
    const strengths: number[] = model.get("strengths");
    const i = layers.indexOf(model.get("selected_layer") ?? NaN);
    const j = strengths.indexOf(model.get("selected_strength") ?? NaN);
    grid.querySelectorAll("td[data-layer]").forEach((td) => {
      const e = td as HTMLElement;
      e.classList.toggle("lw-sel", Number(e.dataset.layer) === layers[i] && Number(e.dataset.strength) === strengths[j]);
    });
    if (i < 0 || j < 0) { detail.replaceChildren(); return; }
    const prompts: string[] = model.get("prompts");
    const title = h("div", { class: "lw-title", "data-testid": "cell-title", text: `Layer ${layers[i]}, strength ${fmt(strengths[j], 2)}` });
    if (model.get("mode") === "classify") {
      const probs = decode(model.get("probs") as Packed)!;
      const classes: string[] = model.get("classes");
      detail.replaceChildren(title, ...classes.map((c, k) => h("div", { text: `P(${c}) = ${fmt(at(probs, i, j, k))}` })));
      chart?.select(j);
    } else {
      const cell: Cell = model.get("cells")[i][j];
      const base: string[] = model.get("base");
      detail.replaceChildren(title, ...prompts.flatMap((p, k) => [
        h("div", { class: "lw-muted", text: `prompt: ${p}` }), marked(cell.tokens[k], cell.changed[k]),
        h("div", { class: "lw-muted", text: `unsteered: ${base[k]}` })]));
    }
    detail.dataset.layer = String(layers[i]);
  };

  f.watch(["done", "cells", "probs", "score"], drawAll);
  f.watch(["selected_layer", "selected_strength"], drawDetail);
  drawAll();
  // the marks follow a theme change (they are not canvases or strips, which the frame redraws)
  const stopTheme = watchTheme(() => {
    syncTheme();
    const style = markStyle();
    f.root.querySelectorAll<HTMLElement>(".lw-cont mark").forEach((m) => { m.style.cssText = style; });
  });
  expose(el, { grid, detail });
  return () => { stopTheme(); f.cleanup(); };
}

export default { render };
