import { afterEach, describe, expect, it, vi } from "vitest";
import { edgeGroups, keptEdges, keptNodes, layoutGraph, MIN_COL, nearestNode } from "../src/lib/graphlayout";
import graph from "../src/views/graph";
import { choose, colorbars, mount, Mounted, pack, XSS } from "./views/fixtures";

const KINDS = ["feature", "error", "embedding", "logit", "bias"];
// rows: 0-2 embeddings, 3 f0 (L0 @1), 4 f1 (L1 @2), 5 f2 (L1 @2), 6 error (L0 @2), 7 logit
const kind = [2, 2, 2, 0, 0, 0, 1, 3];
const layer = [-1, -1, -1, 0, 1, 1, 0, 2];
const position = [0, 1, 2, 1, 2, 2, 2, 2];
const influence = [0.9, 0.6, 0.97, 0.2, 0.5, 0.95, 0.7, 0];
const edges = { src: [1, 3, 4, 5, 6], dst: [3, 4, 7, 7, 4], w: [0.9, 0.5, 1.2, -0.3, 0.1] };

function state(extra: Record<string, unknown> = {}) {
  const n = kind.length;
  return {
    tokens: ["<bos>", XSS, " b"], n_layers: 2, n_nodes: n, kinds: KINDS,
    node_ids: ["E_1_0", "E_2_1", "E_3_2", "0_11_1", "1_5_2", "1_6_2", "0_0_2", "3_9_2"],
    node_kind: pack(kind, [n], "uint16"), node_layer: pack(layer, [n], "int32"), node_position: pack(position, [n], "int32"),
    node_feature: pack([1, 2, 3, 11, 5, 6, -1, 9], [n], "int32"), node_activation: pack([0, 0, 0, 1.5, 2, 0.5, 0, 3], [n]),
    node_influence: pack(influence, [n]), node_labels: ["", "", "", XSS, "", "", "", ""],
    edge_source: pack(edges.src, [5], "int32"), edge_target: pack(edges.dst, [5], "int32"), edge_weight: pack(edges.w, [5]),
    target_tokens: [XSS], target_probs: [0.4], scores: { replacement: 0.8, completeness: null }, threshold: 0.8,
    selected_node: null, selected_nodes: [], supernodes: [], suggested: [["L1 pair", "1_5_2", "1_6_2"]], feature_panel: {},
    can_intervene: true, intervene_request: {}, intervention: {}, done: true, ...extra,
  };
}

type Lay = { x: Float32Array; y: Float32Array };
const layoutOf = (m: Mounted) => (m.parts.layout as () => Lay)();
const shownOf = (m: Mounted) => Array.from((m.parts.shown as () => Uint8Array)());
function clickNode(m: Mounted, i: number, shiftKey = false) {
  const lay = layoutOf(m);
  m.$("[data-testid=graph-canvas]").dispatchEvent(new MouseEvent("click", { clientX: lay.x[i], clientY: lay.y[i], shiftKey, bubbles: true }));
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; delete (window as unknown as Record<string, unknown>).__xss; });

describe("graph layout", () => {
  const g = { kind, kinds: KINDS, layer, position, influence, src: edges.src, dst: edges.dst, weight: edges.w, nLayers: 2, nTokens: 3 };
  it("keeps embeddings and logits always, features and errors up to the threshold", () => {
    expect(Array.from(keptNodes(g, 0.8))).toEqual([1, 1, 1, 1, 1, 0, 1, 1]);
    expect(Array.from(keptNodes(g, 0.3))).toEqual([1, 1, 1, 1, 0, 0, 0, 1]);
    expect(Array.from(keptEdges(g, keptNodes(g, 0.3)))).toEqual([0]); // only emb1 -> f0 has both ends
    expect(Array.from(keptEdges(g, keptNodes(g, 1)))).toEqual([4, 3, 1, 0, 2]); // by |weight|, strongest last
  });
  it("puts logits on top, embeddings at the bottom, positions across; hits the nearest node", () => {
    const lay = layoutGraph(g, keptNodes(g, 1), 400);
    expect(lay.y[7]).toBeLessThan(lay.y[4]);
    expect(lay.y[4]).toBeLessThan(lay.y[3]);
    expect(lay.y[3]).toBeLessThan(lay.y[0]);
    expect(lay.x[0]).toBeLessThan(lay.x[1]);
    expect(lay.x[4]).not.toBe(lay.x[5]); // two nodes of one cell side by side
    expect(lay.y[4]).toBe(lay.y[5]);
    expect(nearestNode(lay, lay.x[3] + 1, lay.y[3] - 1)).toBe(3);
    expect(nearestNode(lay, 1, 1)).toBe(-1);
    expect(lay.width).toBeLessThanOrEqual(400);
    const long = { ...g, nTokens: 100 };
    expect(layoutGraph(long, keptNodes(long, 1), 800).width).toBeGreaterThanOrEqual(100 * MIN_COL); // scrolls
  });
  it("puts the bias node beside the logit row, never on a node (issue 31)", () => {
    // the fixture plus a bias node (index 8) at the logits' layer and position, as attribution.py makes it
    const b = { ...g, kind: [...kind, 4], layer: [...layer, 2], position: [...position, 2], influence: [...influence, 0] };
    const lay = layoutGraph(b, keptNodes(b, 1), 400);
    const plain = layoutGraph(g, keptNodes(g, 1), 400);
    expect(lay.y[8]).toBe(lay.y[7]); // on the logit row
    expect(lay.x[8]).toBeGreaterThan(lay.left + 3 * lay.colW); // right of the last column
    expect(lay.x[7]).toBe(lay.left + 2.5 * lay.colW); // the logit alone, centred in its cell
    expect(lay.width).toBeLessThanOrEqual(400);
    expect(lay.x[8] + 6).toBeLessThanOrEqual(lay.width);
    const shown = keptNodes(b, 1);
    for (let i = 0; i < 9; i++) for (let j = i + 1; j < 9; j++) {
      if (!shown[i] || !shown[j]) continue;
      const d = Math.hypot(lay.x[i] - lay.x[j], lay.y[i] - lay.y[j]);
      expect(d).toBeGreaterThan(2 * 3.2); // node circles (r 3.2) never overlap
      if (i === 8 || j === 8) expect(d).toBeGreaterThan(2 * 5.5); // nor the bias node's selection ring
    }
    expect(nearestNode(lay, lay.x[8], lay.y[8])).toBe(8);
    expect(nearestNode(lay, lay.x[7], lay.y[7])).toBe(7);
    expect(plain.x[7]).toBe(plain.left + 2.5 * plain.colW);
  });
  it("groups edges by sign and strength", () => {
    const groups = edgeGroups(edges.w, [0, 1, 2, 3, 4], 1.2);
    expect(groups[8 + 7]).toEqual([2]); // the strongest positive
    expect(groups[2]).toEqual([3]); // -0.3 of 1.2: a quarter, negative
    expect(groups.flat().sort()).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("GraphView", () => {
  it("escapes node labels and tokens", () => {
    const m = mount(graph, state());
    clickNode(m, 3);
    expect(m.$("[data-testid=node-label]").textContent).toBe(XSS);
    expect(m.$("[data-testid=node-title]").textContent).toContain(JSON.stringify(XSS));
    m.$("[data-testid=graph-canvas]").dispatchEvent(new MouseEvent("mousemove", { clientX: layoutOf(m).x[7], clientY: layoutOf(m).y[7], bubbles: true }));
    expect(m.$("[data-testid=tooltip]").textContent).toContain(JSON.stringify(XSS));
    expect(m.$$("img")).toHaveLength(0);
    expect((window as unknown as Record<string, unknown>).__xss).toBeUndefined();
    expect(m.texts()).toContain(XSS); // drawn on the canvas as text
  });

  it("the slider hides nodes below the threshold at once, and syncs it", () => {
    const m = mount(graph, state());
    expect(shownOf(m)).toEqual([1, 1, 1, 1, 1, 0, 1, 1]);
    expect(m.$("[data-testid=counts]").textContent).toBe("7 of 8 nodes, 4 of 5 edges shown");
    const saves = m.saves();
    choose(m.$<HTMLInputElement>("[data-testid=threshold]"), "0.3", "input");
    expect(shownOf(m)).toEqual([1, 1, 1, 1, 0, 0, 0, 1]);
    expect(Number.isNaN(layoutOf(m).x[4])).toBe(true);
    expect(m.saves()).toBe(saves); // drawing needs no round trip
    choose(m.$<HTMLInputElement>("[data-testid=threshold]"), "0.3", "change");
    expect(m.model.get("threshold")).toBeCloseTo(0.3);
  });

  it("a click sends selected_node; shift-click picks nodes; group makes a supernode", () => {
    const m = mount(graph, state());
    clickNode(m, 4);
    expect(m.model.get("selected_node")).toBe(4);
    clickNode(m, 3, true);
    clickNode(m, 4, true);
    expect(m.model.get("selected_nodes")).toEqual([3, 4]);
    choose(m.$<HTMLInputElement>("[data-testid=group-name]"), "my <b>group</b>", "input");
    m.$("[data-testid=group]").click();
    expect(m.model.get("supernodes")).toEqual([["my <b>group</b>", "0_11_1", "1_5_2"]]);
    expect(m.model.get("selected_nodes")).toEqual([]);
    expect(m.$("[data-testid=supernode]").textContent).toContain("my <b>group</b> (2)");
    expect(m.$$("b")).toHaveLength(0);
    (m.$("[data-testid=suggested] button") as HTMLButtonElement).click();
    expect(m.model.get("supernodes").map((s: string[]) => s[0])).toEqual(["my <b>group</b>", "L1 pair"]);
  });

  it("the edge colour bar states its unit and the shared range", () => {
    const m = mount(graph, state());
    const bar = () => colorbars(m)["edge-colorbar"];
    expect(bar().kind).toBe("div");
    expect(bar().max).toBeCloseTo(1.2, 6);
    expect(bar().min).toBeCloseTo(-1.2, 6);
    expect(bar().label).toContain("direct effect");
    choose(m.$<HTMLInputElement>("[data-testid=threshold]"), "0.1", "input");
    expect(bar().max).toBeCloseTo(1.2, 6); // one scale for the graph: not rescaled by pruning
  });

  it("intervene: the selected feature's request goes to Python; the result is shown with its prediction", () => {
    const m = mount(graph, state());
    expect((m.$("[data-testid=intervene-set]") as HTMLButtonElement).disabled).toBe(true); // nothing selected
    clickNode(m, 4);
    choose(m.$<HTMLInputElement>("[data-testid=intervene-value]"), "0", "input");
    m.$("[data-testid=intervene-set]").click();
    expect(m.model.get("intervene_request")).toEqual({ target: 4, value: 0, n: 1 });
    m.model.set("supernodes", [["pair", "1_5_2", "1_6_2"]]);
    choose(m.$<HTMLInputElement>("[data-testid=factor]"), "-2", "input");
    m.$("[data-testid=set-factor]").click();
    expect(m.model.get("intervene_request")).toEqual({ target: "pair", value: -2, n: 2 });
    m.model.set("intervention", { ids: ["1_5_2"], old: [2], new: [0], targets: [XSS], before: [3], after: [1.5], predicted: [1.2],
      top_before: [[XSS, 0.4]], top_after: [[" c", 0.00004]], note: "linear" });
    const table = m.$("[data-testid=intervention-table]");
    expect(table.textContent).toContain("1.500");
    expect(table.textContent).toContain("-1.800");
    expect(m.$("[data-testid=intervention]").textContent).toContain("4.0e-5");
    expect(m.$$("img")).toHaveLength(0);
  });

  it("without the model (or in an export) the intervene control says why", () => {
    const m = mount(graph, state({ can_intervene: false }));
    clickNode(m, 4);
    const btn = m.$<HTMLButtonElement>("[data-testid=intervene-set]");
    expect(btn.disabled).toBe(true);
    expect(btn.title).toContain("need the model");
  });

  it("shows the Python panel: activation over the text and logit effects, escaped", () => {
    const m = mount(graph, state());
    clickNode(m, 3);
    m.model.set("feature_panel", { row: 3, over_text: [0, 1.5, 0.2], logits: { promoted: [[XSS, 1]], suppressed: [["x", -1]] } });
    expect(m.$$("[data-testid=feature-tokens] .lw-tok").map((e) => e.textContent)).toEqual(["<bos>", XSS, " b"]);
    expect(m.$("[data-testid=logit-effects]").textContent).toContain(JSON.stringify(XSS));
    expect(m.$$("img")).toHaveLength(0);
  });

  it("first frame at 1000 nodes and 20k edges", () => {
    const n = 1000, E = 20000, T = 24, L = 6;
    let seed = 1;
    const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const k: number[] = [], lay: number[] = [], pos: number[] = [], infl: number[] = [];
    for (let i = 0; i < n; i++) {
      const emb = i < T, logit = i >= n - 5;
      k.push(emb ? 2 : logit ? 3 : 0); lay.push(emb ? -1 : logit ? L : Math.floor(rnd() * L));
      pos.push(emb ? i : logit ? T - 1 : Math.floor(rnd() * T)); infl.push(emb || logit ? 0 : rnd());
    }
    const src: number[] = [], dst: number[] = [], w: number[] = [];
    while (src.length < E) {
      const a = Math.floor(rnd() * n), b = Math.floor(rnd() * n);
      if (lay[a] < lay[b]) { src.push(a); dst.push(b); w.push(rnd() * 2 - 1); }
    }
    const big = state({
      tokens: Array.from({ length: T }, (_, i) => `t${i}`), n_layers: L, n_nodes: n, node_ids: k.map((_, i) => `n${i}`),
      node_kind: pack(k, [n], "uint16"), node_layer: pack(lay, [n], "int32"), node_position: pack(pos, [n], "int32"),
      node_feature: pack(k.map((_, i) => i), [n], "int32"), node_activation: pack(k.map(() => 1), [n]), node_influence: pack(infl, [n]),
      node_labels: k.map(() => ""), edge_source: pack(src, [E], "int32"), edge_target: pack(dst, [E], "int32"), edge_weight: pack(w, [E]),
      target_tokens: ["a", "b", "c", "d", "e"], target_probs: [0.2, 0.2, 0.2, 0.2, 0.2], threshold: 1, suggested: [],
    });
    const t0 = performance.now();
    const m = mount(graph, big);
    const ms = performance.now() - t0;
    console.log(`[bench] GraphView first frame, ${n} nodes / ${E} edges (happy-dom, recorded canvas): ${ms.toFixed(0)} ms`);
    expect(m.$("[data-testid=counts]").textContent).toBe(`${n} of ${n} nodes, ${E} of ${E} edges shown`);
    expect(ms).toBeLessThan(1000);
  });
});
