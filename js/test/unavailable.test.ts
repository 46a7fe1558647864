// Cells without a value (NaN: a block with no softmax attention, a head a block does not have) are
// drawn as "not available" (hatched, with a tooltip saying why), never in the colour of 0.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Heatmap, isUnavailable, NOT_AVAILABLE } from "../src/lib/heatmap";
import { NDArray } from "../src/lib/ndarray";
import attention, { unavailableWhy } from "../src/views/attention";
import { mouse, stubCanvas } from "./helpers";
import { mount, pack, ramp } from "./views/fixtures";

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

const withGaps: NDArray = { shape: [2, 3], values: Float32Array.from([0, 1, NaN, 3, NaN, 5]) };

describe("Heatmap cells without a value", () => {
  it("hatches exactly the NaN cells and writes nothing in them", () => {
    const calls = stubCanvas();
    const hm = new Heatmap("hm");
    hm.draw(withGaps, { cellText: (r, c) => `${r}${c}` });
    expect(hm.canvas.dataset.unavailable).toBe("2");
    // two hatches: each clipped to its cell's rectangle, at the cells' positions
    const { left, top, cellW } = hm.layout;
    const rects = calls.filter((c) => c.name === "rect").map((c) => c.args);
    expect(rects).toContainEqual([left + 2 * cellW, top, cellW, cellW]);
    expect(rects).toContainEqual([left + cellW, top + cellW, cellW, cellW]);
    const written = calls.filter((c) => c.name === "fillText").map((c) => c.args[0]);
    expect(written).toEqual(expect.arrayContaining(["00", "01", "10", "12"]));
    expect(written).not.toContain("02");
    expect(written).not.toContain("11");
    // a matrix without NaN hatches nothing
    hm.draw({ shape: [1, 2], values: Float32Array.from([0, 1]) });
    expect(hm.canvas.dataset.unavailable).toBe("0");
  });

  it("says 'not available' (or the view's reason) on hover instead of a number", () => {
    stubCanvas();
    const hm = new Heatmap("hm");
    hm.draw(withGaps, { rowLabels: ["a", "b"], colLabels: ["x", "y", "z"], describe: (r, c, v) => `value ${v}` });
    mouse(hm.canvas, "mousemove", ...hm.cellCenter(0, 2));
    expect(hm.tip.textContent).toBe(`a \u2192 z: ${NOT_AVAILABLE}`);
    mouse(hm.canvas, "mousemove", ...hm.cellCenter(0, 1));
    expect(hm.tip.textContent).toBe("value 1");
    hm.draw(withGaps, { unavailable: (r, c) => `head ${c} of block ${r} does not exist` });
    mouse(hm.canvas, "mousemove", ...hm.cellCenter(1, 1));
    expect(hm.tip.textContent).toBe(`1 \u2192 1: head 1 of block 1 does not exist`);
    expect([isUnavailable(NaN), isUnavailable(0), isUnavailable(-Infinity)]).toEqual([true, false, false]);
  });
});

describe("AttentionView blocks without softmax attention", () => {
  const L = 2, H = 3, T = 4, S = 4;
  const why = "the weights it returns do not sum to 1 over the keys (a linear-attention or state-space mixer)";
  const state = {
    tokens: ["a", "b", "c", "d"], n_tokens: T, n_layers: L, n_heads: H, causal: true,
    grid: pack(ramp(L * H * S * S), [L, H, S, S]),
    // Python sends 0 for the statistics of a block without attention: they must not be drawn or listed
    stats: pack([0, 0, 0, 7, 8, 9], [1, L, H]), stat_names: ["entropy"], stat_help: {},
    matrix: { ...pack(ramp(T * T), [T, T]), mode: "head", layer: 1, head: 0, step: 1, n: T }, tile: {}, tile_request: {},
    mode: "head", selected_layer: 1, selected_head: 0, selected_token: null,
    unavailable: { "0": why },
  };

  const thumbCenter = (grid: HTMLCanvasElement, layer: number, head: number): [number, number] => {
    const d = grid.dataset, thumb = Number(d.thumb), gap = Number(d.gap);
    return [Number(d.left) + head * (thumb + gap) + thumb / 2, Number(d.top) + layer * (thumb + gap) + thumb / 2];
  };

  it("hatches the block's thumbnails, leaves it out of the statistics, and says why on hover", () => {
    const m = mount(attention, state);
    const grid = m.$<HTMLCanvasElement>("[data-testid=grid]");
    // the hatch is clipped to each of block 0's thumbnails; block 1's are drawn as images
    const d = grid.dataset, thumb = Number(d.thumb);
    const rects = m.calls.filter((c) => c.name === "rect").map((c) => c.args);
    for (let hd = 0; hd < H; hd++) {
      const [x, y] = thumbCenter(grid, 0, hd);
      expect(rects).toContainEqual([x - thumb / 2, y - thumb / 2, thumb, thumb]);
    }
    const thumbs = m.calls.filter((c) => c.name === "drawImage" && c.args.length === 5 && c.args[3] === thumb);
    expect(thumbs.map((c) => [c.args[1], c.args[2]])).toEqual(
      [0, 1, 2].map((hd) => thumbCenter(grid, 1, hd).map((v) => v - thumb / 2)));
    // statistics: block 1's heads only (7, 8, 9), and its scale from them alone
    const rows = m.$$<HTMLTableRowElement>("[data-testid=stats] tbody tr");
    expect(rows.map((r) => r.dataset.id)).toEqual(["1-0", "1-1", "1-2"]);
    mouse(grid, "mousemove", ...thumbCenter(grid, 0, 1));
    expect(grid.title).toBe(unavailableWhy(state.unavailable, 0));
    expect(grid.title).toContain("not available");
    expect(grid.title).toContain(why);
    mouse(grid, "mousemove", ...thumbCenter(grid, 1, 1));
    expect(grid.title).toBe("layer 1, head 1");
  });

  it("a click on a hatched thumbnail selects nothing", () => {
    const m = mount(attention, state);
    const grid = m.$<HTMLCanvasElement>("[data-testid=grid]");
    mouse(grid, "click", ...thumbCenter(grid, 0, 2));
    expect([m.model.get("selected_layer"), m.saves()]).toEqual([1, 0]);
    mouse(grid, "click", ...thumbCenter(grid, 1, 2));
    expect([m.model.get("selected_layer"), m.model.get("selected_head")]).toEqual([1, 2]);
  });

  it("names the reason, or says there are no weights", () => {
    expect(unavailableWhy({ "3": "x" }, 3)).toBe("block 3: not available (no softmax attention: x)");
    expect(unavailableWhy({ "3": "" }, 3)).toBe("block 3: not available (no softmax attention: no weights)");
    expect(unavailableWhy({ "3": "x" }, 2)).toBe("");
  });
});
