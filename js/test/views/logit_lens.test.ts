import { afterEach, describe, expect, it, vi } from "vitest";
import logit_lens from "../../src/views/logit_lens";
import { choose, clickCell, colorbars, everyHeatmapHasColorbar, mount, pack } from "./fixtures";
import { quoted as q } from "../../src/lib/format";
import { cellWidthFor } from "../../src/lib/heatmap";

const R = 3, T = 3, K = 2; // rows: embeddings + 2 blocks
const tokens = ["The", "<b>cat</b>", "sat"];
const top_tokens = ["a", "<i>b</i>", "c", "d"];
// top-1 of cell (r, c) is token (r + c) % 4, with probability 0.5 + 0.1 r; top-2 is token 3 at 0.1
const top_index = Array.from({ length: R * T }, (_, i) => [(Math.floor(i / T) + (i % T)) % 4, 3]).flat();
const top_probs = Array.from({ length: R * T }, (_, i) => [0.5 + 0.1 * Math.floor(i / T), 0.1]).flat();

function state(extra: Record<string, unknown> = {}) {
  return {
    tokens, n_layers: 2, layer_names: ["embeddings", "layer 0", "layer 1"], top_tokens,
    top_index: pack(top_index, [R, T, K], "int32"), top_probs: pack(top_probs, [R, T, K]),
    next_prob: pack(Array.from({ length: R * T }, (_, i) => i / 10), [R, T]),
    colour: "top", selected_layer: null, selected_token: null, ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("LogitLensView", () => {
  it("cells are wide enough for their top tokens (up to 12 characters whole, longer ones with an ellipsis)", () => {
    const labels = ["Manchester", "internationalization", "[CLS]", "d"];
    const m = mount(logit_lens, state({ top_tokens: labels }));
    const canvas = m.$<HTMLCanvasElement>("[data-testid=heatmap]");
    // 12 characters of 11 px monospace text (6.5 px each) and 3 px each side: 84 px, cells 28 px tall
    expect(Number(canvas.dataset.cellW)).toBe(cellWidthFor(12));
    expect(cellWidthFor(12)).toBe(84);
    expect(Number(canvas.dataset.cell)).toBe(28);
    const drawn = m.texts().map(String);
    expect(drawn).toContain("Manchester");
    expect(drawn).toContain("[CLS]");
    expect(drawn).toContain("internation\u2026"); // 11 characters and the ellipsis, never 2-3
    expect(drawn.some((t) => /^.{1,3}\u2026$/.test(t))).toBe(false);
    // the tooltip names the whole token
    const heat = m.parts.heat as { cellCenter(r: number, c: number): [number, number]; tip: HTMLElement };
    const [x, y] = heat.cellCenter(0, 1); // top-1 of (0, 1): "internationalization"
    canvas.getBoundingClientRect = () => ({ left: 0, top: 0, right: 500, bottom: 500, width: 500, height: 500, x: 0, y: 0, toJSON: () => ({}) });
    canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: x, clientY: y }));
    expect(heat.tip.textContent).toContain(q("internationalization"));
  });

  it("short top tokens: cells only as wide as the longest (never narrower than tall)", () => {
    const m = mount(logit_lens, state());
    expect(Number(m.$<HTMLCanvasElement>("[data-testid=heatmap]").dataset.cellW)).toBeCloseTo(cellWidthFor(8), 9); // "<i>b</i>"
    const one = mount(logit_lens, state({ top_tokens: ["a", "b", "c", "d"] }));
    expect(Number(one.$<HTMLCanvasElement>("[data-testid=heatmap]").dataset.cellW)).toBe(28); // square
  });

  it("draws rows x positions coloured by the top-token probability", () => {
    const m = mount(logit_lens, state());
    const heat = m.parts.heat as { matrix: { shape: number[]; values: Float32Array } };
    expect(heat.matrix.shape).toEqual([R, T]);
    expect(Array.from(heat.matrix.values)).toEqual([0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7].map(Math.fround));
    expect(m.$("[data-testid=detail]").textContent).toBe("Click a cell for its top tokens.");
    expect(everyHeatmapHasColorbar(m)).toBe(true);
    expect(colorbars(m)["heatmap-colorbar"]).toEqual({ label: "probability of the top token", kind: "seq", min: 0, max: 1 });
  });

  it("clicking a cell selects its layer (row 0: the embeddings) and token", () => {
    const m = mount(logit_lens, state());
    clickCell(m, "heatmap", 0, 1);
    expect([m.model.get("selected_layer"), m.model.get("selected_token")]).toEqual(["embeddings", 1]);
    clickCell(m, "heatmap", 2, 2);
    expect([m.model.get("selected_layer"), m.model.get("selected_token")]).toEqual([1, 2]);
    expect(m.saves()).toBe(2);
  });

  it("lists the selected cell's top tokens as text, with the actual next token", () => {
    const m = mount(logit_lens, state());
    m.model.set("selected_layer", 0); // row 1
    m.model.set("selected_token", 1);
    const d = m.$("[data-testid=detail]");
    expect(d.dataset).toMatchObject({ layer: "0", token: "1" });
    expect(Array.from(d.querySelectorAll("li")).map((li) => li.textContent)).toEqual([`${q("c")} 60.0%`, `${q("d")} 10.0%`]);
    expect(d.querySelector(".lw-title")!.textContent).toBe('layer 0, after "<b>cat</b>"');
    expect(d.textContent).toContain(`actual next token ${q("sat")}: 40.0%`);
    expect(d.querySelector("b, i")).toBeNull();
    m.model.set("selected_layer", null);
    expect(d.textContent).toBe("Click a cell for its top tokens.");
  });

  it("the colour menu switches to the probability of the actual next token", () => {
    const m = mount(logit_lens, state());
    choose(m.$<HTMLSelectElement>("[data-testid=colour]"), "next");
    expect(m.model.get("colour")).toBe("next");
    const heat = m.parts.heat as { matrix: { values: Float32Array } };
    expect(Array.from(heat.matrix.values)).toEqual(Array.from({ length: 9 }, (_, i) => Math.fround(i / 10)));
    expect(colorbars(m)["heatmap-colorbar"]).toMatchObject({ label: "probability of the actual next token", min: 0, max: 1 });
  });
});

// lens="tuned": the tuned lens's top-1 of cell (r, c) is token (r + c + 1) % 4 at 0.8; KL per row
function tunedState(extra: Record<string, unknown> = {}) {
  return state({
    lens: "tuned", lens_names: ["logit lens", "tuned <lens>"], kl: pack([4, 2, 0, 1, 0.5, 0], [2, R]),
    tuned_top_tokens: top_tokens,
    tuned_top_index: pack(Array.from({ length: R * T }, (_, i) => [(Math.floor(i / T) + (i % T) + 1) % 4, 3]).flat(), [R, T, K], "int32"),
    tuned_top_probs: pack(Array.from({ length: R * T }, () => [0.8, 0.1]).flat(), [R, T, K]),
    tuned_next_prob: pack(Array.from({ length: R * T }, () => 0.25), [R, T]), ...extra,
  });
}

describe("LogitLensView, lens='tuned'", () => {
  it("draws the logit and the tuned lens side by side, and the KL of each row in one chart", () => {
    const m = mount(logit_lens, tunedState());
    const heats = m.parts.heats as { matrix: { values: Float32Array } }[];
    expect(heats.length).toBe(2);
    expect(Array.from(heats[1].matrix.values)).toEqual(Array(9).fill(Math.fround(0.8)));
    expect(m.$("[data-testid=heatmap-tuned]")).not.toBeNull();
    expect(everyHeatmapHasColorbar(m)).toBe(true);
    const chart = m.$("[data-testid=kl]");
    expect(Array.from(chart.querySelectorAll("polyline")).map((p) => p.getAttribute("data-series"))).toEqual(["logit lens", "tuned <lens>"]);
    expect(chart.querySelector("[data-testid=layer-1] title")!.textContent).toBe("layer 0: logit lens 2.000, tuned <lens> 0.500 nats");
    expect(m.el.querySelector("lens")).toBeNull(); // names are text, never markup
  });

  it("one selection for both lenses: a click on either heatmap or the chart, the detail lists both", () => {
    const m = mount(logit_lens, tunedState());
    clickCell(m, "heatmap-tuned", 1, 2);
    expect([m.model.get("selected_layer"), m.model.get("selected_token")]).toEqual([0, 2]);
    const d = m.$("[data-testid=detail]");
    const items = (name: string) => Array.from(d.querySelectorAll(`[data-lens="${name}"] li`)).map((li) => li.textContent);
    expect(items("logit lens")).toEqual([`${q("d")} 60.0%`, `${q("d")} 10.0%`]);
    expect(items("tuned <lens>")).toEqual([`${q("a")} 80.0%`, `${q("d")} 10.0%`]);
    expect(d.querySelector("i, b")).toBeNull();
    expect(d.textContent).toContain("KL to final (mean over positions): logit lens 2.000, tuned <lens> 0.500");
    (m.$("[data-testid=kl] [data-testid=layer-0]") as unknown as SVGRectElement).dispatchEvent(new MouseEvent("click"));
    expect(m.model.get("selected_layer")).toBe("embeddings");
  });

  it("a tuned lens trained in the background: the logit lens first, the tuned lens and the chart when they arrive", () => {
    const full = tunedState();
    const m = mount(logit_lens, state({ lens: "tuned", lens_names: ["logit lens", "tuned lens"] }));
    expect(m.$("[data-testid=tuned-pending]").textContent).toBe("tuned lens: being trained\u2026");
    expect(m.el.querySelector("[data-testid=heatmap-tuned]")).toBeNull();
    expect(m.el.querySelector("[data-testid=kl]")).toBeNull();
    m.model.set("selected_layer", 0);
    m.model.set("selected_token", 2);
    for (const key of ["tuned_top_tokens", "tuned_top_probs", "tuned_next_prob", "tuned_top_index", "kl"]) m.model.set(key, full[key as keyof typeof full]);
    expect(m.el.querySelector("[data-testid=tuned-pending]")).toBeNull();
    expect(m.$("[data-testid=heatmap-tuned]")).not.toBeNull();
    expect(m.$("[data-testid=kl]").querySelectorAll("polyline").length).toBe(2);
    expect(m.$("[data-testid=detail]").querySelectorAll("[data-lens] ol").length).toBe(2); // the selection kept
    expect((m.parts.heats as unknown[]).length).toBe(2);
  });
});
