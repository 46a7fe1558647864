import { afterEach, describe, expect, it, vi } from "vitest";
import attention from "../../src/views/attention";
import { BASE, choose, clickCell, mount, Mounted, pack, ramp, stripSelected, stripTexts, stripWeights, XSS } from "./fixtures";
import { createModel } from "../../src/lib/model";

const L = 2, H = 3, T = 4, S = 4;
const tokens = ["<s>", "The", XSS, "cat"];
const matrixOf = (mode: string, layer: number, head: number, shift = 0) =>
  ({ ...pack(ramp(T * T).map((v) => v + shift), [T, T]), mode, layer, head });

function state(extra: Record<string, unknown> = {}) {
  return {
    tokens, n_layers: L, n_heads: H, causal: true,
    grid: pack(ramp(L * H * S * S), [L, H, S, S]),
    stats: pack(ramp(2 * L * H, 1), [2, L, H]), // stat 0: 0..5, stat 1: 6..11
    stat_names: ["entropy", "prev_token"], stat_help: { entropy: "spread", prev_token: "<b>previous</b>" },
    matrix: matrixOf("head", 0, 0), mode: "head", selected_layer: 0, selected_head: 0, selected_token: null,
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
});
