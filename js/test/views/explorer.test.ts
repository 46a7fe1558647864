import { afterEach, describe, expect, it, vi } from "vitest";
import { Model } from "../../src/lib/frame";
import { createModel } from "../../src/lib/model";
import explorer, { FOLD_TOKENS, PANEL_GAP, ROW_UNIT, rowSpan, stripMode } from "../../src/views/explorer";
import { BASE, choose, colorbars, mount, Mounted, pack, stripWeights, XSS } from "./fixtures";

const tokens = ["The", XSS, "sat"];
const T = tokens.length, N = 2;

const neuronState = () => ({
  ...BASE, tokens, n_layers: 1, n_neurons: N, acts: { ...pack(Array.from({ length: T * N }, (_, i) => i), [T, N]), layer: 0 }, k: 2,
  selected_layer: 0, selected_token: null, selected_neuron: null, ablation_mode: "", ablation: {},
});
const lensState = () => ({
  ...BASE, tokens, n_layers: 1, layer_names: ["embeddings", "layer 0"], top_tokens: ["a"],
  top_index: pack(new Array(2 * T).fill(0), [2, T, 1], "int32"), top_probs: pack(new Array(2 * T).fill(0.5), [2, T, 1]),
  next_prob: pack(new Array(2 * T).fill(0.1), [2, T]), colour: "top", selected_layer: null, selected_token: null,
});

/** An Explorer whose child views live in a widget manager, as in a kernel-backed notebook. */
async function live(): Promise<{ m: Mounted; children: Model[] }> {
  const children: Model[] = [createModel(neuronState()), createModel(lensState())];
  const model = createModel({ ...BASE, text: "The <img> sat", tokens, selected_token: null, views: ["IPY_MODEL_n", "IPY_MODEL_l"], view_names: ["neuron", "logit_lens"] });
  const byId: Record<string, Model> = { n: children[0], l: children[1] };
  Object.assign(model, { widget_manager: { get_model: async (id: string) => byId[id] } });
  const m = mount(explorer, {}, model);
  await vi.waitFor(() => expect(m.$("[data-lw-view=explorer]").dataset.ready).toBe("1"));
  return { m, children };
}

const selectedIn = (m: Mounted, panel: string) =>
  m.$$(`[data-panel=${panel}] [data-testid=tokens] .lw-tok`).findIndex((e) => e.classList.contains("lw-sel"));

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("Explorer", () => {
  it("mounts every panel around one shared token strip (text, never markup)", async () => {
    const { m } = await live();
    expect(m.$$("[data-panel]").map((p) => p.dataset.panel)).toEqual(["neuron", "logit_lens"]);
    expect(m.$$("[data-testid=shared-tokens] .lw-tok").map((e) => e.textContent)).toEqual(tokens);
    expect(m.el.querySelector("img")).toBeNull();
    expect(m.$<HTMLInputElement>("[data-testid=text]").value).toBe("The <img> sat");
  });

  it("a click on the shared strip selects the token in the explorer and every child", async () => {
    const { m, children } = await live();
    m.$$("[data-testid=shared-tokens] .lw-tok")[2].click();
    expect(m.model.get("selected_token")).toBe(2);
    expect(children.map((c) => c.get("selected_token"))).toEqual([2, 2]);
    expect(selectedIn(m, "neuron")).toBe(2);
    expect(m.$("[data-lw-view=explorer]").dataset.selected).toBe("2");
  });

  it("a selection made in one child reaches the explorer and the other children, once", async () => {
    const { m, children } = await live();
    const saves = children.map((c) => vi.spyOn(c, "save_changes"));
    children[0].set("selected_token", 1); // the neuron view commits selected_token = 1 (e.g. from its table)
    children[0].save_changes();
    expect(m.model.get("selected_token")).toBe(1);
    expect(children.map((c) => c.get("selected_token"))).toEqual([1, 1]);
    expect(saves.map((s) => s.mock.calls.length)).toEqual([1, 1]); // the neuron view's own commit, and the mirror to the lens
    expect(m.$$("[data-testid=shared-tokens] .lw-tok.lw-sel").map((e) => e.dataset.index)).toEqual(["1"]);
  });

  it("Python clearing the explorer's selection (null) clears every child", async () => {
    const { m, children } = await live();
    m.model.set("selected_token", 0);
    expect(children.map((c) => c.get("selected_token"))).toEqual([0, 0]);
    m.model.set("selected_token", null);
    expect(children.map((c) => c.get("selected_token"))).toEqual([null, null]);
    expect(m.$$("[data-testid=shared-tokens] .lw-tok.lw-sel")).toHaveLength(0);
  });

  it("hovering a token marks it in every strip, without a kernel round trip", async () => {
    const { m } = await live();
    const saves = m.saves();
    m.$$("[data-testid=shared-tokens] .lw-tok")[1].dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(m.$$(".lw-tok.lw-linked").map((e) => e.dataset.index)).toEqual(["1", "1"]);
    expect(m.$("[data-lw-view=explorer]").dataset.hovered).toBe("1");
    m.$("[data-lw-view=explorer]").dispatchEvent(new MouseEvent("mouseleave"));
    expect(m.$$(".lw-tok.lw-linked")).toHaveLength(0);
    expect(m.saves()).toBe(saves);
  });

  it("Run submits new text only", async () => {
    const { m } = await live();
    const input = m.$<HTMLInputElement>("[data-testid=text]");
    m.$("[data-testid=run]").click(); // unchanged: nothing to do
    expect(m.saves()).toBe(0);
    input.value = "A dog ran";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(m.model.get("text")).toBe("A dog ran");
    expect(m.saves()).toBe(1);
  });

  it("lays the panels out in a grid, a panel too wide for a column on a row of its own; one Snapshot, one title", async () => {
    vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(450);
    vi.spyOn(HTMLElement.prototype, "scrollWidth", "get").mockImplementation(function (this: HTMLElement) {
      return this.dataset.panel === "neuron" ? 700 : 450; // the neuron panel's content overflows its column
    });
    const { m } = await live();
    const panels = m.$("[data-testid=panels]");
    expect(panels.className).toBe("lw-panels");
    expect(m.$$("[data-panel]").map((p) => p.className)).toEqual(["lw-panel lw-wide", "lw-panel"]);
    vi.restoreAllMocks();
    const css = document.getElementById("llm-widgets-style")!.textContent!;
    expect(css).toContain(".lw-panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr))");
    expect(css).toContain(".lw-panel.lw-wide{grid-column:1/-1}");
    // every panel's own Snapshot and title sit inside .lw-panel, which hides them: only the Explorer's show
    expect(css).toContain(".lw-panel .lw-snap,.lw-panel .lw-view-title{display:none}");
    const snaps = m.$$("[data-testid=snapshot]");
    expect(snaps.filter((b) => !b.closest(".lw-panel"))).toHaveLength(1);
    expect(m.$$(".lw-view-title").filter((t) => !t.closest(".lw-panel"))).toHaveLength(1);
  });

  it("in a static export the text box and Run are disabled, saying they need the kernel", async () => {
    const model = createModel({ ...BASE, text: "x", tokens, selected_token: null, views: [], view_names: ["neuron"],
      _export: { children: [{ bundle: "neuron", state: { ...neuronState(), _export: {} } }] } });
    const m = mount(explorer, {}, model);
    await vi.waitFor(() => expect(m.$("[data-lw-view=explorer]").dataset.ready).toBe("1"));
    const input = m.$<HTMLInputElement>("[data-testid=text]"), run = m.$<HTMLButtonElement>("[data-testid=run]");
    expect([input.disabled, run.disabled]).toEqual([true, true]);
    expect(input.title).toBe("new text needs the kernel: this is a static export");
    expect(m.$$("[data-testid=why-disabled]").map((e) => e.textContent)).toContain("running on new text needs the kernel: this is a static export");
    expect(m.$<HTMLSelectElement>("[data-panel=neuron] [data-testid=ablation-mode]").disabled).toBe(true); // the panels' too
  });

  it("in a static export the children come from the saved state", async () => {
    const model = createModel({
      ...BASE, text: "x", tokens, selected_token: 1, views: [], view_names: ["neuron", "mystery"],
      _export: { children: [{ bundle: "neuron", state: { ...neuronState(), selected_token: 1 } }, { bundle: "mystery", state: {} }] },
    });
    const m = mount(explorer, {}, model);
    await vi.waitFor(() => expect(m.$("[data-lw-view=explorer]").dataset.ready).toBe("1"));
    expect(m.$("[data-panel=mystery]").textContent).toContain("No front end for panel mystery.");
    expect(selectedIn(m, "neuron")).toBe(1);
    m.$$("[data-testid=shared-tokens] .lw-tok")[0].click(); // selections still link the panels, in the page
    expect(selectedIn(m, "neuron")).toBe(0);
    expect(m.model.get("selected_token")).toBe(0);
  });
});

describe("Explorer: panels not shown", () => {
  it("says which panels are left out and why, as text", async () => {
    const model = createModel({ ...BASE, text: "The <img> sat", tokens, selected_token: null, views: [], view_names: [],
      skipped: { logit_lens: "this model has no language-model head", attribution: XSS } });
    const m = mount(explorer, {}, model);
    await vi.waitFor(() => expect(m.$$("[data-testid=skipped] [data-skipped]")).toHaveLength(2));
    expect(m.$$("[data-skipped]").map((e) => e.textContent)).toEqual(
      ["Logit lens panel not shown: this model has no language-model head", `Attribution panel not shown: ${XSS}`]);
    expect(m.el.querySelector("img")).toBeNull();
    model.set("skipped", {});
    expect(m.$$("[data-skipped]")).toHaveLength(0);
  });
});

describe("Explorer: too-long texts and stale errors (issue 31, item 9)", () => {
  it("the truncate box sets truncate in Python; editing the text clears the error of the previous text", async () => {
    const { m } = await live();
    const box = m.$<HTMLInputElement>("[data-testid=truncate]");
    expect(box.checked).toBe(false);
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    expect(m.model.get("truncate")).toBe(true);
    m.model.set("truncate", false); // Python drives the box back
    expect(box.checked).toBe(false);
    m.model.set("error", "InputTooLongError: The text is 600 tokens long; pass truncate=True");
    expect(m.$("[data-testid=error]").style.display).toBe("");
    const input = m.$<HTMLInputElement>("[data-testid=text]");
    const before = m.saves();
    input.value = "";
    input.dispatchEvent(new Event("input"));
    expect(m.model.get("error")).toBe("");
    expect(m.$("[data-testid=error]").style.display).toBe("none");
    expect(m.saves()).toBe(before + 1);
    input.value = "x";
    input.dispatchEvent(new Event("input")); // no error: nothing to send
    expect(m.saves()).toBe(before + 1);
  });
});

describe("Explorer: long texts (issue 31, item 10)", () => {
  it("the shared strip folds away for texts over FOLD_TOKENS tokens, and opens for short ones", async () => {
    const { m } = await live();
    const fold = m.$<HTMLDetailsElement>("[data-testid=shared-strip-fold]");
    expect(fold.open).toBe(true);
    expect(fold.querySelector("summary")!.textContent).toBe("Shared tokens (3): hover to highlight everywhere, click to select in every view.");
    const long = Array.from({ length: FOLD_TOKENS + 1 }, (_, i) => `t${i}`);
    m.model.set("tokens", long);
    await vi.waitFor(() => expect(m.$<HTMLDetailsElement>("[data-testid=shared-strip-fold]").open).toBe(false));
    expect(m.$("[data-testid=shared-strip-fold] summary").textContent).toContain(`Shared tokens (${FOLD_TOKENS + 1})`);
  });
});

describe("Explorer: balanced columns", () => {
  it("a panel spans as many 4 px rows as it is tall, with the gap under it", () => {
    expect(rowSpan(400)).toBe(Math.ceil((400 + PANEL_GAP) / ROW_UNIT));
    expect(rowSpan(0)).toBe(Math.ceil(PANEL_GAP / ROW_UNIT));
    expect(rowSpan(-5, 0)).toBe(1);
  });
});

describe("Explorer: one token strip (issue 31, item 9)", () => {
  const visibleStrips = (m: Mounted) => m.$$(".lw-strip").filter((e) => !e.closest(".lw-shared-src") && !e.classList.contains("lw-shared-src"));

  it("the panels' strips of the same tokens are hidden: one strip of the text shows, with one selection style", async () => {
    const { m } = await live();
    expect(m.$("[data-panel=neuron] [data-testid=tokens]").classList.contains("lw-shared-src")).toBe(true);
    expect(m.$("[data-panel=neuron] [data-testid=tokens-colorbar]").classList.contains("lw-shared-src")).toBe(true);
    expect(visibleStrips(m).map((e) => e.dataset.testid)).toEqual(["shared-tokens"]);
    expect(document.getElementById("llm-widgets-style")!.textContent).toContain(".lw-panel .lw-shared-src{display:none}");
    m.$$("[data-testid=shared-tokens] .lw-tok")[2].click();
    expect(visibleStrips(m).flatMap((e) => Array.from(e.querySelectorAll(".lw-sel"))).map((e) => (e as HTMLElement).dataset.index)).toEqual(["2"]);
  });

  it("the shared strip shows a panel's values by mode (auto, none, a panel), with their colour bar", async () => {
    const { m, children } = await live();
    expect(stripWeights(m, "shared-tokens")).toEqual([null, null, null]); // no neuron selected: nothing to show
    expect(m.$("[data-testid=strip-caption]").textContent).toBe("no panel has values for the tokens now");
    children[0].set("selected_neuron", 1); // acts[t, n] = t * 2 + n: neuron 1 fires 1, 3, 5
    expect(stripWeights(m, "shared-tokens")).toEqual([1, 3, 5]);
    expect(m.$("[data-testid=shared-strip]").dataset.mode).toBe("neuron");
    expect(m.$("[data-testid=strip-caption]").textContent).toBe("colours: Neurons panel");
    expect(colorbars(m)["shared-colorbar"]).toMatchObject({ kind: "div", max: 5, label: "activation of neuron 1 (layer 0)" });
    const sel = m.$<HTMLSelectElement>("[data-testid=strip-mode]");
    expect(Array.from(sel.options).map((o) => o.value)).toEqual(["auto", "none", "neuron"]);
    choose(sel, "none");
    expect(stripWeights(m, "shared-tokens")).toEqual([null, null, null]);
    expect(colorbars(m)["shared-colorbar"]).toBeUndefined();
    children[0].set("selected_neuron", 0); // a new neuron while "none" is picked: still none
    expect(stripWeights(m, "shared-tokens")).toEqual([null, null, null]);
    choose(sel, "neuron");
    expect(stripWeights(m, "shared-tokens")).toEqual([0, 2, 4]);
    children[0].set("selected_neuron", null);
    expect(m.$("[data-testid=strip-caption]").textContent).toBe("Neurons panel: no values now (select something in it)");
  });

  it("stripMode: a picked panel stays; auto takes the first panel in order with values", () => {
    expect(stripMode("auto", { neuron: true, attribution: true })).toBe("attribution");
    expect(stripMode("auto", { neuron: true, attribution: false })).toBe("neuron");
    expect(stripMode("auto", { mystery: true, attention: false })).toBe("mystery");
    expect(stripMode("auto", { neuron: false })).toBe("none");
    expect(stripMode("neuron", { neuron: false, attribution: true })).toBe("neuron");
    expect(stripMode("none", { attribution: true })).toBe("none");
  });
});
