import { afterEach, describe, expect, it, vi } from "vitest";
import { MISSING } from "../../src/lib/format";
import attribution, { outputLabel, targetNote } from "../../src/views/attribution";
import { quoted as q } from "../../src/lib/format";
import { choose, clickCell, colorbars, everyHeatmapHasColorbar, mount, Mounted, pack, stripSelected, stripTexts, stripWeights, XSS } from "./fixtures";
import { css, div } from "../../src/lib/colors";

// "The unbelievable cat": 5 tokens in 3 words
const tokens = ["The", " un", "believ", XSS, " cat"];
const words = ["The", "unbelievable", "cat"];
const groups = [0, 1, 1, 1, 2];
const scores1 = [0.5, -1, 0.25, 0.25, 2];

function state(K = 1, extra: Record<string, unknown> = {}) {
  const rows = Array.from({ length: K }, (_, r) => scores1.map((v) => v * (r + 1)));
  const wordRows = rows.map((r) => [r[0], r[1] + r[2] + r[3], r[4]]);
  const summary = (r: number) => ({
    fx: 2 + r, fbase: 0.5, delta: 0.0123, relative_delta: 0.01, comprehensiveness: 0.3, sufficiency: null,
    deletion_auc: 0.2, deletion_random_auc: NaN,
  });
  return {
    tokens, words, groups, special: tokens.map(() => false), targets: K > 1 ? Array.from({ length: K }, (_, r) => `out${r}`) : ["pos"],
    scores: pack(rows.flat(), [K, 5]), word_scores: pack(wordRows.flat(), [K, 3]),
    info: { method: "ig", method_label: "Integrated gradients", signed: true, baseline: "pad", output: "logit", steps: 16, n_samples: 0, generated: false, contrast: null },
    faithfulness: {
      rows: Array.from({ length: K }, (_, r) => summary(r)), percents: [10, 20],
      deletion_x: pack([0, 0.5, 1], [3]), deletion: pack(Array.from({ length: 3 * K }, (_, i) => i), [K, 3]),
      deletion_random: pack(Array.from({ length: 3 * K }, () => 1), [K, 3]),
    },
    selected_output: 0, selected_token: null, word_level: false, method: "ig",
    methods: { ig: "Integrated gradients", grad_x_input: "Gradient \u00d7 input" },
    ...extra,
  };
}

const clickToken = (m: Mounted, i: number, strip = "tokens") => m.$$(`[data-testid=${strip}] .lw-tok`)[i].click();

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("AttributionView", () => {
  it("colours the prompt tokens by their scores, shown as text", () => {
    const m = mount(attribution, state());
    expect(stripTexts(m)).toEqual(tokens);
    expect(m.el.querySelector("img")).toBeNull();
    expect(stripWeights(m)).toEqual(scores1);
    expect(m.$("[data-testid=info]").textContent).toBe("Integrated gradients (16 steps) \u00b7 target: pos (logit) \u00b7 baseline: pad");
    expect(m.$("[data-testid=top]").textContent).toBe(`strongest (|score|):  cat [4] +2.000,  un [1] -1.000, The [0] +0.500, believ [2] +0.250, ${XSS} [3] +0.250`);
    expect(colorbars(m)).toEqual({ "tokens-colorbar": { label: "attribution score (Integrated gradients)", kind: "div", min: -2, max: 2 } });
  });

  it("a click selects a token, a second click on it clears the selection (null)", () => {
    const m = mount(attribution, state());
    clickToken(m, 2);
    expect(m.model.get("selected_token")).toBe(2);
    expect(stripSelected(m)).toBe(2);
    expect(m.$("[data-lw-view=attribution]").dataset.selectedToken).toBe("2");
    clickToken(m, 2);
    expect(m.model.get("selected_token")).toBeNull();
    expect(stripSelected(m)).toBe(-1);
    expect(m.saves()).toBe(2);
  });

  it("word level: the checkbox commits it; words are shown, a click selects the word's first token", () => {
    const m = mount(attribution, state());
    const box = m.$<HTMLInputElement>("[data-testid=word-level]");
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    expect(m.model.get("word_level")).toBe(true);
    expect(stripTexts(m)).toEqual(words);
    expect(stripWeights(m)).toEqual([0.5, -0.5, 2]);
    clickToken(m, 1);
    expect(m.model.get("selected_token")).toBe(1); // " un", the word's first token
    m.model.set("selected_token", 3); // a later token of the same word (set from Python)
    expect(stripSelected(m)).toBe(1);
    clickToken(m, 1); // the selected word again: clear
    expect(m.model.get("selected_token")).toBeNull();
    clickToken(m, 2);
    expect(m.model.get("selected_token")).toBe(4);
  });

  it("several outputs: the matrix and the output strip select outputs and tokens", () => {
    const m = mount(attribution, state(3));
    expect(stripTexts(m, "outputs")).toEqual(["out0", "out1", "out2"]);
    clickCell(m, "matrix", 2, 4);
    expect([m.model.get("selected_output"), m.model.get("selected_token")]).toEqual([2, 4]);
    expect(stripWeights(m)).toEqual(scores1.map((v) => v * 3));
    expect(stripSelected(m, "outputs")).toBe(2);
    expect(stripWeights(m, "outputs")).toEqual([2, 4, 6]); // influence of token 4 on every output
    expect(m.$("[data-testid=faithfulness]").dataset.row).toBe("2");
    // one scale for the matrix and both strips: the matrix's, not each row's own maximum
    expect(everyHeatmapHasColorbar(m)).toBe(true);
    const bars = colorbars(m);
    expect(bars["matrix-colorbar"]).toEqual({ label: "attribution score (Integrated gradients)", kind: "div", min: -6, max: 6 });
    expect(bars["tokens-colorbar"]).toEqual(bars["matrix-colorbar"]);
    clickToken(m, 0, "outputs"); // row 0: scores1, on the scale of +-6
    const bg = (i: number) => m.$$("[data-testid=tokens] .lw-tok")[i].style.background.replace(/\s/g, "");
    expect(bg(4)).toBe(css(div(2, 6)));
    expect(bg(1)).toBe(css(div(-1, 6)));
    expect(m.model.get("selected_output")).toBe(0);
    expect(m.saves()).toBe(2);
  });

  it("an out-of-range selected_output shows the nearest row", () => {
    const m = mount(attribution, state(2, { selected_output: 9 }));
    expect(m.$("[data-lw-view=attribution]").dataset.selectedOutput).toBe("1");
    expect(m.$("[data-testid=faithfulness]").dataset.row).toBe("1");
  });

  it("the faithfulness panel formats numbers with one placeholder for missing ones", () => {
    const m = mount(attribution, state());
    expect(m.$("[data-testid=faith-f]").textContent).toBe("2.0000, 0.5000");
    expect(m.$("[data-testid=faith-delta]").textContent).toBe("0.0123 (1.0% of f(x) \u2212 f(x\u2032))");
    expect(m.$("[data-testid=faith-suff]").textContent).toBe(MISSING);
    expect(m.$("[data-testid=faith-auc]").textContent).toBe(`0.2000 vs random ${MISSING}`);
    expect(m.$$("[data-testid=deletion-chart] rect[data-layer]")).toHaveLength(3);
  });

  it("the method menu commits the method; it is disabled in a static export", () => {
    const m = mount(attribution, state());
    choose(m.$<HTMLSelectElement>("[data-testid=method]"), "grad_x_input");
    expect(m.model.get("method")).toBe("grad_x_input");
    document.body.innerHTML = "";
    const e = mount(attribution, state(1, { _export: {} }));
    expect(e.$<HTMLSelectElement>("[data-testid=method]").disabled).toBe(true);
    expect(e.$("[data-testid=why-disabled]").textContent).toBe("another method needs the kernel: this is a static export");
  });

  it("the deletion curve's x axis has round percentages that never run together", () => {
    const n = 14; // 13 steps: the old ticks put "92%" against "100%"
    const xs = Array.from({ length: n }, (_, i) => i / (n - 1));
    const m = mount(attribution, state(1, { faithfulness: { ...state().faithfulness, deletion_x: pack(xs, [n]),
      deletion: pack(xs.map((x) => 1 - x), [1, n]), deletion_random: pack(xs.map(() => 0.5), [1, n]) } }));
    const ticks = m.$$("[data-testid=deletion-chart] text.lw-tick").map((t) => t.textContent!).filter((t) => t.endsWith("%"));
    expect(ticks).toEqual(["0%", "20%", "40%", "60%", "80%", "100%"]);
    expect(m.$("[data-testid=faith-delta]").className).toBe("");
  });

  it("says it is computing until the scores arrive", () => {
    const m = mount(attribution, state(1, { scores: null, word_scores: null }));
    expect(m.el.textContent).toContain("computing attributions\u2026");
    const s = state();
    m.model.set("word_scores", s.word_scores);
    m.model.set("scores", s.scores);
    expect(stripWeights(m)).toEqual(scores1);
  });
});

describe("AttributionView: colour scales across methods (issue 31)", () => {
  it("methods share one stated scale by default (a small method reads small); the menu switches to each method's own", () => {
    const m = mount(attribution, state()); // IG: largest |score| 2
    expect(colorbars(m)["tokens-colorbar"]).toMatchObject({ kind: "div", max: 2, label: "attribution score (Integrated gradients)" });
    // the kernel recomputes with Grad-CAM: scores of 0.0003
    m.model.set("info", { ...state().info, method: "gradcam", method_label: "Grad-CAM" });
    m.model.set("scores", pack(scores1.map((v) => v * 0.00015), [1, 5]));
    expect(colorbars(m)["tokens-colorbar"]).toMatchObject({ max: 2, label: "attribution score (Grad-CAM); scale shared with Integrated gradients" });
    expect(m.$("[data-testid=caption]").textContent).toContain("colour scale \u00b12.00");
    // 0.0003 on the shared \u00b12 scale: almost the neutral colour, not the darkest red
    expect(stripWeights(m)[4]).toBeCloseTo(0.0003, 9);
    expect(m.$$("[data-testid=tokens] .lw-tok")[4].style.background.replace(/\s/g, "")).toBe(css(div(0.0003, 2)));
    choose(m.$<HTMLSelectElement>("[data-testid=scale-mode]"), "own");
    expect(colorbars(m)["tokens-colorbar"]).toMatchObject({ max: Math.fround(0.0003), label: "attribution score (Grad-CAM)" });
    expect(m.$$("[data-testid=tokens] .lw-tok")[4].style.background.replace(/\s/g, "")).toBe(css(div(2, 2)));
  });
});

describe("AttributionView: a target of several tokens (issue 29's rule, said in the view)", () => {
  it("names the tokens and says they are one output, their summed log-probs", () => {
    const m = mount(attribution, state(1, { targets: [" elephant"],
      info: { ...state().info, output: "log_prob", target_tokens: [" ele", "ph", "ant"] } }));
    expect(m.$("[data-testid=target-tokens]").textContent).toBe(
      `target ${q(" elephant")} is 3 tokens (${q(" ele")} + ${q("ph")} + ${q("ant")}): one output, the sum of their log-probs, each read after the ones before it`);
    expect(targetNote("x", ["x"])).toBe("");
    const one = mount(attribution, state());
    expect(one.$("[data-testid=target-tokens]").style.display).toBe("none");
  });
});

describe("AttributionView: the output named as the quantity it is (issue 31)", () => {
  const yAxis = (m: Mounted) => m.$$("[data-testid=deletion-chart] text").map((t) => t.textContent).filter((t) => t!.startsWith("f = "));
  it("a contrast is labelled as the log-prob difference, not as log_prob", () => {
    const m = mount(attribution, state(1, { targets: [" Paris \u2212  London"],
      info: { ...state().info, output: "log_prob", contrast: " London" } }));
    expect(yAxis(m)).toEqual(["f = log p(target) \u2212 log p(contrast)"]);
    expect(m.$("[data-testid=faithfulness]").textContent).toContain("the output, f = log p(target) \u2212 log p(contrast), on the prompt");
    expect(m.$("[data-testid=faithfulness]").textContent).not.toContain("(log_prob)");
  });
  it("without a contrast the axis names the output of the target", () => {
    expect(yAxis(mount(attribution, state()))).toEqual(["f = logit(target)"]);
    expect(outputLabel("log_prob", null)).toBe("log p(target)");
    expect(outputLabel("prob", "B")).toBe("p(target) \u2212 p(contrast)");
    expect(outputLabel("logit", "B")).toBe("logit(target) \u2212 logit(contrast)");
  });
});
