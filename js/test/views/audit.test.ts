import { afterEach, describe, expect, it, vi } from "vitest";
import { MISSING } from "../../src/lib/format";
import audit, { histTicks, ZERO_LINE } from "../../src/views/audit";
import { mount, pack, stripTexts, stripWeights, XSS } from "./fixtures";

const pair = (id: number, shift: number, text_b = `${XSS} is a nurse`) => ({
  id, group: "female", term_a: "he", term_b: "she", text_a: "he is a nurse", text_b,
  score_a: 0.5, score_b: 0.5 + shift, shift,
});

function state(extra: Record<string, unknown> = {}) {
  return {
    score_name: "p(positive)", protected_attribute: "gender", done: true,
    summary: [
      { section: "counterfactual", check: "mean |shift|", value: 0.05, ci_low: 0.01, ci_high: 0.09, threshold: 0.1, rule: "<=", passed: true, detail: "ok" },
      { section: "groups", check: "parity", value: NaN, ci_low: null, ci_high: null, threshold: 0.2, rule: "<=", passed: false, detail: "<b>few</b> cases" },
    ],
    cf_summary: [{ group: "female", reference: "male", pairs: 3, mean_shift: 0.02, mean_abs_shift: 0.05, max_abs_shift: 0.3 }],
    shifts: pack([-0.3, 0, 0.1], [3]),
    pairs: [pair(7, 0.3), pair(2, -0.1, "<b>she</b> is a nurse")],
    attributions: {
      7: { a: { tokens: ["he", " is"], weights: pack([1, -2], [2]), what: "occlusion of positive" },
           b: { tokens: ["<script>", " is"], weights: pack([4, 0], [2]), what: "occlusion of positive" } },
    },
    robustness: [{ test: "typos", kind: "invariance", cases: 10, pass_rate: 0.9, mean_abs_change: 0.01 }],
    failures: [{ test: "typos", kind: "invariance", original: [["good", false], ["film", true]], perturbed: [["good", false], ["flim", true]],
                 score_o: 0.9, score_p: 0.2, pred_o: 1, pred_p: 0 }],
    group_table: [{ group: "a", n: 10, accuracy: 0.9, accuracy_lo: 0.8, accuracy_hi: 1, selection_rate: 0.5, selection_rate_lo: null,
                    selection_rate_hi: null, tpr: 1, tpr_lo: 1, tpr_hi: 1, fpr: 0, fpr_lo: 0, fpr_hi: 0 }],
    differences: { demographic_parity_difference: [0.1, 0.05, null], equalized_odds_difference: [0.2, 0.1, 0.3] },
    selected_pair: null,
    ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("AuditView", () => {
  it("summarises checks, formatting missing numbers with one placeholder and text as text", () => {
    const m = mount(audit, state());
    expect(m.$("[data-testid=info]").textContent).toBe("2 checks, 1 failed \u00b7 score: p(positive)");
    const rows = m.$$("[data-testid=summary] tbody tr");
    expect(rows.map((r) => r.dataset.passed)).toEqual(["1", "0"]);
    expect(Array.from(rows[0].children).map((c) => c.textContent)).toEqual(["PASS", "counterfactual", "mean |shift|", "0.050", "[0.010, 0.090]", "<= 0.10", "ok"]);
    expect(rows[1].children[3].textContent).toBe(MISSING);
    expect(rows[1].children[4].textContent).toBe("");
    expect(m.el.querySelector("b, img, script")).toBeNull();
    expect(m.$("[data-testid=demographic_parity_difference]").textContent).toBe(
      `Demographic parity difference (max \u2212 min selection rate): 0.100  [95% CI 0.050, ${MISSING}]`);
    expect(m.$("[data-testid=groups] tbody tr").children[3].textContent).toBe(`0.500 [${MISSING}, ${MISSING}]`);
  });

  it("histograms the shifts symmetrically around 0", () => {
    const m = mount(audit, state());
    const hist = m.$("[data-testid=cf-hist]");
    expect(Number(hist.dataset.max)).toBeCloseTo(0.3, 6);
    const counts = hist.dataset.counts!.split(",").map(Number);
    expect(counts).toHaveLength(31);
    expect(counts[0]).toBe(1); // -0.3
    expect(counts[15]).toBe(1); // 0
    expect(counts.reduce((a, b) => a + b, 0)).toBe(3);
    // the line at 0 is labelled; the right end's tick ends at the plot's edge (not centred past the canvas)
    expect(m.texts()).toContain(ZERO_LINE);
    expect(m.texts()).toEqual(expect.arrayContaining(["-0.30", "0", "0.30"]));
    expect(histTicks(0.3, 34, 320)).toEqual([
      { text: "-0.30", x: 34, align: "center" }, { text: "0", x: 194, align: "center" }, { text: "0.30", x: 354, align: "right" }]);
  });

  it("clicking a pair selects it, and shows both versions with their token attributions", () => {
    const m = mount(audit, state());
    expect(m.$("[data-testid=pair-detail]").textContent).toBe("Click a pair to compare both versions.");
    m.$("[data-testid=pairs] tr[data-id='7']").click();
    expect(m.model.get("selected_pair")).toBe(7);
    expect(m.saves()).toBe(1);
    expect(m.$$("[data-testid=pairs] tr.lw-sel").map((r) => r.dataset.id)).toEqual(["7"]);
    expect(stripTexts(m, "pair-b")).toEqual(["<script>", " is"]);
    expect(stripWeights(m, "pair-a")).toEqual([1, -2]);
    expect(m.el.querySelector("script")).toBeNull();
  });

  it("a pair without attributions shows its words, changed ones marked", () => {
    const m = mount(audit, state({ selected_pair: 2 }));
    expect(m.$("[data-testid=pair-detail]").dataset.pair).toBe("2");
    const changed = m.$$("[data-testid=pair-b] .lw-changed").map((e) => e.textContent);
    expect(changed).toEqual(["<b>she</b>"]); // compared word by word with the reference sentence
    expect(m.$$("[data-testid=pair-a] span").map((e) => e.textContent)).toEqual(["he", "is", "a", "nurse"]);
    expect(m.el.querySelector("b")).toBeNull();
    m.model.set("selected_pair", 40); // not sent yet: Python adds it on demand
    expect(m.$("[data-testid=pair-detail]").textContent).toBe("loading\u2026");
    m.model.set("selected_pair", null);
    expect(m.$$("[data-testid=pairs] tr.lw-sel")).toHaveLength(0);
  });

  it("lists robustness failures with the changed words marked", () => {
    const m = mount(audit, state());
    expect(m.$$("[data-testid=fail-perturbed] .lw-changed").map((e) => e.textContent)).toEqual(["flim"]);
    expect(m.$(".lw-fail").textContent).toContain("typos (invariance): 0.900 \u2192 0.200, class 1 \u2192 0");
  });

  it("says it is running until done", () => {
    const m = mount(audit, state({ done: false }));
    expect(m.el.textContent).toContain("Running the audit\u2026");
    m.model.set("done", true);
    expect(m.$("[data-lw-view=audit]").dataset.ready).toBe("1");
  });
});
