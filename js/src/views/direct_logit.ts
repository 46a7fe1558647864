// DirectLogitView: for the selected position, every head's direct share of one logit as a layers x
// heads heatmap (diverging: red raises it, blue lowers it), the other parts (embeddings, attention
// biases, MLPs, readout bias) as bars in the same colours, the model's own value beside the sum of the
// shares (the check), and the input's token strip (click a token to read that position).
import { decode, NDArray } from "../lib/buffers";
import { css } from "../lib/colors";
import { h, THEME_EVENT } from "../lib/dom";
import { fmt, fmtSigned } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { Heatmap } from "../lib/heatmap";
import { absMax, at, slice } from "../lib/ndarray";
import { fromSelection } from "../lib/selection";
import { showRoles, TokenStrip } from "../lib/tokens";
import type { DirectLogitViewState } from "../generated/state";

interface Shares { heads: NDArray; parts: NDArray; logit: number | null; total: number | null; error: number | null }

const HALF_BAR = 70; // px from the zero axis to a bar of the largest magnitude

/** A bar that grows from a zero axis: right for positive values, left for negative ones. */
export function divergingBar(v: number, max: number, colour: string): HTMLElement {
  const w = Number.isFinite(v) ? Math.round((HALF_BAR * Math.min(Math.abs(v), max)) / max) : 0;
  const side = v < 0 ? `right:${HALF_BAR}px` : `left:${HALF_BAR}px`;
  return h("span", { class: "lw-dbar", "data-width": String(w), "data-side": v < 0 ? "left" : "right",
    style: `position:relative;display:inline-block;width:${2 * HALF_BAR}px;height:12px` },
  h("span", { class: "lw-zero", style: `position:absolute;left:${HALF_BAR}px;top:0;bottom:0;width:1px;background:currentColor;opacity:.6` }),
  h("span", { style: `position:absolute;top:1px;height:10px;${side};width:${w}px;background:${colour};border:1px solid rgba(128,128,128,.5);box-sizing:border-box` }));
}

function render({ model, el }: { model: Model<DirectLogitViewState>; el: HTMLElement }) {
  const f = frame(model, el, "direct_logit");
  const tokens: string[] = model.get("tokens");
  const components: string[] = model.get("components");
  const L: number = model.get("n_layers"), H: number = model.get("n_heads");
  const all = model.get("_export"); // every position, in a static export
  const allHeads = decode(all?.heads), allParts = decode(all?.components), allLogit = decode(all?.logit);
  const fixed = f.exported && !allHeads; // an export holding one position
  const strip = new TokenStrip(tokens, { onClick: (i) => { if (!fixed) f.commit({ selected_token: i }); } });
  showRoles(strip, model); // a chat input: its role segments
  const heat = new Heatmap("heat-heads");
  const check = h("div", { "data-testid": "check" });
  const bars = h("div", { "data-testid": "parts", style: "min-width:260px" });
  const detail = h("div", { "data-testid": "detail", class: "lw-muted" });
  f.body.append(h("div", { class: "lw-muted", text: "Click a token to read its position; click a head for its share." }),
    strip.el, check, h("div", { class: "lw-row" }, heat.el, h("div", {}, h("div", { class: "lw-title", text: "other parts" }), bars)), detail);
  if (fixed) f.disable(strip.el, "reading another position needs the kernel: this export holds one position");

  /** The shares at the selected position: the synced traits, or (a static export) the embedded arrays. */
  const current = (p: number): Shares | null => {
    const hp = model.get("head_shares"), cp = model.get("component_shares");
    const s = model.get("summary");
    const heads = decode(hp), parts = decode(cp);
    if (heads && parts && hp.position === p) return { heads, parts, logit: s?.logit ?? null, total: s?.total ?? null, error: s?.error ?? null };
    if (allHeads && allParts && allLogit && p < allHeads.shape[0]) {
      const hs = slice(allHeads, p), ps = slice(allParts, p);
      let total = 0;
      for (const v of hs.values) total += v;
      for (const v of ps.values) total += v;
      const logit = allLogit.values[p];
      let sumAbs = 0;
      for (const v of [...hs.values, ...ps.values]) sumAbs += Math.abs(v);
      return { heads: hs, parts: ps, logit, total, error: Math.abs(total - logit) / Math.max(sumAbs, 1e-30) };
    }
    return null;
  };

  let shown: Shares | null = null;
  const draw = () => {
    const p = fromSelection(model.get("selected_token"));
    strip.select(p);
    const s = p >= 0 ? current(p) : null;
    shown = s;
    const metric: string = model.get("summary")?.metric ?? "";
    if (!s) {
      check.textContent = p < 0 ? "Click a token to see the direct shares at its position." : "computing\u2026";
      bars.replaceChildren();
      heat.el.style.display = "none";
      showDetail();
      return;
    }
    heat.el.style.display = "";
    const tol: number = model.get("summary")?.tolerance ?? 1e-4; // the function's own check (float32: 1e-4)
    const ok = s.error !== null && s.error <= tol;
    check.textContent = `${metric} at position ${p} "${tokens[p]}": model ${fmt(s.logit, 4)} \u00b7 sum of shares ${fmt(s.total, 4)} ` +
      `(relative difference ${s.error === null ? "\u2013" : s.error.toExponential(1)}, tolerance ${tol.toExponential(0)}) ${ok ? "\u2713 they agree" : "\u2717 they differ"}`;
    check.dataset.ok = String(ok);
    // one scale for the heads and the bars: a head's colour and a part's bar compare directly
    const m = Math.max(absMax(s.parts.values), absMax(s.heads.values), 1e-30);
    heat.draw(s.heads, {
      rowLabels: Array.from({ length: L }, (_, l) => `L${l}`), colLabels: Array.from({ length: H }, (_, i) => `H${i}`),
      scale: "div", vmax: m, maxSize: 360, label: `direct share of ${metric} (scale shared with the other parts' bars)`,
      onClick: (r, c) => f.commit({ selected_layer: r, selected_head: c }),
      describe: (r, c, v) => `layer ${r}, head ${c}: ${fmtSigned(v, 4)}`,
    });
    const sc = heat.scale;
    bars.replaceChildren(...components.map((name, i) => {
      const v = s.parts.values[i];
      return h("div", { class: "lw-part", "data-part": name, "data-value": String(v), style: "display:flex;gap:6px;align-items:center" },
        h("span", { style: "width:110px", text: name }), divergingBar(v, m, css(sc.color(v))), h("span", { text: fmtSigned(v, 4) }));
    }));
    showDetail();
    f.root.dataset.ready = "1";
  };

  const showDetail = () => {
    const l = fromSelection(model.get("selected_layer")), hd = fromSelection(model.get("selected_head"));
    Object.assign(detail.dataset, { layer: String(model.get("selected_layer")), head: String(model.get("selected_head")) });
    if (!shown || l < 0 || hd < 0 || l >= L || hd >= H) {
      heat.highlight(null, null, null);
      detail.textContent = shown ? "Click a head cell for its share." : "";
      return;
    }
    heat.highlight(l, hd, null);
    const v = at(shown.heads, l, hd);
    detail.textContent = `layer ${l}, head ${hd}: ${fmtSigned(v, 4)} of ${fmt(shown.total, 4)}`;
  };

  f.watch(["head_shares", "component_shares", "summary", "selected_token"], draw);
  f.watch(["selected_layer", "selected_head"], showDetail);
  heat.canvas.addEventListener(THEME_EVENT, () => draw()); // the bars' colours follow the theme's palette too
  draw();
  expose(el, { heat, strip });
  return () => f.cleanup();
}

export default { render };
