import { afterEach, describe, expect, it, vi } from "vitest";
import neuron from "../../src/views/neuron";
import { choose, colorbars, mount, pack, stripSelected, stripWeights, XSS } from "./fixtures";
import { quoted as q } from "../../src/lib/format";

const T = 3, N = 5;
const tokens = ["The", XSS, "sat"];
// activation of neuron n on token t: (n - 2) * (t + 1), so neuron 4 fires most on every token
const actsOf = (layer: number) => ({ ...pack(Array.from({ length: T * N }, (_, i) => (i % N - 2) * (Math.floor(i / N) + 1) + layer), [T, N]), layer });

function state(extra: Record<string, unknown> = {}) {
  return {
    tokens, n_layers: 2, n_neurons: N, acts: actsOf(0), k: 3, selected_layer: 0, selected_token: null,
    selected_neuron: null, ablation_mode: "", ablation: {}, ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("NeuronView", () => {
  it("clicking a token selects it and lists its top-k neurons", () => {
    const m = mount(neuron, state());
    expect(m.$("[data-testid=top-neurons]").textContent).toBe("No token selected.");
    m.$$("[data-testid=tokens] .lw-tok")[1].click();
    expect(m.model.get("selected_token")).toBe(1);
    expect(stripSelected(m)).toBe(1);
    const rows = m.$$("[data-testid=neuron-table] tbody tr").map((r) => Array.from(r.children).map((c) => c.textContent));
    expect(rows).toEqual([["4", "4.000"], ["3", "2.000"], ["2", "0.000"]]);
    expect(m.$("[data-testid=top-neurons] .lw-title").textContent).toBe(`top neurons on "${XSS}"`);
    expect(m.el.querySelector("img")).toBeNull();
  });

  it("clicking a neuron selects it and colours every token by its activation", () => {
    const m = mount(neuron, state({ selected_token: 0 }));
    m.$("[data-testid=neuron-table] tr[data-id='3']").click();
    expect(m.model.get("selected_neuron")).toBe(3);
    expect(stripWeights(m)).toEqual([1, 2, 3]);
    expect(m.$<HTMLInputElement>("[data-testid=neuron-input]").value).toBe("3");
    expect(m.$$("[data-testid=firing] li").map((li) => li.textContent)).toEqual([`${q("sat")} (2): 3.000`, `${q(XSS)} (1): 2.000`, `${q("The")} (0): 1.000`]);
    expect(colorbars(m)).toEqual({ "tokens-colorbar": { label: "activation of neuron 3 (layer 0)", kind: "div", min: -3, max: 3 } });
    m.model.set("selected_neuron", null);
    expect(stripWeights(m)).toEqual([null, null, null]);
    expect(colorbars(m)).toEqual({});
  });

  it("the number box selects a neuron in range and explains one out of range", () => {
    const m = mount(neuron, state());
    const input = m.$<HTMLInputElement>("[data-testid=neuron-input]");
    choose(input, "7");
    expect(m.model.get("selected_neuron")).toBeNull();
    // the error style of the other boxes (issue 31): a red frame and the message in an error box
    const err = m.$("[data-testid=neuron-input-error]");
    expect(err.className).toBe("lw-error");
    expect(err.textContent).toBe("neuron must be a number from 0 to 4, got \u201c7\u201d");
    expect(err.style.display).toBe("");
    expect(input.getAttribute("aria-invalid")).toBe("true");
    choose(input, "2");
    expect(m.model.get("selected_neuron")).toBe(2);
    expect(m.saves()).toBe(1);
    expect(err.style.display).toBe("none");
    expect(input.hasAttribute("aria-invalid")).toBe(false);
    choose(input, "-1");
    expect(err.textContent).toBe("neuron must be a number from 0 to 4, got \u201c-1\u201d");
    m.model.set("selected_neuron", 3); // a neuron chosen in Python clears it
    expect(err.style.display).toBe("none");
  });

  it("the layer menu selects a layer; the view waits for its activations", () => {
    const m = mount(neuron, state({ selected_token: 2 }));
    choose(m.$<HTMLSelectElement>("[data-testid=layer]"), "1");
    expect(m.model.get("selected_layer")).toBe(1);
    expect(m.$("[data-testid=info]").textContent).toBe("loading\u2026");
    m.model.set("acts", actsOf(1));
    expect(m.$("[data-testid=info]").textContent).toBe("layer 1: 5 neurons \u00b7 3 tokens");
    expect(m.$$("[data-testid=neuron-table] tbody tr")[0].textContent).toBe("47.000");
  });

  it("the ablation menu is disabled with the reason where the model has no output head, and in exports", () => {
    const note = "all-MiniLM-L6-v2 has no output head, so there are no output probabilities to compare.";
    const m = mount(neuron, state({ ablation_note: note }));
    const sel = m.$<HTMLSelectElement>("[data-testid=ablation-mode]");
    expect(sel.disabled).toBe(true);
    expect(sel.title).toBe(`ablation unavailable: ${note}`);
    expect(m.$("[data-testid=why-disabled]").textContent).toBe(`ablation unavailable: ${note}`);
    expect(m.$("[data-testid=why-disabled]").className).toBe("lw-why");
    m.model.set("ablation_note", ""); // it applies after all: enabled, no note
    expect(sel.disabled).toBe(false);
    expect(m.$$("[data-testid=why-disabled]")).toHaveLength(0);
    document.body.innerHTML = "";
    const e = mount(neuron, state({ _export: {} }));
    expect(e.$<HTMLSelectElement>("[data-testid=ablation-mode]").disabled).toBe(true);
    expect(e.$$("[data-testid=why-disabled]").map((n) => n.textContent)).toEqual([ // no layers stored: one layer only
      "other layers: needs the kernel: this is a static export (too large to store every layer)",
      "ablation needs the kernel: this is a static export"]);
  });

  it("resample ablation: disabled with the reason until a donor text is typed, then the donor is synced; errors keep it", () => {
    const m = mount(neuron, state({ ablation_note: "" }));
    const sel = m.$<HTMLSelectElement>("[data-testid=ablation-mode]");
    const donor = m.$<HTMLInputElement>("[data-testid=ablation-donor]");
    const resample = sel.querySelector<HTMLOptionElement>("option[value=resample]")!;
    const why = "resample ablation needs a donor text: type one with as many tokens as this text (3)";
    expect(sel.disabled).toBe(false);
    expect([resample.disabled, resample.title]).toEqual([true, why]); // the menu's other choices work
    expect(m.$$("[data-testid=why-disabled]")).toHaveLength(0); // a note once resample is the chosen mode
    m.model.set("ablation_mode", "resample"); // chosen (from Python) without a donor text: the reason, by the box
    expect([sel.value, resample.disabled]).toEqual(["resample", true]);
    expect(m.$$("[data-testid=why-disabled]").map((n) => n.textContent)).toEqual([why]);
    expect(m.$("[data-testid=why-disabled]").previousElementSibling).toBe(donor);
    m.model.set("ablation_mode", "");
    expect(m.$$("[data-testid=why-disabled]")).toHaveLength(0);
    donor.value = "   ";
    donor.dispatchEvent(new Event("input"));
    expect(resample.disabled).toBe(true); // blank is no text
    donor.value = XSS; // typing enables it at once; the text is committed on change
    donor.dispatchEvent(new Event("input"));
    expect(resample.disabled).toBe(false);
    expect(m.$$("[data-testid=why-disabled]")).toHaveLength(0);
    choose(donor, XSS);
    choose(sel, "resample");
    expect([m.model.get("ablation_donor"), m.model.get("ablation_mode"), m.saves()]).toEqual([XSS, "resample", 2]);
    // a donor of another length: the Python error in the error area; the menu and the box keep their values
    const error = "resample ablation: the donor is [batch, tokens] = [1, 9], this run's input is [1, 3]; give a donor with the same shape as the input.";
    m.model.set("error", error);
    expect(m.$("[data-testid=error]").textContent).toBe(error);
    expect([sel.value, donor.value]).toEqual(["resample", XSS]);
    m.model.set("ablation", { layer: 0, neurons: [3], mode: "resample", outputs: [XSS], before: [0.5], after: [0.25] });
    expect(m.$("[data-testid=ablation] .lw-title").textContent).toBe("resample-ablating neuron 3 of layer 0: output probabilities");
    expect(m.$("[data-testid=ablation] td").textContent).toBe(q(XSS));
    expect(m.el.querySelector("img")).toBeNull(); // every token and donor string stays text
    m.model.set("ablation_donor", ""); // cleared from Python: the box follows, resample is disabled again
    expect([donor.value, resample.disabled]).toEqual(["", true]);
    document.body.innerHTML = "";
    const e = mount(neuron, state({ _export: {}, ablation_donor: "a donor" })); // export: the box too, no extra note
    expect([e.$<HTMLInputElement>("[data-testid=ablation-donor]").disabled, e.$<HTMLInputElement>("[data-testid=ablation-donor]").value]).toEqual([true, "a donor"]);
    expect(e.$$("[data-testid=why-disabled]")).toHaveLength(2);
  });

  it("shows an ablation's output probabilities and their change", () => {
    const m = mount(neuron, state({ ablation_note: "" }));
    expect(m.$<HTMLSelectElement>("[data-testid=ablation-mode]").disabled).toBe(false);
    choose(m.$<HTMLSelectElement>("[data-testid=ablation-mode]"), "zero");
    expect(m.model.get("ablation_mode")).toBe("zero");
    m.model.set("ablation", { layer: 0, neurons: [3], mode: "zero", outputs: ["<b>yes</b>", "no"], before: [0.5, 0.25], after: [0.25, 0.5] });
    const rows = m.$$("[data-testid=ablation] tr").slice(1).map((r) => Array.from(r.children).map((c) => c.textContent));
    expect(rows).toEqual([[q("<b>yes</b>"), "50.0%", "25.0%", "-25.0"], [q("no"), "25.0%", "50.0%", "+25.0"]]);
    expect(m.$("[data-testid=ablation] .lw-title").textContent).toBe("zero-ablating neuron 3 of layer 0: output probabilities");
  });
});
