import { describe, expect, it } from "vitest";
import { roleSegments, showRoles, TokenStrip } from "../src/lib/tokens";

const toks = (s: TokenStrip) => Array.from(s.el.querySelectorAll(".lw-tok")) as HTMLSpanElement[];
const labels = (s: TokenStrip) => Array.from(s.el.querySelectorAll(".lw-role")) as HTMLSpanElement[];

// a chat: system (tokens 0-3), user (4-7), user again (8-9: a second message of the same role), the
// generation prompt (10-11, assistant markup)
const ROLES = ["system", "system", "system", "system", "user", "user", "user", "user", "user", "user", "assistant", "assistant"];
const MARKUP = [true, true, false, true, true, false, false, true, true, false, true, true];
const MESSAGES = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3];

describe("role segments of a chat input", () => {
  it("splits tokens into messages where the message index changes, even within one role", () => {
    expect(roleSegments(ROLES, MESSAGES)).toEqual([
      { role: "system", message: 0, start: 0, end: 4 },
      { role: "user", message: 1, start: 4, end: 8 },
      { role: "user", message: 2, start: 8, end: 10 },
      { role: "assistant", message: 3, start: 10, end: 12 },
    ]);
    expect(roleSegments(["user", "user", "assistant"])).toEqual([ // without indices: by role
      { role: "user", message: -1, start: 0, end: 2 },
      { role: "assistant", message: -1, start: 2, end: 3 },
    ]);
    expect(roleSegments([])).toEqual([]);
    expect(roleSegments(null)).toEqual([]);
  });

  it("labels each message where it starts and greys the template's markup", () => {
    const strip = new TokenStrip(ROLES.map((_, i) => `t${i}`));
    strip.setRoles(ROLES, MARKUP, MESSAGES);
    const ls = labels(strip);
    expect(ls.map((l) => [l.textContent, l.dataset.start])).toEqual([["system", "0"], ["user", "4"], ["user", "8"], ["assistant", "10"]]);
    // each label sits right before the first token of its message
    for (const l of ls) expect((l.nextElementSibling as HTMLElement).dataset.index).toBe(l.dataset.start);
    expect(toks(strip).map((s) => s.classList.contains("lw-markup"))).toEqual(MARKUP);
    expect(toks(strip).map((s) => s.dataset.role)).toEqual(ROLES);
    expect(toks(strip).map((s) => s.textContent)).toEqual(ROLES.map((_, i) => `t${i}`)); // tokens unchanged
    strip.setRoles(null); // a plain text again: no labels, nothing greyed
    expect(labels(strip)).toHaveLength(0);
    expect(strip.el.querySelectorAll(".lw-markup")).toHaveLength(0);
    expect(toks(strip).every((s) => s.dataset.role === undefined)).toBe(true);
  });

  it("escapes role names and keeps colours on markup tokens", () => {
    const evil = '<img src=x onerror="window.__xssRole=1">';
    const strip = new TokenStrip(["a", "b"]);
    document.body.append(strip.el);
    strip.setRoles([evil, "user"], [true, false], [0, 1]);
    expect(strip.el.querySelectorAll("img")).toHaveLength(0);
    expect(labels(strip)[0].textContent).toBe(evil);
    expect((window as unknown as { __xssRole?: number }).__xssRole).toBeUndefined();
    strip.setWeights([1, 2]);
    expect(toks(strip)[0].dataset.weight).toBe("1");
    expect(toks(strip)[0].classList.contains("lw-markup")).toBe(true);
    strip.el.remove();
  });

  it("labels the message a window opens in, and roles follow the window", () => {
    const strip = new TokenStrip(ROLES.map((_, i) => `t${i}`), { maxSpans: 3 });
    strip.setRoles(ROLES, MARKUP, MESSAGES);
    strip.setRange(5, 8); // inside the first user message
    expect(labels(strip).map((l) => [l.textContent, l.dataset.start])).toEqual([["user", "4"]]);
    strip.setRange(8, 11);
    expect(labels(strip).map((l) => [l.textContent, l.dataset.start])).toEqual([["user", "8"], ["assistant", "10"]]);
    expect(toks(strip).map((s) => s.dataset.role)).toEqual(["user", "user", "assistant"]);
  });

  it("reads the view's traits; a plain text (empty traits) shows none", () => {
    const traits: Record<string, unknown> = { token_roles: ROLES, token_markup: MARKUP, token_messages: MESSAGES };
    const strip = new TokenStrip(ROLES.map((_, i) => `t${i}`));
    showRoles(strip, { get: (k) => traits[k] });
    expect(strip.segments).toHaveLength(4);
    showRoles(strip, { get: () => [] });
    expect(strip.segments).toHaveLength(0);
    expect(labels(strip)).toHaveLength(0);
  });
});

describe("a view with a chat input", () => {
  it("NeuronView draws the role segments of its input tokens from the traits", async () => {
    const { default: neuron } = await import("../src/views/neuron");
    const { mount, pack, XSS } = await import("./views/fixtures");
    const tokens = ["<s>", XSS, "hi", "<|im_start|>"];
    const m = mount(neuron, {
      tokens, n_layers: 1, n_neurons: 2, acts: { ...pack([0, 1, 2, 3, 4, 5, 6, 7], [4, 2]), layer: 0 }, k: 2,
      selected_layer: 0, selected_token: null, selected_neuron: null, ablation_mode: "", ablation: {},
      token_roles: [XSS, XSS, XSS, "assistant"], token_markup: [true, false, false, true], token_messages: [0, 0, 0, 1],
    });
    const roleLabels = m.$$("[data-testid=tokens] .lw-role");
    expect(roleLabels.map((l) => [l.textContent, l.dataset.start])).toEqual([[XSS, "0"], ["assistant", "3"]]);
    expect(m.$$("[data-testid=tokens] .lw-tok").map((s) => s.classList.contains("lw-markup"))).toEqual([true, false, false, true]);
    expect(m.el.querySelector("img")).toBeNull(); // the role name is text, never markup
  });
});
