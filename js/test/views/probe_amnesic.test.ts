import { afterEach, describe, expect, it } from "vitest";
import probe from "../../src/views/probe";
import { mount, pack } from "./fixtures";

const L = 2;
const state = (extra: Record<string, unknown> = {}) => ({
  level: "sentence", classes: ["a", "b"], n_layers: L,
  curves: pack(Array(15).fill(0.5), [5, L + 1]), curve_names: [], majority: 0.5,
  confusion: pack(Array(12).fill(1), [L + 1, 2, 2], "int32"), examples: [[], [], []],
  probe_kind: "linear", seeds: 3, selected_layer: null, done: true, ...extra,
});

afterEach(() => { document.body.innerHTML = ""; });

describe("ProbeView amnesic rows", () => {
  it("adds the erasure columns and says which question each answers", () => {
    const rows = pack([0.47, 0.5, 0.47, 0.47, 0, -0.49, 0, 0], [4, L]);
    const m = mount(probe, state({ amnesic_rows: rows, amnesic_names: ["probe_after_erasure", "majority", "task_change", "random_change"],
      amnesic_metric: "accuracy", amnesic_positions: "readout" }));
    const head = m.$$("th").map((e) => e.textContent);
    expect(head.join("|")).toContain("probe after erasure");
    expect(head.join("|")).toContain("random change");
    expect(m.$("[data-testid=amnesic-note]").textContent).toContain("does the model use it");
  });

  it("shows no amnesic columns without them", () => {
    const m = mount(probe, state({ amnesic_rows: null }));
    expect(m.$$("[data-testid=amnesic-note]")).toHaveLength(0);
  });
});
