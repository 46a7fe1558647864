import { afterEach, describe, expect, it, vi } from "vitest";
import { Heatmap } from "../../src/lib/heatmap";
import patching, { noiseVmax } from "../../src/views/patching";
import { mouse } from "../helpers";
import { clickCell, colorbars, everyHeatmapHasColorbar, mount, pack } from "./fixtures";
import { quoted as q } from "../../src/lib/format";

const S = 2, L = 2, T = 3, H = 2, K = 2;
const top_tokens = ["a", "<b>b</b>", "c", "d", "e"];
// scores[s, l, t] = s + l / 10 + t / 100; top-1 of that cell: token (s + l + t) % 5 at probability 0.5
const scores = Array.from({ length: S * L * T }, (_, i) => Math.floor(i / (L * T)) + Math.floor((i % (L * T)) / T) / 10 + (i % T) / 100);
const topIndex = Array.from({ length: S * L * T }, (_, i) => [(Math.floor(i / (L * T)) + Math.floor((i % (L * T)) / T) + (i % T)) % 5, 4]).flat();

function state(extra: Record<string, unknown> = {}) {
  return {
    tokens: ["The", "cat", "sat"], clean_tokens: ["The", "dog", "sat"], sites: ["resid", "attn"], n_layers: L, n_heads: H,
    scores: pack(scores, [S, L, T]), head_scores: pack([0.1, 0.2, 0.3, 0.4], [L, H]),
    top_index: pack(topIndex, [S, L, T, K], "int32"), top_probs: pack(Array.from({ length: S * L * T * K }, (_, i) => (i % 2 ? 0.1 : 0.5)), [S, L, T, K]),
    head_top_index: pack([0, 1, 1, 2, 2, 3, 3, 4], [L, H, K], "int32"), head_top_probs: pack([0.9, 0.05, 0.8, 0.1, 0.7, 0.2, 0.6, 0.3], [L, H, K]),
    top_tokens,
    summary: { metric: "logit_diff", clean: 2, corrupted: -1, position: 2, changed: [1], clean_top: [["a", 0.5]], corrupted_top: [["<i>z</i>", 0.25]] },
    selected_site: null, selected_layer: null, selected_token: null, selected_head: null, ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("PatchingView", () => {
  it("draws one heatmap per site plus the heads, labelling changed tokens", () => {
    const m = mount(patching, state());
    expect(m.$$("canvas[data-testid^=heat-]").map((c) => c.dataset.testid)).toEqual(["heat-resid", "heat-attn", "heat-heads"]);
    const maps = m.parts.maps as Record<string, { matrix: { values: Float32Array } }>;
    expect(Array.from(maps.attn.matrix.values)).toEqual(scores.slice(L * T).map(Math.fround));
    expect(m.$("[data-testid=detail]").textContent).toContain("metric logit_diff: clean 2.0000, corrupted -1.0000 (read at position 2)");
    expect(m.$("[data-testid=detail]").textContent).toContain(`${q("<i>z</i>")} 25.0%`);
    expect(m.el.querySelector("i")).toBeNull();
    expect(m.texts()).toContain("dog\u2192cat"); // the changed token, clean -> corrupted, as a column label
    expect(everyHeatmapHasColorbar(m)).toBe(true);
    const bars = colorbars(m);
    expect(Object.keys(bars)).toEqual(["heat-resid-colorbar", "heat-attn-colorbar", "heat-heads-colorbar"]);
    for (const b of Object.values(bars)) expect(b).toEqual({ label: "normalised metric (0 = corrupted output, 1 = clean output)", kind: "div", min: -1, max: 1 });
  });

  it("labels the run, the patches' source and the colour bar's ends by direction, texts under the user's names", () => {
    const expected = {
      denoising: { run: "corrupted", source: "clean", token: "cat", verb: "restored" },
      // noising: Python sends the user's texts (tokens: corrupted text, clean_tokens: clean text) and values
      noising: { run: "clean", source: "corrupted", token: "dog", verb: "inserted" },
    };
    for (const [direction, e] of Object.entries(expected)) {
      document.body.innerHTML = "";
      const m = mount(patching, state({ direction }));
      for (const b of Object.values(colorbars(m))) expect(b.label).toBe(`normalised metric (0 = ${e.run} output, 1 = ${e.source} output)`);
      expect(m.$("[data-testid=legend]").textContent).toBe(`Each cell: the ${e.run} run with that one ${e.source} activation ${e.verb}, normalized metric: 0 (neutral) = ${e.run} output, 1 (red) = ${e.source} output, < 0 (blue) = further from the ${e.source} output. Click a cell for its output.`);
      expect(m.$("[data-testid=direction]").textContent).toBe(`${direction}: the ${e.run} run, patched from: ${e.source} run`);
      expect(m.texts()).toContain("dog\u2192cat"); // clean -> corrupted in both directions
      // the clean/corrupted lists and values are the user's texts' in both directions
      expect(m.$$("[data-testid=detail] b").map((b) => b.textContent)).toEqual(["clean", "corrupted"]);
      expect(m.$("[data-testid=detail]").textContent).toContain("metric logit_diff: clean 2.0000, corrupted -1.0000");
      // tooltip and title at the changed position name the run's token there
      const heat = (m.parts.maps as Record<string, Heatmap>).resid;
      mouse(heat.canvas, "mousemove", ...heat.cellCenter(1, 1));
      expect(heat.tip.textContent).toBe(`residual stream, layer 1, "dog\u2192cat" (1), patched from the ${e.source} run: 0.110`);
      clickCell(m, "heat-resid", 0, 1);
      expect(m.$("[data-testid=detail-title]").textContent).toBe(`patch residual stream, layer 0, position 1 "${e.token}": 0.0100`);
    }
  });

  it("clicking a site cell selects site, layer and token (no head)", () => {
    const m = mount(patching, state({ selected_head: 1 }));
    clickCell(m, "heat-attn", 1, 2);
    expect([m.model.get("selected_site"), m.model.get("selected_layer"), m.model.get("selected_token"), m.model.get("selected_head")])
      .toEqual(["attn", 1, 2, null]);
    expect(m.saves()).toBe(1);
    expect(m.$("[data-testid=detail-title]").textContent).toBe('patch attention output, layer 1, position 2 "sat": 1.1200');
    // top-1 of cell (attn, 1, 2): token (1 + 1 + 2) % 5 = 4
    expect(m.$$("[data-testid=detail] ol")[0].textContent).toBe(`${q("e")} 50.0%${q("e")} 10.0%`);
    expect(m.$("[data-testid=detail]").dataset).toMatchObject({ site: "attn", layer: "1", token: "2", head: "null" });
  });

  it("clicking a head cell selects site heads, layer and head (no token)", () => {
    const m = mount(patching, state({ selected_token: 1 }));
    clickCell(m, "heat-heads", 1, 0);
    expect([m.model.get("selected_site"), m.model.get("selected_layer"), m.model.get("selected_token"), m.model.get("selected_head")])
      .toEqual(["heads", 1, null, 0]);
    expect(m.$("[data-testid=detail-title]").textContent).toBe("patch attention heads (all positions), layer 1, head 0: 0.3000");
    expect(m.$$("[data-testid=detail] ol")[0].textContent).toBe(`${q("c")} 70.0%${q("d")} 20.0%`);
  });

  it("waits for the patched runs", () => {
    const m = mount(patching, state({ scores: null }));
    expect(m.el.textContent).toContain("computing patched runs\u2026");
    m.model.set("scores", state().scores);
    expect(m.$$("canvas[data-testid^=heat-]")).toHaveLength(3);
  });
});

describe("PatchingView near the noise", () => {
  it("warns and mutes the colours when clean and corrupted barely differ", () => {
    expect(noiseVmax(2, -1)).toEqual({ vmax: 1, rel: 1.5 });
    const { vmax, rel } = noiseVmax(-0.358, -0.347);
    expect(rel).toBeCloseTo(0.0307, 3);
    expect(vmax).toBeCloseTo(3.25, 2);
    const m = mount(patching, state({ summary: { metric: "logit_diff", clean: -0.358, corrupted: -0.347, position: 2, changed: [1], clean_top: [], corrupted_top: [] } }));
    const warn = m.$("[data-testid=noise-warning]");
    expect(warn.style.display).toBe("");
    expect(warn.textContent).toContain("differ by only 0.0110 (3.1% of their size)");
    expect(colorbars(m)["heat-resid-colorbar"]).toMatchObject({ max: vmax });
    const ok = mount(patching, state());
    expect(ok.$("[data-testid=noise-warning]").style.display).toBe("none");
    expect(colorbars(ok)["heat-resid-colorbar"]).toMatchObject({ max: 1 });
  });
});
