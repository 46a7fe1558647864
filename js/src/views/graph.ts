// GraphView: an attribution graph as a layered node-link diagram on canvas (token positions across,
// layers up: embeddings at the bottom, logits on top). Edges are coloured and sized by their weight
// on one diverging scale for the whole graph (its colour bar states the unit and range); hovering a
// node shows its own edges; the slider cuts nodes by cumulative influence in the browser (instant);
// click a node for its panel (shift-click picks nodes for a supernode); the intervene control asks
// Python for the model's real output with a feature or supernode set, next to the graph's prediction.
import { decode, Packed } from "../lib/buffers";
import { ColorBar } from "../lib/colorbar";
import { css, divergingScale, sequentialScale } from "../lib/colors";
import { h, localPoint, scrollCue, themeInk, THEME_EVENT, watchWidth, whenShown } from "../lib/dom";
import { fmt, fmtSigned, prob, quoted } from "../lib/format";
import { expose, frame, Model, NEEDS_KERNEL } from "../lib/frame";
import { BUCKETS, edgeGroups, GraphArrays, keptEdges, keptNodes, layoutGraph, Layout, maxAbs, nearestNode, rowOf } from "../lib/graphlayout";
import { max } from "../lib/ndarray";
import { TokenStrip } from "../lib/tokens";
import type { GraphViewState } from "../generated/state";

export const KIND_COLORS: Record<string, string> = {
  feature: "#2171b5", error: "#969696", embedding: "#31a354", logit: "#e6550d", bias: "#bdbdbd",
};
const GROUP_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e"];
const EDGE_UNIT = "edge weight (direct effect)";

function values(p: unknown): Float32Array {
  return decode(p as Packed)?.values ?? new Float32Array(0);
}

function render({ model, el }: { model: Model<GraphViewState>; el: HTMLElement }) {
  const f = frame(model, el, "graph");
  const slider = h("input", { type: "range", min: 0, max: 1, step: 0.01, "data-testid": "threshold", style: "width:160px" }) as HTMLInputElement;
  const sliderLabel = h("span", { class: "lw-muted", "data-testid": "threshold-label" });
  const counts = h("span", { class: "lw-muted", "data-testid": "counts" });
  f.toolbar.append(h("label", { text: "influence kept " }, slider), sliderLabel, counts);

  const base = h("canvas", { "data-testid": "graph-canvas", class: "lw-canvas", style: "cursor:pointer" }) as HTMLCanvasElement;
  const overlay = h("canvas", { "data-testid": "graph-overlay", style: "position:absolute;left:0;top:0;pointer-events:none" }) as HTMLCanvasElement;
  const tip = h("div", { class: "lw-muted", "data-testid": "tooltip", style: "position:absolute;display:none;pointer-events:none;background:var(--lw-bg);border:1px solid var(--lw-border);padding:1px 4px;white-space:pre;z-index:1" });
  const stage = h("div", { style: "position:relative;display:inline-block" }, base, overlay, tip);
  const scroll = h("div", { class: "lw-hscroll", "data-testid": "graph-scroll" }, stage);
  const cue = scrollCue(scroll, "token positions");
  const bar = new ColorBar("edge-colorbar");
  const legend = h("span", { class: "lw-muted", "data-testid": "legend" },
    ...Object.entries(KIND_COLORS).map(([k, c]) => h("span", { style: "margin-right:8px" },
      h("span", { style: `display:inline-block;width:8px;height:8px;border-radius:4px;background:${c};margin-right:3px` }), k)));
  const scores = h("span", { class: "lw-muted", "data-testid": "scores" });
  const panel = h("div", { "data-testid": "node-panel", style: "flex:1 1 340px;min-width:0" });
  const groups = h("div", { "data-testid": "supernodes", style: "flex:1 1 300px;min-width:0" });
  const intervene = h("div", { "data-testid": "intervene" });
  f.body.append(scroll, cue, h("div", { class: "lw-foot" }, bar.el, legend, scores), h("div", { class: "lw-row" }, panel, groups), intervene,
    h("div", { class: "lw-muted", text: "Hover a node for its edges; click it for its panel; shift-click nodes to group them into a supernode." }));

  let g: GraphArrays | null = null;
  let ids: string[] = [], labels: string[] = [], tokens: string[] = [], targets: string[] = [];
  let feature: Float32Array = new Float32Array(0), activation: Float32Array = new Float32Array(0);
  let shown: Uint8Array = new Uint8Array(0), edges: Uint32Array = new Uint32Array(0), vmax = 0;
  let lay: Layout | null = null;
  let width = 940, hover = -1, threshold = model.get("threshold") ?? 0.8;
  let requests = 0;

  const kindOf = (i: number) => (g ? g.kinds[g.kind[i]] : "");
  const name = (i: number): string => {
    const k = kindOf(i), lay_ = g!.layer[i], tok = tokens[g!.position[i]] ?? "";
    if (k === "feature") return `L${lay_}/${feature[i]} @ ${quoted(tok)}`;
    if (k === "error") return `error L${lay_} @ ${quoted(tok)}`;
    if (k === "embedding") return `embedding ${quoted(tok)}`;
    if (k === "logit") return `logit ${quoted(targets[logitIndex(i)] ?? String(feature[i]))}`;
    return `bias ${ids[i]}`;
  };
  const logitIndex = (i: number) => { let j = 0; for (let r = 0; r < i; r++) if (kindOf(r) === "logit") j++; return j; };

  const load = () => {
    const kind = decode(model.get("node_kind") as Packed);
    if (!kind) { g = null; return; }
    ids = model.get("node_ids") || []; labels = model.get("node_labels") || [];
    tokens = model.get("tokens") || []; targets = model.get("target_tokens") || [];
    feature = values(model.get("node_feature")); activation = values(model.get("node_activation"));
    g = {
      kind: kind.values, kinds: model.get("kinds"), layer: values(model.get("node_layer")), position: values(model.get("node_position")),
      influence: values(model.get("node_influence")), src: values(model.get("edge_source")), dst: values(model.get("edge_target")),
      weight: values(model.get("edge_weight")), nLayers: model.get("n_layers"), nTokens: tokens.length,
    };
    vmax = maxAbs(g.weight, Uint32Array.from({ length: g.weight.length }, (_, i) => i));
    bar.set(divergingScale(vmax, EDGE_UNIT));
    const sc = model.get("scores");
    scores.textContent = `replacement score ${fmt(sc.replacement)} \u00b7 completeness ${fmt(sc.completeness)}`;
  };

  const superOf = (): Map<number, number> => { // node row -> supernode index (colour)
    const out = new Map<number, number>();
    const at = new Map(ids.map((id, i) => [id, i]));
    (model.get("supernodes") || []).forEach((s, k) => s.slice(1).forEach((id) => { const r = at.get(id); if (r !== undefined) out.set(r, k); }));
    return out;
  };

  const sizeCanvas = (c: HTMLCanvasElement, w: number, ht: number) => {
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    c.width = Math.round(w * dpr); c.height = Math.round(ht * dpr);
    c.style.width = `${w}px`; c.style.height = `${ht}px`;
    const ctx = c.getContext("2d");
    ctx?.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  };

  const strokeEdges = (ctx: CanvasRenderingContext2D, list: ArrayLike<number>, fade: number) => {
    const scale = divergingScale(vmax);
    edgeGroups(g!.weight, list, vmax).forEach((group, k) => {
      if (!group.length) return;
      const bin = k % BUCKETS, frac = (bin + 0.5) / BUCKETS, sign = k >= BUCKETS ? 1 : -1;
      ctx.strokeStyle = css(scale.color(sign * frac * vmax));
      ctx.globalAlpha = fade * (0.15 + 0.85 * frac);
      ctx.lineWidth = 0.5 + 2.5 * frac;
      ctx.beginPath();
      for (const e of group) {
        const s = g!.src[e], t = g!.dst[e];
        ctx.moveTo(lay!.x[s], lay!.y[s]);
        ctx.lineTo(lay!.x[t], lay!.y[t]);
      }
      ctx.stroke();
    });
    ctx.globalAlpha = 1;
  };

  const draw = () => {
    if (!g) { counts.textContent = model.get("done") ? "empty graph" : "computing the graph\u2026"; return; }
    shown = keptNodes(g, threshold);
    edges = keptEdges(g, shown);
    lay = layoutGraph(g, shown, width);
    let nShown = 0;
    for (let i = 0; i < shown.length; i++) nShown += shown[i];
    counts.textContent = `${nShown} of ${shown.length} nodes, ${edges.length} of ${g.src.length} edges shown`;
    sliderLabel.textContent = `${Math.round(threshold * 100)}%`;
    slider.value = String(threshold);
    const ctx = sizeCanvas(base, lay.width, lay.height);
    sizeCanvas(overlay, lay.width, lay.height);
    if (!ctx) return;
    const ink = themeInk(base);
    ctx.clearRect(0, 0, lay.width, lay.height);
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    // rows: layer names and their bands
    const L = g.nLayers;
    for (let r = 0; r < L + 2; r++) {
      ctx.fillStyle = ink.line;
      ctx.fillRect(lay.left, lay.rowTop[r] + lay.rowH[r] - 0.5, lay.width - lay.left, 0.5);
      ctx.fillStyle = ink.muted;
      ctx.textAlign = "left";
      ctx.fillText(r === 0 ? "logits" : r === L + 1 ? "embed" : `L${L - r}`, 4, lay.rowTop[r] + lay.rowH[r] / 2);
    }
    // the prompt's tokens under their columns (clipped to the column)
    ctx.textAlign = "center";
    tokens.forEach((t, p) => {
      const cx = lay!.left + (p + 0.5) * lay!.colW;
      ctx.save();
      ctx.beginPath(); ctx.rect(cx - lay!.colW / 2 + 1, lay!.height - 34, lay!.colW - 2, 30); ctx.clip();
      ctx.fillStyle = ink.fg;
      ctx.fillText(t, cx, lay!.height - 24);
      ctx.fillStyle = ink.muted;
      ctx.fillText(String(p), cx, lay!.height - 10);
      ctx.restore();
    });
    strokeEdges(ctx, edges, 1);
    const sup = superOf();
    const picked = new Set(model.get("selected_nodes") || []);
    const sel = model.get("selected_node");
    for (let i = 0; i < shown.length; i++) {
      if (!shown[i]) continue;
      const x = lay.x[i], y = lay.y[i], k = kindOf(i);
      ctx.fillStyle = KIND_COLORS[k] ?? ink.fg;
      ctx.beginPath();
      if (k === "error" || k === "embedding" || k === "bias") ctx.rect(x - 3, y - 3, 6, 6); else ctx.arc(x, y, 3.2, 0, 2 * Math.PI);
      ctx.fill();
      const ring = i === sel ? "#d62728" : picked.has(i) ? "#ff7f0e" : sup.has(i) ? GROUP_COLORS[sup.get(i)! % GROUP_COLORS.length] : "";
      if (ring) {
        ctx.strokeStyle = ring; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(x, y, 5.5, 0, 2 * Math.PI); ctx.stroke();
      }
      if (k === "logit") { // its token above it
        ctx.fillStyle = ink.fg;
        ctx.textAlign = "center";
        ctx.fillText(targets[logitIndex(i)] ?? "", x, lay.rowTop[rowOf(g.layer[i], L)] + 4);
      }
    }
    base.dataset.nodes = String(nShown);
    showHover();
  };

  const showHover = () => {
    const ctx = overlay.getContext("2d");
    if (!ctx || !lay || !g) return;
    ctx.clearRect(0, 0, lay.width, lay.height);
    base.style.opacity = hover >= 0 ? "0.35" : "1";
    if (hover < 0) { tip.style.display = "none"; return; }
    const mine: number[] = [];
    for (const e of edges) if (g.src[e] === hover || g.dst[e] === hover) mine.push(e);
    strokeEdges(ctx, mine, 1);
    ctx.strokeStyle = themeInk(base).fg; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(lay.x[hover], lay.y[hover], 6, 0, 2 * Math.PI); ctx.stroke();
    tip.textContent = `${name(hover)}${labels[hover] ? `\n${labels[hover]}` : ""}\nactivation ${fmt(activation[hover])} \u00b7 ${mine.length} edges`;
    tip.style.left = `${lay.x[hover] + 10}px`;
    tip.style.top = `${lay.y[hover] + 8}px`;
    tip.style.display = "";
  };

  // -- the selected node's panel --------------------------------------------------------------
  const edgeList = (title: string, rows: number[], other: (e: number) => number) => {
    const top = rows.sort((a, b) => Math.abs(g!.weight[b]) - Math.abs(g!.weight[a])).slice(0, 8);
    return h("div", {}, h("div", { class: "lw-muted", text: `${title} (${rows.length})` }),
      ...top.map((e) => {
        const item = h("div", { class: "lw-more", style: "text-decoration:none", "data-testid": "edge-item", text: `${fmtSigned(g!.weight[e])}  ${name(other(e))}` });
        item.addEventListener("click", () => f.commit({ selected_node: other(e) }));
        return item;
      }));
  };

  const drawPanel = () => {
    const r = model.get("selected_node");
    if (r === null || r === undefined || !g) { panel.replaceChildren(h("div", { class: "lw-muted", text: "No node selected." })); return; }
    const p = model.get("feature_panel");
    const ins: number[] = [], outs: number[] = [];
    for (let e = 0; e < g.src.length; e++) { if (g.dst[e] === r) ins.push(e); if (g.src[e] === r) outs.push(e); }
    const parts: HTMLElement[] = [h("div", { class: "lw-title", "data-testid": "node-title", text: `${name(r)} \u00b7 ${ids[r]}` })];
    if (labels[r]) parts.push(h("div", { "data-testid": "node-label", text: labels[r] }));
    parts.push(h("div", { class: "lw-muted", text: `activation ${fmt(activation[r])} \u00b7 cumulative influence ${fmt(g.influence[r])}` }));
    parts.push(h("div", { class: "lw-row" }, edgeList("strongest inputs", ins, (e) => g!.src[e]), edgeList("strongest outputs", outs, (e) => g!.dst[e])));
    if (p.row === r && p.over_text) {
      const w = Float32Array.from(p.over_text);
      const strip = new TokenStrip(tokens, { testid: "feature-tokens" });
      strip.paint(w, sequentialScale(max(w), `activation of ${name(r)}`));
      strip.select(g.position[r]);
      parts.push(h("div", { class: "lw-muted", text: "activation over the text" }), strip.el);
    }
    if (p.row === r && p.logits) {
      const list = (xs: [string, number][]) => h("ol", { style: "margin:2px 0 0 18px;padding:0" }, ...xs.map(([t, v]) => h("li", { text: `${quoted(t)} ${fmt(v)}` })));
      parts.push(h("div", { class: "lw-row", "data-testid": "logit-effects" },
        h("div", {}, h("div", { class: "lw-muted", text: "promotes" }), list(p.logits.promoted)),
        h("div", {}, h("div", { class: "lw-muted", text: "suppresses" }), list(p.logits.suppressed))));
    }
    if (p.row === r && p.contexts) {
      parts.push(h("div", { "data-testid": "contexts" }, h("div", { class: "lw-muted", text: "top-activating contexts (corpus)" }),
        ...p.contexts.map((c) => h("div", { style: "font-size:12px" },
          h("span", { class: "lw-muted", text: `${fmt(c.activation)} ` }),
          ...c.tokens.map((t, i) => h("span", { text: t, style: i === c.at ? "font-weight:bold;text-decoration:underline" : "" }))))));
    }
    if (p.row === r && p.why) parts.push(h("div", { class: "lw-muted", text: p.why }));
    panel.replaceChildren(...parts);
  };

  // -- supernodes -----------------------------------------------------------------------------
  const nameInput = h("input", { class: "lw-select", placeholder: "supernode name", "data-testid": "group-name", style: "width:140px" }) as HTMLInputElement;
  const groupBtn = h("button", { class: "lw-btn", text: "group", "data-testid": "group" }) as HTMLButtonElement;
  groupBtn.addEventListener("click", () => {
    const picked = model.get("selected_nodes") || [];
    if (!picked.length) return;
    const label = nameInput.value.trim() || `group ${(model.get("supernodes") || []).length + 1}`;
    const rest = (model.get("supernodes") || []).filter((s) => s[0] !== label);
    f.commit({ supernodes: [...rest, [label, ...picked.map((i) => ids[i])]], selected_nodes: [] });
    nameInput.value = "";
  });

  const factorControl = (label: string) => {
    const input = h("input", { class: "lw-select", type: "number", step: 0.5, value: 0, style: "width:56px", title: "multiply every member's activation by", "data-testid": "factor" }) as HTMLInputElement;
    const btn = h("button", { class: "lw-btn", text: "\u00d7 set", "data-testid": "set-factor" }) as HTMLButtonElement;
    btn.addEventListener("click", () => ask(label, Number(input.value)));
    gate(btn);
    return [input, btn];
  };

  const drawGroups = () => {
    const picked = model.get("selected_nodes") || [];
    const at = new Map(ids.map((id, i) => [id, i]));
    const mine = (model.get("supernodes") || []).map((s, k) => {
      const sw = h("span", { style: `display:inline-block;width:9px;height:9px;border-radius:5px;background:${GROUP_COLORS[k % GROUP_COLORS.length]};margin-right:4px` });
      const pick = h("button", { class: "lw-btn", text: "select" });
      pick.addEventListener("click", () => f.commit({ selected_nodes: s.slice(1).map((id) => at.get(id)!).filter((i) => i !== undefined) }));
      const del = h("button", { class: "lw-btn", text: "\u00d7", title: "remove this supernode" });
      del.addEventListener("click", () => f.commit({ supernodes: (model.get("supernodes") || []).filter((x) => x[0] !== s[0]) }));
      return h("div", { "data-testid": "supernode", style: "display:flex;gap:4px;align-items:center" }, sw,
        h("span", { text: `${s[0]} (${s.length - 1})` }), pick, del, ...factorControl(s[0]));
    });
    const sugg = (model.get("suggested") || []).map((s) => {
      const add = h("button", { class: "lw-btn", text: "add" });
      add.addEventListener("click", () => f.commit({ supernodes: [...(model.get("supernodes") || []).filter((x) => x[0] !== s[0]), s] }));
      return h("div", { "data-testid": "suggested", style: "display:flex;gap:4px;align-items:center" }, h("span", { text: `${s[0]} (${s.length - 1})` }), add);
    });
    groups.replaceChildren(h("div", { class: "lw-title", text: "supernodes" }),
      h("div", { style: "display:flex;gap:4px;align-items:center;flex-wrap:wrap" }, h("span", { class: "lw-muted", "data-testid": "picked", text: `${picked.length} picked` }), nameInput, groupBtn),
      ...mine, h("div", { class: "lw-muted", text: sugg.length ? "suggested (shared decoder direction / edge profile)" : "no suggested groups" }), ...sugg);
  };

  // -- interventions --------------------------------------------------------------------------
  const gate = (btn: HTMLButtonElement) => {
    if (f.exported) f.disable(btn, NEEDS_KERNEL, false);
    else if (!model.get("can_intervene")) f.disable(btn, "interventions need the model: GraphView(session, graph, transcoders)", false);
  };
  const ask = (target: number | string, value: number) => {
    if (!Number.isFinite(value)) return;
    requests = Math.max(requests, model.get("intervene_request").n ?? 0) + 1;
    f.commit({ intervene_request: { target, value, n: requests } });
  };
  const valueInput = h("input", { class: "lw-select", type: "number", step: 0.5, value: 0, style: "width:70px", "data-testid": "intervene-value" }) as HTMLInputElement;
  const setBtn = h("button", { class: "lw-btn", text: "set activation", "data-testid": "intervene-set" }) as HTMLButtonElement;
  setBtn.addEventListener("click", () => {
    const r = model.get("selected_node");
    if (r !== null && r !== undefined && kindOf(r) === "feature") ask(r, Number(valueInput.value));
  });
  const result = h("div", { "data-testid": "intervention" });
  const drawIntervention = () => {
    const r = model.get("selected_node");
    const isFeature = r !== null && r !== undefined && kindOf(r) === "feature";
    setBtn.disabled = !isFeature || setBtn.dataset.why !== undefined;
    const it = model.get("intervention");
    const parts: HTMLElement[] = [];
    if (it.targets) {
      const tableBox = h("div", { class: "lw-hscroll" }, h("table", { class: "lw-table", "data-testid": "intervention-table" },
        h("tr", {}, ...["target logit", "before", "after (model)", "graph predicted", "change (model)", "change (graph)"].map((c) => h("th", { text: c }))),
        ...it.targets.map((t, i) => h("tr", {}, h("td", { text: quoted(t) }), h("td", { text: fmt(it.before[i]) }),
          h("td", { text: fmt(it.after[i]) }), h("td", { text: fmt(it.predicted[i]) }),
          h("td", { text: fmtSigned(it.after[i] - it.before[i]) }), h("td", { text: fmtSigned(it.predicted[i] - it.before[i]) })))));
      parts.push(h("div", { class: "lw-muted", text: `set ${it.ids.join(", ")} to ${it.new.map((v) => fmt(v)).join(", ")} (was ${it.old.map((v) => fmt(v)).join(", ")})` }),
        tableBox, scrollCue(tableBox, "columns"));
      const tops = (title: string, xs: [string, number][]) => h("div", {}, h("div", { class: "lw-muted", text: title }),
        h("ol", { style: "margin:2px 0 0 18px;padding:0" }, ...xs.map(([t, p]) => h("li", { text: `${quoted(t)} ${prob(p)}` }))));
      parts.push(h("div", { class: "lw-row" }, tops("top next tokens before", it.top_before), tops("after (model)", it.top_after)),
        h("div", { class: "lw-muted", text: it.note }));
    }
    result.replaceChildren(...parts);
  };
  gate(setBtn);
  intervene.append(h("div", { style: "display:flex;gap:6px;align-items:center;flex-wrap:wrap" },
    h("span", { class: "lw-title", text: "intervene" }), h("span", { class: "lw-muted", text: "selected feature's activation" }), valueInput, setBtn), result);

  // -- events ---------------------------------------------------------------------------------
  slider.addEventListener("input", () => { threshold = Number(slider.value); draw(); });
  slider.addEventListener("change", () => f.commit({ threshold: Number(slider.value) }));
  base.addEventListener("mousemove", (e) => {
    if (!lay) return;
    const i = nearestNode(lay, ...localPoint(e, base));
    if (i !== hover) { hover = i; showHover(); }
  });
  base.addEventListener("mouseleave", () => { hover = -1; showHover(); });
  base.addEventListener("click", (e) => {
    if (!lay) return;
    const i = nearestNode(lay, ...localPoint(e, base));
    if (i < 0) return;
    if (e.shiftKey) {
      const cur = model.get("selected_nodes") || [];
      f.commit({ selected_nodes: cur.includes(i) ? cur.filter((x) => x !== i) : [...cur, i] });
    } else f.commit({ selected_node: i });
  });
  base.addEventListener(THEME_EVENT, () => draw());

  f.watch(["node_kind", "node_ids", "node_labels", "node_layer", "node_position", "node_feature", "node_activation", "node_influence",
    "edge_source", "edge_target", "edge_weight", "tokens", "target_tokens", "scores", "done"], () => { load(); draw(); drawPanel(); drawGroups(); });
  f.watch(["threshold"], () => { threshold = model.get("threshold"); draw(); });
  f.watch(["selected_node", "feature_panel"], () => { draw(); drawPanel(); drawIntervention(); });
  f.watch(["selected_nodes", "supernodes", "suggested"], () => { draw(); drawGroups(); });
  f.watch(["intervention", "can_intervene"], drawIntervention);
  const stopWidth = watchWidth(f.root, (w) => { width = Math.max(200, w - 16); draw(); });
  load(); draw(); drawPanel(); drawGroups(); drawIntervention();
  whenShown(base, draw); // the theme's ink once the canvas is in the page
  f.root.dataset.ready = "1";
  expose(el, { layout: () => lay, shown: () => shown, edges: () => edges, kindOf, draw, slider });
  return () => { stopWidth(); f.cleanup(); };
}

export default { render };
