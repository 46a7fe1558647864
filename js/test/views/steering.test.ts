import { afterEach, describe, expect, it, vi } from "vitest";
import steering, { ggufBytes, safetensorsBytes } from "../../src/views/steering";
import { mount, pack, XSS } from "./fixtures";
import { decode } from "../../src/lib/buffers";
import { contrast, ink, luminance, RGB, SEQUENTIAL, SEQUENTIAL_DARK, syncTheme } from "../../src/lib/colors";

const cell = (k: number) => ({ tokens: [[" a", XSS, " c"]], changed: [[false, k > 0, false]], texts: ["x"] });

function generate(extra: Record<string, unknown> = {}) {
  return {
    mode: "generate", n_layers: 3, layers: [1, 2], strengths: [0, 4], prompts: [XSS],
    cells: [[cell(0), cell(1)], [cell(0), cell(1)]], base: [" a b c"],
    score: pack([0, 0.5, 0, 0.9], [2, 2]), perplexity: pack([10, 12, 10, 90], [2, 2]), base_perplexity: 10,
    broken: [[false, false], [false, true]], classes: [], probs: null, target: "", suggested: [],
    vector: pack([1, 2, 3, 4, 5, 6], [2, 3]), model_hint: "m", selected_layer: 2, selected_strength: 4,
    done: true, ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; delete (window as unknown as Record<string, unknown>).__xss; });

describe("SteeringView", () => {
  it("draws a layers x strengths grid with changed tokens marked and the guard flagged, escaped", () => {
    const m = mount(steering, generate());
    expect(m.$$("td[data-layer]")).toHaveLength(4);
    expect(m.$$("td.lw-bad")).toHaveLength(1);
    expect(m.$("td.lw-bad").getAttribute("data-layer")).toBe("2");
    const marks = m.$$("[data-testid=grid] mark");
    expect(marks).toHaveLength(2); // the strength-4 column
    expect(marks[0].textContent).toBe(XSS); // as text, not HTML
    expect(m.$$("img")).toHaveLength(0);
    expect(m.$("[data-testid=cell-title]").textContent).toContain("Layer 2, strength 4");
  });

  it("clicking a cell selects it", () => {
    const m = mount(steering, generate());
    (m.$$("td[data-layer]")[1] as HTMLElement).click();
    expect(m.model.get("selected_layer")).toBe(1);
    expect(m.model.get("selected_strength")).toBe(4);
  });

  it("classifiers: probability lines and the suggested strength", () => {
    const m = mount(steering, generate({ mode: "classify", cells: [], classes: ["NEG", "POS"], target: "NEG",
      probs: pack([0.1, 0.9, 0.2, 0.8, 0.1, 0.9, 0.6, 0.4], [2, 2, 2]), suggested: [4, null] }));
    expect(m.$("[data-testid=suggested]").textContent).toContain("layer 1: 4");
    expect(m.$("[data-testid=suggested]").textContent).toContain("layer 2: none");
  });

  it("writes safetensors and GGUF bytes with the vector inside", () => {
    const v = decode(pack([1, 2, 3, 4, 5, 6], [2, 3]))!;
    const st = safetensorsBytes([1, 2], v);
    const n = Number(new DataView(st.buffer).getBigUint64(0, true));
    const head = JSON.parse(new TextDecoder().decode(st.slice(8, 8 + n)));
    expect(head["layer.2"]).toEqual({ dtype: "F32", shape: [3], data_offsets: [12, 24] });
    expect(new DataView(st.buffer).getFloat32(8 + n + 12, true)).toBe(4);
    const g = ggufBytes([1, 2], v, "m");
    expect(new TextDecoder().decode(g.slice(0, 4))).toBe("GGUF");
    const f = new Float32Array(g.buffer.slice(g.length - 64));
    expect(Array.from(f.slice(0, 3))).toEqual([1, 2, 3]);
    expect(Array.from(f.slice(8, 11))).toEqual([4, 5, 6]);
  });
});

describe("SteeringView marks follow the theme (issue 31)", () => {
  const setDark = (on: boolean) => {
    document.body.dataset.jpThemeLight = on ? "false" : "true";
    document.body.dataset.jpThemeName = on ? "JupyterLab Dark" : "JupyterLab Light";
  };
  const rgbOf = (css: string): RGB => css === "#fff" ? [255, 255, 255] : css === "#000" ? [0, 0, 0]
    : (css.match(/\d+/g) ?? []).slice(0, 3).map(Number) as RGB;
  const markColours = (m: { $$: (s: string) => Element[] }) =>
    m.$$("mark").map((e) => [rgbOf((e as HTMLElement).style.background), rgbOf((e as HTMLElement).style.color)]);
  afterEach(() => { delete document.body.dataset.jpThemeLight; delete document.body.dataset.jpThemeName; syncTheme(); });

  it("dark theme: the <mark> is the dark sequential palette's light step with readable ink, not yellow", () => {
    setDark(true);
    const m = mount(steering, generate());
    const marks = markColours(m);
    expect(marks).toHaveLength(3); // two in the grid, one in the selected cell's detail
    const step = SEQUENTIAL_DARK[Math.round(255 * 0.25)]; // seq(1, 4)
    for (const [bg, fg] of marks) {
      expect(bg).toEqual(step);
      expect(luminance(bg)).toBeLessThan(0.3); // a dark page keeps a dark highlight (yellow is ~0.9)
      expect(fg).toEqual(rgbOf(ink(step)));
      expect(contrast(bg, fg)).toBeGreaterThan(4.5);
    }
  });

  it("light theme: the light palette's step; a theme change recolours the marks", async () => {
    setDark(false);
    const m = mount(steering, generate());
    expect(markColours(m)[0][0]).toEqual(SEQUENTIAL[Math.round(255 * 0.25)]);
    setDark(true);
    await vi.waitFor(() => expect(markColours(m).every(([bg]) => bg.join() === SEQUENTIAL_DARK[64].join())).toBe(true));
  });
});
