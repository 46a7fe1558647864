import { afterEach, describe, expect, it } from "vitest";
import neuron from "../../src/views/neuron";
import { mount, pack, XSS } from "./fixtures";

// NeuronView(corpus=...): the selected neuron's max-activating examples over the corpus, as text
const T = 3, N = 5;
function state(extra: Record<string, unknown> = {}) {
  return {
    tokens: ["The", "cat", "sat"], n_layers: 1, n_neurons: N, acts: { ...pack(new Array(T * N).fill(0), [T, N]), layer: 0 }, k: 3,
    selected_layer: 0, selected_token: null, selected_neuron: null, ablation_mode: "", ablation: {}, corpus_summary: {},
    corpus_examples: [], ...extra,
  };
}

afterEach(() => { document.body.innerHTML = ""; });

describe("NeuronView corpus examples", () => {
  it("shows nothing without a corpus, then the selected neuron's contexts with the token marked, escaped", () => {
    const m = mount(neuron, state());
    expect(m.$("[data-testid=corpus-examples]").textContent).toBe("");
    m.model.set("corpus_summary", { n_texts: 2, n_tokens: 9 });
    expect(m.$("[data-testid=corpus-examples]").textContent).toContain("select a neuron for its max-activating examples (corpus: 2 texts, 9 tokens)");
    m.model.set("selected_neuron", 4);
    m.model.set("corpus_examples", [{ text: 1, position: 2, activation: 3.5, tokens: ["a", XSS, "cat"], at: 1 }]);
    const rows = m.$$("[data-testid=corpus-examples] > div").slice(1);
    expect(rows).toHaveLength(1);
    const spans = Array.from(rows[0].querySelectorAll("span"));
    expect(spans.map((s) => s.textContent)).toEqual(["3.500 ", "a ", `${XSS} `, "cat "]);
    expect(spans[2].getAttribute("style")).toContain("font-weight:bold");
    expect(m.el.querySelector("img")).toBeNull(); // the XSS token stayed text
  });

  it("says when the selected neuron never fires on the corpus", () => {
    const m = mount(neuron, state({ corpus_summary: { n_texts: 2, n_tokens: 9 }, selected_neuron: 2 }));
    expect(m.$("[data-testid=corpus-examples] .lw-title").textContent).toBe("neuron 2 is never positive on the corpus (corpus: 2 texts, 9 tokens)");
  });
});
