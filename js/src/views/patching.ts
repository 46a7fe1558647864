// PatchingView: normalized patching metric as heatmaps (residual / attention / MLP: layer x position,
// plus layer x head), diverging scale around 0 (the run's output) with 1 = the patched-from text's
// output. Denoising runs the corrupted text with one clean activation restored; noising runs the clean
// text with one corrupted activation inserted. Texts keep the user's names ("clean" is the clean text).
// Clicking a cell selects (site, layer, position|head) and shows the top outputs of that patched run.
import { decode, NDArray, Packed } from "../lib/buffers";
import { h } from "../lib/dom";
import { fmt, prob, quoted } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { Heatmap } from "../lib/heatmap";
import { at, slice } from "../lib/ndarray";
import { fromSelection } from "../lib/selection";
import type { PatchingViewState } from "../generated/state";

/** Relative gap |clean - corrupted| / max(|clean|, |corrupted|) below which a normalised score divides
 * by a difference near the noise: warned about, and drawn with muted colours. */
export const NEAR_NOISE = 0.1;

/** The colour range (±vmax) for normalised scores: 1 normally; wider, so colours fade, as the gap
 * between the clean and corrupted metrics shrinks below NEAR_NOISE of their size (at most 10). */
export function noiseVmax(clean: number, corrupted: number): { vmax: number; rel: number } {
  const size = Math.max(Math.abs(clean), Math.abs(corrupted));
  const rel = size > 0 ? Math.abs(clean - corrupted) / size : 0;
  return { vmax: rel >= NEAR_NOISE ? 1 : Math.min(10, NEAR_NOISE / Math.max(rel, 1e-12)), rel };
}

const SITE_NAMES: Record<string, string> = {
  resid: "residual stream", attn: "attention output", mlp: "MLP output", heads: "attention heads (all positions)",
};

function render({ model, el }: { model: Model<PatchingViewState>; el: HTMLElement }) {
  const f = frame(model, el, "patching");
  const waiting = h("div", { class: "lw-muted", text: "computing patched runs\u2026" });
  const grids = h("div", { class: "lw-row" });
  const detail = h("div", { "data-testid": "detail", style: "min-width:260px" });
  const noising = model.get("direction") === "noising";
  const run = noising ? "clean" : "corrupted", source = noising ? "corrupted" : "clean"; // the run; where its patches come from
  const legend = h("div", { class: "lw-muted", "data-testid": "legend", text: `Each cell: the ${run} run with that one ${source} activation ${noising ? "inserted" : "restored"}, normalized metric: 0 (neutral) = ${run} output, 1 (red) = ${source} output, < 0 (blue) = further from the ${source} output. Click a cell for its output.` });
  const noise = h("div", { class: "lw-notice", "data-testid": "noise-warning", style: "display:none" });
  f.body.append(waiting, noise, grids, legend, detail);
  const maps: Record<string, Heatmap> = {};
  let drawn = false;

  const topList = (pairs: [string, number][]) =>
    h("ol", { style: "margin:2px 0 6px 18px;padding:0" }, ...pairs.map(([t, p]) => h("li", { text: `${quoted(t)} ${prob(p)}` })));

  const draw = () => {
    const S = decode(model.get("scores") as Packed);
    if (!S) return;
    drawn = true;
    waiting.style.display = "none";
    const sites: string[] = model.get("sites");
    const tokens: string[] = model.get("tokens");
    const clean: string[] = model.get("clean_tokens");
    const L = S.shape[1], T = S.shape[2];
    const summary = model.get("summary"); // set with the scores drawn here
    const changed = summary.changed || [];
    const colLabels = tokens.map((t, i) => (changed.includes(i) ? `${clean[i]}\u2192${t}` : t)); // clean -> corrupted
    const rowLabels = Array.from({ length: L }, (_, l) => `L${l}`);
    const { vmax, rel } = noiseVmax(summary.clean, summary.corrupted);
    noise.style.display = vmax > 1 ? "" : "none";
    noise.textContent = vmax > 1 ? `The clean and corrupted metrics differ by only ${fmt(Math.abs(summary.clean - summary.corrupted), 4)} ` +
      `(${(100 * rel).toFixed(1)}% of their size): every score divides by this gap, so noise can look like an effect. ` +
      `Colours are muted (scale ±${vmax.toPrecision(2)} instead of ±1); choose texts or a metric that differ more.` : "";
    grids.replaceChildren();
    const add = (site: string, m: NDArray, cols: string[]) => {
      const hm = maps[site] ?? (maps[site] = new Heatmap(`heat-${site}`));
      const box = h("div", {}, h("div", { class: "lw-title", text: SITE_NAMES[site] ?? site }), hm.el);
      grids.append(box);
      hm.draw(m, {
        rowLabels, colLabels: cols, scale: "div", vmax, maxSize: 360, label: `normalised metric (0 = ${run} output, 1 = ${source} output)`,
        onClick: (r, c) => f.commit(site === "heads"
          ? { selected_site: site, selected_layer: r, selected_head: c, selected_token: null }
          : { selected_site: site, selected_layer: r, selected_token: c, selected_head: null }),
        describe: (r, c, v) => `${SITE_NAMES[site] ?? site}, layer ${r}, ${site === "heads" ? `head ${c}` : `"${cols[c]}" (${c})`}, patched from the ${source} run: ${fmt(v, 3)}`,
      });
    };
    sites.forEach((s, si) => add(s, { shape: [L, T], values: S.values.subarray(si * L * T, (si + 1) * L * T) }, colLabels));
    const HS = decode(model.get("head_scores") as Packed);
    if (HS) add("heads", HS, Array.from({ length: HS.shape[1] }, (_, i) => `H${i}`));
    showDetail();
    f.root.dataset.ready = "1";
  };

  const showDetail = () => {
    if (!drawn) return;
    const summary = model.get("summary");
    const site: string | null = model.get("selected_site");
    const l = fromSelection(model.get("selected_layer"));
    const labels: string[] = model.get("top_tokens");
    const tokens: string[] = model.get(noising ? "clean_tokens" : "tokens"); // the run's
    const parts: (Node | string)[] = [
      h("div", { text: `metric ${summary.metric}: clean ${fmt(summary.clean, 4)}, corrupted ${fmt(summary.corrupted, 4)} (read at position ${summary.position})` }),
      h("div", { class: "lw-muted", "data-testid": "direction", text: `${noising ? "noising" : "denoising"}: the ${run} run, patched from: ${source} run` }),
    ];
    for (const m of Object.values(maps)) m.highlight(null, null, null);
    let pairs: [string, number][] | null = null;
    if (site && l >= 0) {
      const heads = site === "heads";
      const idx = decode(model.get(heads ? "head_top_index" : "top_index") as Packed);
      const pr = decode(model.get(heads ? "head_top_probs" : "top_probs") as Packed);
      const sc = decode(model.get(heads ? "head_scores" : "scores") as Packed);
      const col = fromSelection(heads ? model.get("selected_head") : model.get("selected_token"));
      const si = (model.get("sites") as string[]).indexOf(site);
      if (idx && pr && sc && col >= 0 && (heads || si >= 0)) {
        const cell = heads ? [l, col] : [si, l, col]; // scores [sites, L, T] or head scores [L, H]; top-k one axis more
        const top = slice(idx, ...cell).values, probs = slice(pr, ...cell).values;
        pairs = Array.from(top, (t, j): [string, number] => [labels[t], probs[j]]);
        const what = heads ? `head ${col}` : `position ${col} "${tokens[col]}"`;
        parts.push(h("div", { class: "lw-title", "data-testid": "detail-title", text: `patch ${SITE_NAMES[site]}, layer ${l}, ${what}: ${fmt(at(sc, ...cell), 4)}` }));
        maps[site]?.highlight(l, col, null);
      }
    }
    parts.push(h("div", { class: "lw-row" },
      pairs ? h("div", {}, h("b", { text: "patched run" }), topList(pairs)) : h("div", { class: "lw-muted", text: "Click a cell to see that patched run's top outputs." }),
      h("div", {}, h("b", { text: "clean" }), topList(summary.clean_top || [])),
      h("div", {}, h("b", { text: "corrupted" }), topList(summary.corrupted_top || []))));
    detail.replaceChildren(...parts);
    Object.assign(detail.dataset, { site: String(site), layer: String(model.get("selected_layer")), token: String(model.get("selected_token")), head: String(model.get("selected_head")) });
  };

  f.watch(["scores", "head_scores", "sites", "tokens"], draw);
  f.watch(["selected_site", "selected_layer", "selected_token", "selected_head"], showDetail);
  draw();
  expose(el, { maps });
  return () => f.cleanup();
}

export default { render };
