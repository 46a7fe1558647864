import { afterEach, describe, expect, it, vi } from "vitest";
import { Scatter } from "../../src/lib/scatter";
import concepts from "../../src/views/concepts";
import { choose, mount, Mounted, pack, XSS } from "./fixtures";

const N = 4; // points; 2 blocks + embeddings = 3 rows of every per-layer array
// per row r: points at (0, 0), (1, 0), (0, 1), (1, 1) shifted by r (so the rows differ)
const coords = [0, 1, 2].flatMap((r) => [0, 0, 1, 0, 0, 1, 1, 1].map((v) => v + r));

function state(extra: Record<string, unknown> = {}) {
  return {
    level: "token", n_layers: 2, selected_layer: 0, k: 2, method: "pca",
    coords: pack(coords, [3, N, 2]), clusters: pack([0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 0], [3, N], "uint16"),
    explained: pack([0.5, 0.25, 0.6, 0.2, 0.7, 0.1], [3, 2]),
    label_names: ["neg", "pos"], label_index: pack([1, 0, 1, 0], [N], "uint16"),
    texts_tokens: [["<s>", "good", XSS], ["<s>", "bad", "</s>"]],
    rows: pack([0, 0, 1, 1, 1, 2, 1, -1], [2, N], "int32"),
    color_by: "cluster", selected_indices: [], done: true,
    ...extra,
  };
}

function drag(m: Mounted, a: [number, number], b: [number, number]) {
  const canvas = m.$<HTMLCanvasElement>("[data-testid=scatter]");
  canvas.dispatchEvent(new MouseEvent("mousedown", { clientX: a[0], clientY: a[1], bubbles: true }));
  canvas.dispatchEvent(new MouseEvent("mouseup", { clientX: b[0], clientY: b[1], bubbles: true }));
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("ConceptView", () => {
  it("plots the selected layer's projection (row selected_layer + 1) with its variance", () => {
    const m = mount(concepts, state());
    const sc = m.parts.scatter as Scatter;
    expect(m.$("[data-testid=scatter]").dataset).toMatchObject({ x0: "1", x1: "2", y0: "1", y1: "2", n: "4" });
    expect(sc.px(0)[0]).toBeLessThan(sc.px(1)[0]);
    expect(m.$("[data-testid=info]").textContent).toBe("4 tokens \u00b7 PCA (PC1 60.0%, PC2 20.0% of variance) \u00b7 k-means k=2 \u00b7 drag to select");
    expect(m.$("[data-testid=layer-label]").textContent).toBe("block 0");
    expect(m.$("[data-testid=legend]").textContent).toBe("cluster 0 (2)cluster 1 (2)");
  });

  it("a brushed rectangle sets selected_indices, and the selection is listed in context", () => {
    const m = mount(concepts, state());
    const sc = m.parts.scatter as Scatter;
    const [x0, y0] = sc.px(0), [x3, y3] = sc.px(3), [x1, y1] = sc.px(1);
    drag(m, [x0 - 5, y0 + 5], [x1 + 5, y1 - 5]); // the bottom two points
    expect(m.model.get("selected_indices")).toEqual([0, 1]);
    expect(m.$("[data-testid=selection-count]").textContent).toBe("2 selected");
    const contexts = m.$$("[data-testid=context]");
    expect(contexts.map((c) => Array.from(c.children).map((t) => t.textContent))).toEqual([["<s>", "good", XSS], ["<s>", "good", XSS]]);
    expect(contexts.map((c) => Array.from(c.children).findIndex((t) => t.classList.contains("lw-sel")))).toEqual([1, 2]);
    expect(m.el.querySelector("img")).toBeNull();
    drag(m, [x3, y3], [x3 + 1, y3]); // a click on a point
    expect(m.model.get("selected_indices")).toEqual([3]);
    expect(m.saves()).toBe(2);
  });

  it("the slider selects a layer (its first position: the embeddings), the menu the colouring, the button clears", () => {
    const m = mount(concepts, state({ selected_indices: [1, 2] }));
    choose(m.$<HTMLInputElement>("[data-testid=layer]"), "0", "input");
    expect(m.model.get("selected_layer")).toBe("embeddings");
    expect(m.$("[data-testid=layer-label]").textContent).toBe("embeddings");
    expect(m.$("[data-testid=scatter]").dataset).toMatchObject({ x0: "0", x1: "1" });
    choose(m.$<HTMLSelectElement>("[data-testid=color-by]"), "label");
    expect(m.model.get("color_by")).toBe("label");
    expect(m.$("[data-testid=legend]").textContent).toBe("neg (2)pos (2)");
    m.$("[data-testid=clear]").click();
    expect(m.model.get("selected_indices")).toEqual([]);
    expect(m.$("[data-testid=scatter]").dataset.selected).toBe("0");
  });

  it("the selection list has its own scroll: many points never push the page down", () => {
    const m = mount(concepts, state({ selected_indices: [0, 1, 2, 3] }));
    const list = m.$("[data-testid=selection-list]");
    expect(list.className).toBe("lw-list");
    expect(m.$$("[data-testid=selection-list] [data-testid=context]")).toHaveLength(4);
    expect(m.$("[data-testid=selection] > [data-testid=selection-count]").textContent).toBe("4 selected"); // outside the scroll
    const rule = Array.from(document.querySelectorAll("style")).map((s) => s.textContent).join("").match(/\.lw-list\{[^}]*\}/)![0];
    expect(rule).toContain("max-height:360px");
    expect(rule).toContain("overflow:auto");
    m.model.set("selected_indices", []);
    expect(list.style.display).toBe("none");
    expect(m.$("[data-testid=selection-count]").textContent).toBe("Nothing selected: drag over the scatter.");
  });

  it("waits for the projection", () => {
    const m = mount(concepts, state({ done: false, coords: null }));
    expect(m.$("[data-testid=info]").textContent).toContain("extracting hidden states");
    m.model.set("coords", state().coords);
    m.model.set("done", true);
    expect(m.$("[data-testid=scatter]").dataset.n).toBe("4");
  });
});
