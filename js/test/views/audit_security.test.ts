import { afterEach, describe, expect, it, vi } from "vitest";
import audit from "../../src/views/audit";
import { mount, pack, stripTexts, XSS } from "./fixtures";

const summaryRow = (order: string, k: number, n: number, qps: number) => ({
  order, texts: n, successes: k, success_rate: k / n, success_rate_lo: 0.1, success_rate_hi: 0.9,
  mean_words_changed: 1.2, queries: 100, mean_queries: 10, queries_per_success: qps,
});

function state(extra: Record<string, unknown> = {}) {
  return {
    score_name: "P(POSITIVE)", protected_attribute: "", done: true,
    summary: [{ section: "attack", check: "word-substitution attack success rate", value: 0.8, ci_low: 0.6, ci_high: 0.9,
                threshold: 0.2, rule: "<=", passed: false, detail: "8/10 texts flipped" }],
    cf_summary: [], pairs: [], attributions: {}, robustness: [], failures: [], group_table: [], differences: {},
    selected_pair: null,
    attack_result: {
      summary: [summaryRow("random", 5, 10, 30), summaryRow("attribution", 8, 10, 20)],
      ranking: "occlusion attribution of the predicted class", budget: { max_words: 3, max_queries: 200, kinds: ["synonym", "typo"] },
      class_names: ["NEGATIVE", "POSITIVE"],
      examples: [
        { id: 4, original: [["the", false], ["film", false], ["was", false], ["great", true]],
          adversarial: [["the", false], ["film", false], ["was", false], [`gr${XSS}`, true]], pred_o: 1, pred_a: 0,
          conf_o: 0.95, conf_a: 0.4, words_changed: 1, queries: 15 },
        { id: 9, original: [["awful", true]], adversarial: [["awfu1", true]], pred_o: 0, pred_a: 1, conf_o: 0.9, conf_a: 0.3,
          words_changed: 1, queries: 12 },
      ],
    },
    memorization_result: {
      strings: [{ string: `my ${XSS} is 4 8 1 7`, exact: true, matched: 4, rest_tokens: 4, continuation: "4 8 1 7", loglik: -2.4, percentile: 1 },
                { string: "my PIN is 9 2 6 0", exact: false, matched: 0, rest_tokens: 4, continuation: "4 8 1 7", loglik: -13.7, percentile: 0.4 }],
      canaries: [{ canary: "my PIN is 9 2 6 0", secret: "9260", candidates: 10000, rank: 8467, exposure: 0.24, max_exposure: 13.29 },
                 { canary: "my PIN is 4 8 1 7", secret: "4817", candidates: 10000, rank: 1, exposure: 13.29, max_exposure: 13.29 }],
      prefix_tokens: 3, lookalike: "shuffle", n_lookalikes: 100, summary: {},
    },
    selected_example: null, example_attributions: {},
    ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("AuditView security and privacy sections", () => {
  it("shows the attack against its random-order baseline, ours first", () => {
    const m = mount(audit, state());
    const rows = m.$$("[data-testid=attack-summary] tbody tr");
    expect(rows.map((r) => r.dataset.id)).toEqual(["attribution", "random"]);
    expect(Array.from(rows[0].children).map((c) => c.textContent)).toEqual(
      ["attribution", "8/10", "0.800 [0.100, 0.900]", "1.20", "20.0", "10.0"]);
    expect(m.$$("[data-testid=attack-examples] .lw-example")).toHaveLength(2);
    expect(m.$$("[data-testid=example-adversarial-words] .lw-changed").map((e) => e.textContent)).toEqual([`gr${XSS}`, "awfu1"]);
    expect(m.el.querySelector("img")).toBeNull();
  });

  it("clicking an example selects it and shows both versions' attributions", () => {
    const m = mount(audit, state({ example_attributions: { 4: {
      original: { tokens: ["[CLS]", "great"], weights: pack([0, 2], [2]), what: "occlusion of POSITIVE" },
      adversarial: { tokens: ["[CLS]", "<b>gr</b>"], weights: pack([0, -1], [2]), what: "occlusion of POSITIVE" } } } }));
    expect(m.$("[data-testid=example-detail]").textContent).toBe("Click an example to compare both versions.");
    m.$(".lw-example[data-id='4']").click();
    expect(m.model.get("selected_example")).toBe(4);
    expect(stripTexts(m, "example-adversarial")).toEqual(["[CLS]", "<b>gr</b>"]);
    expect(m.$(".lw-example[data-id='4']").classList.contains("lw-sel")).toBe(true);
    m.$(".lw-example[data-id='9']").click(); // not explained yet: its words, until the kernel sends them
    expect(m.$("[data-testid=example-detail]").dataset.example).toBe("9");
    expect(m.$$("[data-testid=example-adversarial] span").map((e) => e.textContent)).toEqual(["awfu1"]);
    expect(m.el.querySelector("b")).toBeNull();
  });

  it("lists memorized strings in order and canaries by exposure", () => {
    const m = mount(audit, state());
    const strings = m.$$("[data-testid=memorization-strings] tbody tr");
    expect(strings.map((r) => r.children[2].textContent)).toEqual(["yes", "no"]);
    expect(strings[0].children[1].textContent).toBe(`my ${XSS} is 4 8 1 7`);
    const canaries = m.$$("[data-testid=memorization-canaries] tbody tr");
    expect(canaries.map((r) => r.children[4].textContent)).toEqual(["13.29", "0.24"]);
    expect(m.el.querySelector("img")).toBeNull();
  });

  it("has no such sections when the audit ran neither", () => {
    const m = mount(audit, state({ attack_result: {}, memorization_result: {} }));
    expect(m.el.querySelector("[data-testid=attack-section], [data-testid=memorization-section]")).toBeNull();
  });
});
