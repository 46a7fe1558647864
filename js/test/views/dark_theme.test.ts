// Dark theme (issue 31, item 8): heatmaps, token chips and colour bars take the dark palette (the
// neutral end a dark grey near JupyterLab Dark's background, never white), also when the theme changes
// after the view was drawn; faded scatter points stay visible.
import { afterEach, describe, expect, it, vi } from "vitest";
import logit_lens from "../../src/views/logit_lens";
import neuron from "../../src/views/neuron";
import { DIVERGING_DARK, luminance, RGB, SEQUENTIAL, SEQUENTIAL_DARK, syncTheme } from "../../src/lib/colors";
import { fadedAlpha } from "../../src/lib/scatter";
import { Call } from "../helpers";
import { mount, pack } from "./fixtures";

const T = 3, N = 5;
const neuronState = () => ({
  tokens: ["The", "cat", "sat"], n_layers: 1, n_neurons: N, k: 3, selected_layer: 0, selected_token: null,
  selected_neuron: 2, ablation_mode: "", ablation: {},
  // neuron 2 is 0 on token 0 (the neutral colour) and +-1 elsewhere
  acts: { ...pack(Array.from({ length: T * N }, (_, i) => (i % N === 2 ? [0, 1, -1][Math.floor(i / N)] : 0.5)), [T, N]), layer: 0 },
});
const R = 2;
const lensState = () => ({
  tokens: ["a", "b", "c"], n_layers: 1, layer_names: ["embeddings", "layer 0"], top_tokens: ["x", "y"],
  top_index: pack(new Array(R * T * 2).fill(0), [R, T, 2], "int32"),
  top_probs: pack([0, 0, 0.5, 0, 1, 0, 0, 0, 0, 0, 0, 0], [R, T, 2]), // top-1 0, 0.5, 1, then zeros
  next_prob: pack(new Array(R * T).fill(0), [R, T]), colour: "top", selected_layer: null, selected_token: null,
});

const rgbOf = (css: string): RGB => (css.match(/\d+/g) ?? []).slice(0, 3).map(Number) as RGB;
const chips = (el: HTMLElement) => Array.from(el.querySelectorAll<HTMLElement>("[data-testid=tokens] .lw-tok")).map((s) => rgbOf(s.style.background));
/** Pixels of the last bitmap put on a canvas (the heatmap's 1 px per cell image). */
function lastBitmap(calls: Call[]): RGB[] {
  const put = calls.filter((c) => c.name === "putImageData").pop()!;
  const d = (put.args[0] as { data: Uint8ClampedArray }).data;
  return Array.from({ length: d.length / 4 }, (_, i) => [d[4 * i], d[4 * i + 1], d[4 * i + 2]] as RGB);
}
const white = (c: RGB) => c.every((v) => v >= 240);

function setDark(on: boolean): void {
  document.body.dataset.jpThemeLight = on ? "false" : "true";
  document.body.dataset.jpThemeName = on ? "JupyterLab Dark" : "JupyterLab Light";
}

afterEach(() => {
  vi.restoreAllMocks();
  document.body.innerHTML = "";
  delete document.body.dataset.jpThemeLight;
  delete document.body.dataset.jpThemeName;
  syncTheme();
});

describe("dark theme", () => {
  it("heatmap cells and token chips use the dark palette: zero is dark grey, no white anywhere", () => {
    setDark(true);
    const lens = mount(logit_lens, lensState());
    const px = lastBitmap(lens.calls);
    expect(px[0]).toEqual(SEQUENTIAL_DARK[0]); // probability 0
    expect(px[2]).toEqual(SEQUENTIAL_DARK[255]); // probability 1
    expect(px.some(white)).toBe(false);
    expect(luminance(px[0])).toBeLessThan(0.03);
    const n = mount(neuron, neuronState());
    const c = chips(n.el);
    expect(c[0]).toEqual(DIVERGING_DARK[128]); // activation 0: the dark neutral centre
    expect(c.some(white)).toBe(false);
    for (const e of [...lens.el.querySelectorAll<HTMLElement>("canvas"), ...n.el.querySelectorAll<HTMLElement>("canvas")]) {
      expect(e.style.background).toBe(""); // canvases carry no background of their own: the theme's shows
    }
    // the colour bar's scale starts from the dark end too
    const bar = (lens.parts.heat as { colorbar: { scale: { color(v: number): RGB } } }).colorbar;
    expect(bar.scale.color(0)).toEqual(SEQUENTIAL_DARK[0]);
  });

  it("light theme: the same views are white at zero (the palettes differ only by theme)", () => {
    setDark(false);
    const lens = mount(logit_lens, lensState());
    expect(lastBitmap(lens.calls)[0]).toEqual(SEQUENTIAL[0]);
    expect(white(SEQUENTIAL[0])).toBe(true);
  });

  it("a theme change after drawing recolours heatmaps and chips", async () => {
    setDark(false);
    const lens = mount(logit_lens, lensState());
    expect(lastBitmap(lens.calls)[0]).toEqual(SEQUENTIAL[0]);
    setDark(true); // what JupyterLab does when the user picks JupyterLab Dark
    await vi.waitFor(() => expect(lastBitmap(lens.calls)[0]).toEqual(SEQUENTIAL_DARK[0]));
    lens.cleanup();
    setDark(false);
    await new Promise((r) => setTimeout(r, 0));
    const n = mount(neuron, neuronState());
    expect(luminance(chips(n.el)[0])).toBeGreaterThan(0.9); // light: the neutral centre is near white
    setDark(true);
    await vi.waitFor(() => expect(chips(n.el)[0]).toEqual(DIVERGING_DARK[128]));

  });

  it("faded scatter points are stronger on a dark page", () => {
    expect(fadedAlpha(false)).toBe(0.25);
    expect(fadedAlpha(true)).toBeGreaterThanOrEqual(0.5);
  });
});
