import { afterEach, describe, expect, it, vi } from "vitest";
import { Heatmap } from "../../src/lib/heatmap";
import direct_logit from "../../src/views/direct_logit";
import { clickCell, colorbars, everyHeatmapHasColorbar, mount, pack, stripSelected, stripTexts, XSS } from "./fixtures";

const L = 2, H = 3;
const tokens = ["<bos>", "The", XSS, "cat"];
const heads = [0.1, -0.2, 0.3, 1.5, -0.5, 0.25]; // [L, H]
const parts = [0.4, -0.1, 0.05]; // embeddings, L0 mlp, L1 mlp
const total = heads.concat(parts).reduce((a, b) => a + b, 0);

function state(extra: Record<string, unknown> = {}) {
  return {
    tokens, n_tokens: tokens.length, n_layers: L, n_heads: H, components: ["embeddings", "L0 mlp", "L1 mlp"],
    head_shares: { ...pack(heads, [L, H]), position: 3 }, component_shares: { ...pack(parts, [3]), position: 3 },
    summary: { metric: "logit(the) - mean logit", position: 3, token: "cat", logit: total, total, error: 1e-8 },
    selected_layer: null, selected_head: null, selected_token: 3, ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("DirectLogitView", () => {
  it("draws the heads as a diverging heatmap, the other parts as bars, and the check", () => {
    const m = mount(direct_logit, state());
    const heat = m.parts.heat as Heatmap;
    expect(Array.from(heat.matrix!.values)).toEqual(heads.map(Math.fround));
    expect(everyHeatmapHasColorbar(m)).toBe(true);
    expect(colorbars(m)["heat-heads-colorbar"]).toMatchObject({ kind: "div", label: "direct share of logit(the) - mean logit (scale shared with the other parts' bars)", max: 1.5 });
    expect(m.$$(".lw-part").map((e) => [e.dataset.part, Number(e.dataset.value)])).toEqual(
      [["embeddings", Math.fround(0.4)], ["L0 mlp", Math.fround(-0.1)], ["L1 mlp", Math.fround(0.05)]]);
    // bars grow from one zero axis, negative ones to the left, on the heads' scale (max 1.5 -> 70 px)
    expect(m.$$(".lw-part .lw-dbar").map((b) => [b.dataset.side, Number(b.dataset.width)])).toEqual([["right", 19], ["left", 5], ["right", 2]]);
    expect(m.$$(".lw-part .lw-zero")).toHaveLength(3);
    const check = m.$("[data-testid=check]");
    expect(check.textContent).toContain(`model ${total.toFixed(4)} \u00b7 sum of shares ${total.toFixed(4)}`);
    expect(check.dataset.ok).toBe("true");
    expect(stripSelected(m)).toBe(3);
  });

  it("escapes every token", () => {
    const m = mount(direct_logit, state({ selected_token: 2, head_shares: { ...pack(heads, [L, H]), position: 2 }, component_shares: { ...pack(parts, [3]), position: 2 } }));
    expect(stripTexts(m)).toEqual(tokens);
    expect(m.el.querySelector("img")).toBeNull();
    expect(m.$("[data-testid=check]").textContent).toContain(`position 2 "${XSS}"`);
  });

  it("a head click sets selected_layer and selected_head", () => {
    const m = mount(direct_logit, state());
    clickCell(m, "heat-heads", 1, 0);
    expect([m.model.get("selected_layer"), m.model.get("selected_head")]).toEqual([1, 0]);
    expect(m.saves()).toBe(1);
    expect(m.$("[data-testid=detail]").textContent).toBe(`layer 1, head 0: +1.5000 of ${total.toFixed(4)}`);
  });

  it("a token click sets selected_token and waits for that position's shares", () => {
    const m = mount(direct_logit, state());
    m.$$("[data-testid=tokens] .lw-tok")[1].dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(m.model.get("selected_token")).toBe(1);
    expect(stripSelected(m)).toBe(1);
    expect(m.$("[data-testid=check]").textContent).toBe("computing\u2026"); // the arrays are still position 3's
    m.model.set("head_shares", { ...pack(heads.map((v) => -v), [L, H]), position: 1 });
    m.model.set("component_shares", { ...pack(parts, [3]), position: 1 });
    expect(Array.from((m.parts.heat as Heatmap).matrix!.values)).toEqual(heads.map((v) => Math.fround(-v)));
  });

  it("in a static export, token clicks read the embedded positions", () => {
    const T = tokens.length;
    const all = { heads: pack(Array.from({ length: T * L * H }, (_, i) => i / 10), [T, L, H]), components: pack(Array(T * 3).fill(0.5), [T, 3]), logit: pack([1, 2, 3, 4], [T]) };
    const m = mount(direct_logit, state({ _export: all }));
    m.$$("[data-testid=tokens] .lw-tok")[0].dispatchEvent(new MouseEvent("click", { bubbles: true }));
    expect(Array.from((m.parts.heat as Heatmap).matrix!.values)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5].map(Math.fround));
    expect(m.$("[data-testid=check]").textContent).toContain("model 1.0000 \u00b7 sum of shares 3.0000");
    expect(m.$("[data-testid=check]").dataset.ok).toBe("false");
  });
});
