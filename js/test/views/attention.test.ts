import { afterEach, describe, expect, it, vi } from "vitest";
import attention, { gridThumb, headViewSize, statLabel, TILE_DEBOUNCE_MS, TILE_MAX } from "../../src/views/attention";
import {
  BASE, choose, clickCell, colorbars, everyHeatmapHasColorbar, mount, Mounted, pack, ramp, stripSelected, stripTexts, stripWeights, XSS,
} from "./fixtures";
import { createModel } from "../../src/lib/model";
import { Heatmap } from "../../src/lib/heatmap";
import { TokenStrip } from "../../src/lib/tokens";
import { mouse } from "../helpers";
import { css, seq } from "../../src/lib/colors";
import { MAX_SPANS } from "../../src/lib/tokens";

const L = 2, H = 3, T = 4, S = 4;
const tokens = ["<s>", "The", XSS, "cat"];
/** The exact matrix of (mode, layer, head), as Python sends it for short inputs (step 1). */
const matrixOf = (mode: string, layer: number, head: number, shift = 0) =>
  ({ ...pack(ramp(T * T).map((v) => v + shift), [T, T]), mode, layer, head, step: 1, n: T });

function state(extra: Record<string, unknown> = {}) {
  return {
    tokens, n_tokens: T, n_layers: L, n_heads: H, causal: true,
    grid: pack(ramp(L * H * S * S), [L, H, S, S]),
    stats: pack(ramp(2 * L * H, 1), [2, L, H]), // stat 0: 0..5, stat 1: 6..11
    stat_names: ["entropy", "prev_token"], stat_help: { entropy: "spread", prev_token: "<b>previous</b>" },
    matrix: matrixOf("head", 0, 0), tile: {}, tile_request: {},
    mode: "head", selected_layer: 0, selected_head: 0, selected_token: null,
    ...extra,
  };
}

function clickThumb(m: Mounted, layer: number, head: number, dx = 0) {
  const grid = m.$<HTMLCanvasElement>("[data-testid=grid]");
  const d = grid.dataset;
  const thumb = Number(d.thumb), gap = Number(d.gap);
  grid.dispatchEvent(new MouseEvent("click", {
    clientX: Number(d.left) + head * (thumb + gap) + thumb / 2 + dx, clientY: Number(d.top) + layer * (thumb + gap) + thumb / 2, bubbles: true,
  }));
}

const heatOf = (m: Mounted) => m.parts.heat as Heatmap;
const stripOf = (m: Mounted) => m.parts.strip as TokenStrip;

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("AttentionView", () => {
  it("renders the grid, the head view, the token strip (as text) and the statistics", () => {
    const m = mount(attention, state());
    expect(m.$("[data-lw-view=attention]").dataset.ready).toBe("1");
    expect(m.$("[data-testid=grid]").dataset).toMatchObject({ layers: "2", heads: "3" });
    expect(stripTexts(m)).toEqual(tokens);
    expect(m.el.querySelector("img")).toBeNull();
    expect(m.$("[data-testid=head-view]").dataset).toMatchObject({ mode: "head", layer: "0", head: "0" });
    expect(m.$("[data-testid=info]").textContent).toBe("layer 0, head 0 \u00b7 4 tokens");
    expect(m.$$("[data-testid=stats] tbody tr")).toHaveLength(L * H);
    expect(m.$$("[data-testid=stats] tbody tr")[5].textContent).toBe("125.00011.000"); // layer 1, head 2: stats 5 and 11
  });

  it("clicking a grid thumbnail selects its layer and head; a click in a gap selects nothing", () => {
    const m = mount(attention, state());
    clickThumb(m, 1, 2);
    expect([m.model.get("selected_layer"), m.model.get("selected_head")]).toEqual([1, 2]);
    expect(m.saves()).toBe(1);
    clickThumb(m, 0, 0, 33); // 1 px right of thumbnail (0, 0): in the gap
    expect([m.model.get("selected_layer"), m.model.get("selected_head")]).toEqual([1, 2]);
    expect(m.saves()).toBe(1);
  });

  it("waits for the matrix of a new selection, then draws it", () => {
    const m = mount(attention, state());
    m.model.set("selected_layer", 1);
    m.model.set("selected_head", 2);
    expect(m.$("[data-testid=info]").textContent).toBe("loading\u2026");
    m.model.set("matrix", matrixOf("head", 1, 2, 10));
    expect(m.$("[data-testid=head-view]").dataset).toMatchObject({ layer: "1", head: "2" });
    const drawn = (m.parts.heat as { matrix: { values: Float32Array } }).matrix;
    expect(drawn.values[0]).toBe(10);
    expect(m.$$("[data-testid=stats] tr.lw-sel").map((r) => r.dataset.id)).toEqual(["1-2"]);
  });

  it("clicking a heatmap cell or a token selects that (query) token", () => {
    const m = mount(attention, state());
    clickCell(m, "heatmap", 2, 1);
    expect(m.model.get("selected_token")).toBe(2);
    m.$$("[data-testid=tokens] .lw-tok")[3].click();
    expect(m.model.get("selected_token")).toBe(3);
    expect(m.saves()).toBe(2);
  });

  it("a selected token (set from Python) is marked, and the strip shows where it attends", () => {
    const m = mount(attention, state());
    expect(stripWeights(m)).toEqual([null, null, null, null]);
    m.model.set("selected_token", 1);
    expect(stripSelected(m)).toBe(1);
    expect(stripWeights(m)).toEqual(ramp(T * T).slice(T, 2 * T).map((v) => Math.fround(v)));
    m.model.set("selected_token", null);
    expect(stripSelected(m)).toBe(-1);
    expect(stripWeights(m)).toEqual([null, null, null, null]);
  });

  it("hovering a token shows its row", () => {
    const m = mount(attention, state());
    m.$$("[data-testid=tokens] .lw-tok")[2].dispatchEvent(new MouseEvent("mouseenter"));
    expect(stripWeights(m)).toEqual(ramp(T * T).slice(2 * T, 3 * T).map((v) => Math.fround(v)));
  });

  it("the mode menu and a statistics row commit their choice", () => {
    const m = mount(attention, state());
    choose(m.$<HTMLSelectElement>("[data-testid=mode]"), "rollout");
    expect(m.model.get("mode")).toBe("rollout");
    (m.$("[data-testid=stats] tr[data-id='1-1']")).click();
    expect([m.model.get("selected_layer"), m.model.get("selected_head"), m.model.get("mode")]).toEqual([1, 1, "head"]);
    expect(m.saves()).toBe(2);
  });

  it("in a static export every head is stored: switching needs no kernel", () => {
    const heads = pack(ramp(L * H * T * T, 1), [L, H, T, T]);
    const mean = pack(ramp(L * T * T, -1), [L, T, T]);
    const m = mount(attention, state({ _export: { heads, mean, rollout: mean } }));
    m.model.set("selected_head", 2);
    m.model.set("selected_layer", 1);
    const drawn = () => Array.from((m.parts.heat as { matrix: { values: Float32Array } }).matrix.values);
    expect(drawn()).toEqual(ramp(T * T, 1).map((v) => v + (1 * H + 2) * T * T));
    m.model.set("mode", "mean");
    expect(drawn()).toEqual(ramp(T * T, -1).map((v) => v - 1 * T * T));
    expect(m.$<HTMLSelectElement>("[data-testid=mode]").value).toBe("mean");
  });

  it("renders where canvases cannot draw (no 2-D context)", () => {
    const model = createModel({ ...BASE, ...state() });
    const el = document.createElement("div");
    expect(() => attention.render({ model, el })).not.toThrow();
    expect(el.querySelectorAll(".lw-tok")).toHaveLength(T);
  });

  it("cleanup stops following the model", () => {
    const m = mount(attention, state());
    m.cleanup();
    m.model.set("selected_token", 2);
    expect(stripSelected(m)).toBe(-1);
  });

  it("hovering a cell boxes that cell's row and column (crosshair), not the row's token column", () => {
    const m = mount(attention, state());
    const heat = heatOf(m);
    const { left, top, cellW: cell } = heat.layout;
    m.calls.length = 0;
    mouse(heat.canvas, "mousemove", ...heat.cellCenter(2, 1));
    const boxes = m.calls.filter((c) => c.name === "strokeRect").map((c) => c.args);
    expect(boxes).toEqual([[left + 0.5, top + 2 * cell + 0.5, T * cell, cell], [left + cell + 0.5, top + 0.5, cell, T * cell]]);
    expect(stripWeights(m)).toEqual(ramp(T * T).slice(2 * T, 3 * T).map((v) => Math.fround(v))); // the strip: row 2
  });

  it("colour bars: the heatmap's [0, vmax] in attention weights, the thumbnails', the statistic's; the strip paints on the heatmap's scale", () => {
    const m = mount(attention, state());
    expect(everyHeatmapHasColorbar(m)).toBe(true);
    const bars = colorbars(m);
    const vmax = Math.fround((T * T - 1) / (T * T));
    expect(bars["heatmap-colorbar"]).toEqual({ label: "attention weight", kind: "seq", min: 0, max: vmax });
    expect(bars["grid-colorbar"]).toMatchObject({ label: "attention weight", kind: "seq", min: 0 });
    expect(bars["stat-colorbar"]).toBeUndefined();
    choose(m.$<HTMLSelectElement>("[data-testid=grid-stat]"), "entropy");
    expect(colorbars(m)["stat-colorbar"]).toEqual({ label: "entropy", kind: "seq", min: 0, max: 5 });
    m.model.set("selected_token", 1);
    expect(stripOf(m).scale).toBe(heatOf(m).scale);
    const last = m.$$("[data-testid=tokens] .lw-tok")[T - 1];
    const w = Math.fround((2 * T - 1) / (T * T)); // row 1's largest weight is not the colour scale's top
    expect(last.style.background.replace(/\s/g, "")).toBe(css(seq(w, vmax)));
  });

  it("sizes the head view from the width of the output area", () => {
    expect(headViewSize(940, 626, 86)).toBe(846); // no room beside a wide grid: below it, full width
    expect(headViewSize(1600, 626, 86)).toBe(866); // beside it
    expect(headViewSize(300, 100, 86)).toBe(206);
    expect(headViewSize(5000, 100, 86)).toBe(880);
    const m = mount(attention, state({ tokens: Array.from({ length: 100 }, (_, i) => `t${i}`), n_tokens: 100, matrix: { ...pack(ramp(100 * 100), [100, 100]), mode: "head", layer: 0, head: 0 } }));
    const heat = heatOf(m);
    expect(heat.plot.width).toBeGreaterThan(520); // happy-dom lays nothing out: the default width (940 px)
    expect(Number(heat.canvas.dataset.rowLabels)).toBeGreaterThan(0); // T = 100: labelled
    expect(Number(heat.canvas.dataset.colLabels)).toBeGreaterThan(0);
  });

  it("an old matrix without step or n is the exact matrix", () => {
    const m = mount(attention, state({ matrix: { ...pack(ramp(T * T), [T, T]), mode: "head", layer: 0, head: 0 } }));
    expect(heatOf(m).blockStep).toBe(1);
    expect(heatOf(m).rows).toBe(T);
    expect(m.$("[data-testid=head-view]").dataset.step).toBe("1");
  });
});

// ---- long inputs: an overview, exact tiles on request, the grid and statistics later ----

const LT = 1000, STEP = 4, R = LT / STEP;
const longTokens = Array.from({ length: LT }, (_, i) => `w${i}`);
const overviewOf = (mode: string, layer: number, head: number) =>
  ({ ...pack(Array.from({ length: R * R }, (_, k) => ((Math.floor(k / R) + (k % R)) % 64) / 64), [R, R], "float16"), mode, layer, head, step: STEP, n: LT });
const exact = (r: number, c: number) => ((r * 7 + c) % 100) / 1024; // float16-exact
const tileFor = (q: Record<string, number | string>, keys: Record<string, unknown> = {}) => {
  const rows = Number(q.rows), cols = Number(q.cols), r0 = Number(q.r0), c0 = Number(q.c0);
  const values = Array.from({ length: rows * cols }, (_, k) => exact(r0 + Math.floor(k / cols), c0 + (k % cols)));
  return { ...pack(values, [rows, cols], "float16"), mode: q.mode, layer: q.layer, head: q.head, r0, c0, ...keys };
};
const longState = (extra: Record<string, unknown> = {}) =>
  state({ tokens: longTokens, n_tokens: LT, matrix: overviewOf("head", 0, 0), grid: {}, stats: {}, ...extra });

describe("AttentionView, long inputs", () => {
  afterEach(() => vi.useRealTimers());

  it("draws the overview first (labelled, a window of the tokens), then the grid and statistics as they arrive", () => {
    const m = mount(attention, longState());
    const heat = heatOf(m);
    expect(m.$("[data-lw-view=attention]").dataset.ready).toBe("1");
    expect([heat.rows, heat.cols, heat.blockStep]).toEqual([LT, LT, STEP]);
    expect(heat.matrix!.shape).toEqual([R, R]);
    expect(m.$("[data-testid=info]").textContent).toContain(`${LT} tokens \u00b7 overview: each cell the largest weight of 4\u00d74 tokens`);
    expect(Number(heat.canvas.dataset.rowLabels)).toBeGreaterThan(0);
    expect(m.$$("[data-testid=tokens] .lw-tok").length).toBeLessThanOrEqual(MAX_SPANS);
    expect(m.$("[data-testid=grid-status]").textContent).toContain("computing");
    expect(m.$("[data-testid=stats-status]").textContent).toContain("computing");
    expect(m.$$("[data-testid=stats] tbody tr")).toHaveLength(0);
    expect(colorbars(m)["grid-colorbar"]).toBeUndefined();
    clickThumb(m, 1, 1); // the grid answers clicks before its thumbnails come
    expect([m.model.get("selected_layer"), m.model.get("selected_head")]).toEqual([1, 1]);
    m.model.set("grid", pack(ramp(L * H * S * S), [L, H, S, S]));
    expect(m.$("[data-testid=grid-status]").textContent).toBe("");
    expect(colorbars(m)["grid-colorbar"]).toMatchObject({ label: "attention weight (thumbnails: block means)", min: 0 });
    m.model.set("stats", pack(ramp(2 * L * H, 1), [2, L, H]));
    expect(m.$$("[data-testid=stats] tbody tr")).toHaveLength(L * H);
    expect(m.$("[data-testid=stats-status]").textContent).toBe("");
  });

  it("hovering an overview cell names its block; the strip shows block maxima until a tile comes", () => {
    const m = mount(attention, longState());
    const heat = heatOf(m);
    mouse(heat.canvas, "mousemove", ...heat.cellCenter(9, 5));
    expect(heat.tip.textContent).toContain("block: queries 8\u201311 \u2192 keys 4\u20137");
    const shown = m.$$("[data-testid=tokens] .lw-tok");
    expect(shown[5].dataset.weight).toBe(String(heat.valueAt(9, 5)));
    expect(stripOf(m).el.dataset.exact).toBe("0");
    expect(m.$("[data-testid=strip-range]").textContent).toContain(`of ${LT}`);
  });

  it("zooming in to at most 256 x 256 tokens asks for the exact tile once the view rests (debounced)", () => {
    vi.useFakeTimers();
    const m = mount(attention, longState());
    const heat = heatOf(m);
    heat.zoomAt(500, 500, 2); // 500 x 500 tokens: too many for a tile
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1);
    expect(m.saves()).toBe(0);
    heat.zoomAt(500, 500, 2); // 250 x 250
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS / 2);
    heat.zoomAt(480, 520, 1.25); // still moving: 200 x 200
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS / 2);
    expect(m.saves()).toBe(0);
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS);
    expect(m.saves()).toBe(1);
    const q = m.model.get("tile_request");
    const w = heat.window;
    expect(q).toMatchObject({ mode: "head", layer: 0, head: 0 });
    expect(q.rows).toBeLessThanOrEqual(TILE_MAX);
    expect(q.cols).toBeLessThanOrEqual(TILE_MAX);
    expect(q.r0).toBeLessThanOrEqual(Math.floor(w.y0));
    expect(q.c0).toBeLessThanOrEqual(Math.floor(w.x0));
    expect(q.r0 + q.rows).toBeGreaterThanOrEqual(Math.ceil(w.y1));
    expect(q.c0 + q.cols).toBeGreaterThanOrEqual(Math.ceil(w.x1));
    heat.zoomAt(500, 500, 1.01); // inside the window asked for: no new request
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1);
    expect(m.saves()).toBe(1);
  });

  it("draws a tile only when it answers the current selection and request", () => {
    vi.useFakeTimers();
    const m = mount(attention, longState());
    const heat = heatOf(m);
    heat.zoomAt(500, 500, 5); // 200 x 200
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1);
    const q = m.model.get("tile_request");
    m.model.set("tile", tileFor(q, { head: 1 })); // another head
    expect(heat.tile).toBeNull();
    m.model.set("tile", tileFor(q, { r0: q.r0 + 1 })); // another window
    expect(heat.tile).toBeNull();
    m.model.set("tile", tileFor(q, { mode: "mean" }));
    expect(heat.tile).toBeNull();
    m.model.set("tile", tileFor(q));
    expect(heat.tile).not.toBeNull();
    expect(heat.canvas.dataset.exact).toBe("tile");
    const r = Math.floor((heat.window.y0 + heat.window.y1) / 2), c = Math.floor(heat.window.x0) + 3;
    expect(heat.exactAt(r, c)).toBe(true);
    expect(heat.valueAt(r, c)).toBe(exact(r, c));
    // hovering a cell in the tile: exact tooltip, and the strip shows the row's exact weights
    mouse(heat.canvas, "mousemove", ...heat.cellCenter(r, c));
    expect(heat.tip.textContent).toBe(`w${r} [${r}] \u2192 w${c} [${c}]: ${exact(r, c).toFixed(4)}`);
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1);
    const [lo, hi] = stripOf(m).range;
    expect([lo, hi]).toEqual([Math.floor(heat.window.x0), Math.ceil(heat.window.x1)]); // the visible columns
    const shown = m.$$("[data-testid=tokens] .lw-tok");
    expect(shown[3].dataset.index).toBe(String(c));
    expect(Number(shown[3].dataset.weight)).toBe(exact(r, c));
    expect(stripOf(m).el.dataset.exact).toBe("1");
    shown[3].click();
    expect(m.model.get("selected_token")).toBe(c);
    // another head: the tile goes; a tile for the old head arriving late is ignored
    m.model.set("selected_head", 2);
    m.model.set("matrix", overviewOf("head", 0, 2));
    expect(heat.tile).toBeNull();
    m.model.set("tile", tileFor(q, { r0: q.r0 }));
    expect(heat.tile).toBeNull();
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1); // still zoomed in: asks for the new head's tile
    expect(m.model.get("tile_request")).toMatchObject({ head: 2 });
  });

  it("asks for no tiles for rollout overviews, exact matrices or in static exports", () => {
    vi.useFakeTimers();
    const roll = mount(attention, longState({ mode: "rollout", matrix: overviewOf("rollout", 0, 0) }));
    heatOf(roll).zoomAt(500, 500, 5);
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1);
    expect(roll.saves()).toBe(0);
    document.body.innerHTML = "";
    const big = 300, toks = Array.from({ length: big }, (_, i) => `t${i}`);
    const ex = mount(attention, state({ tokens: toks, n_tokens: big, matrix: { ...pack(ramp(big * big), [big, big]), mode: "head", layer: 0, head: 0, step: 1, n: big } }));
    heatOf(ex).zoomAt(100, 100, 4);
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1);
    expect(ex.saves()).toBe(0);
    expect(stripTexts(ex)).toHaveLength(big); // up to MAX_SPANS tokens: the whole strip, as before
    document.body.innerHTML = "";
    const st = mount(attention, longState({ _export: { partial: true } })); // no kernel to answer
    expect(heatOf(st).blockStep).toBe(STEP);
    heatOf(st).zoomAt(500, 500, 5);
    vi.advanceTimersByTime(TILE_DEBOUNCE_MS + 1);
    expect(st.saves()).toBe(0);
  });
});

describe("statistic labels on the thumbnails", () => {
  it("the number fits the thumbnail: two decimals, else one, in 10 px down to 7 px, else none", () => {
    expect(statLabel(0.953, 46)).toEqual({ text: "0.95", font: 10 });
    expect(statLabel(-0.123, 26)).toEqual({ text: "-0.12", font: 8 });
    expect(statLabel(-0.123, 18)).toEqual({ text: "-0.1", font: 7 });
    expect(statLabel(-0.123, 16)).toBeNull(); // too narrow to read: the colour, the tooltip and the table say it
    expect(statLabel(NaN, 46)).toEqual({ text: "\u2013", font: 10 });
  });
});


describe("gridThumb: the head grid fits the output area", () => {
  it("shrinks the thumbnails to the width, between 18 and 64 px", () => {
    expect(gridThumb(Infinity, 12)).toBe(46); // 600 px of heads at most
    expect(gridThumb(400, 12)).toBe(27); // (400 - 28) / 12 - 4
    expect(gridThumb(200, 32)).toBe(18); // never below 18: the grid scrolls, with a cue
    expect(gridThumb(2000, 2)).toBe(64);
  });
});
