import { afterEach, describe, expect, it, vi } from "vitest";
import probe, { bestOf, CHART_W, DETAIL_MIN, span } from "../../src/views/probe";
import { colorbars, everyHeatmapHasColorbar, mount, pack, stripTexts, XSS } from "./fixtures";
import { css, div } from "../../src/lib/colors";

const L = 2, C = 2; // 2 blocks: columns embeddings, 0, 1
const acc = [0.6, 0.8, 0.7], ci = [0.05, 0.04, 0.03], ctrl = [0.5, 0.55, 0.5], ctrlCi = [0.01, 0.01, 0.01], sel = [0.1, 0.25, 0.2];
// 95% Wilson intervals for 30 held-out rows (scipy.stats.binomtest(k, 30).proportion_ci('wilson') at k = 18, 24, 21)
const accLo = [0.4232, 0.6269, 0.5212], accHi = [0.7541, 0.9049, 0.8334];
const ctrlLo = [0.3315, 0.3751, 0.3315], ctrlHi = [0.6685, 0.7138, 0.6685];

function state(extra: Record<string, unknown> = {}) {
  return {
    level: "sentence", classes: ["neg", "<b>pos</b>"], n_layers: L,
    curves: pack([...acc, ...ci, ...ctrl, ...ctrlCi, ...sel], [5, L + 1]),
    curve_names: ["accuracy", "ci95", "control", "control_ci95", "selectivity"], majority: 0.5,
    interval: pack([...accLo, ...accHi, ...ctrlLo, ...ctrlHi], [4, L + 1]), n_test: 30,
    confusion: pack([5, 5, 5, 5, 8, 2, 2, 8, 7, 3, 3, 7], [L + 1, C, C], "int32"),
    examples: [[], [{ tokens: ["<s>", XSS], highlight: 1, true: "neg", pred: "pos", confidence: 0.91 }], []],
    probe_kind: "linear", seeds: 3, selected_layer: null, done: true, ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("ProbeView", () => {
  it("plots accuracy per layer, embeddings first, and names the best layer", () => {
    const m = mount(probe, state());
    expect(m.$$("[data-testid=chart] rect[data-layer]")).toHaveLength(L + 1);
    expect(m.$("[data-testid=info]").textContent).toBe(
      "sentence-level linear probe \u00b7 3 splits of 30 held-out \u00b7 best: layer 0 (0.800) \u00b7 majority baseline 0.500 \u00b7 click a layer");
    expect(m.$$("[data-testid=layers] tbody tr").map((r) => r.dataset.id)).toEqual(["embeddings", "0", "1"]);
    expect(m.$$("[data-testid=layers] tbody tr td:first-child").map((c) => c.textContent)).toEqual(["embeddings", "0", "1"]);
  });

  it("clicking a chart column selects its layer (column 0: the embeddings)", () => {
    const m = mount(probe, state());
    const cols = m.$$("[data-testid=chart] rect[data-layer]");
    cols[0].dispatchEvent(new MouseEvent("click"));
    expect(m.model.get("selected_layer")).toBe("embeddings");
    expect(m.$("[data-testid=layer-title]").textContent).toBe("Embeddings: accuracy 0.600 (95% CI 0.423\u20130.754, n = 30)");
    cols[2].dispatchEvent(new MouseEvent("click"));
    expect(m.model.get("selected_layer")).toBe(1);
    expect(m.saves()).toBe(2);
  });

  it("a selected layer shows its confusion matrix and wrong examples (as text)", () => {
    const m = mount(probe, state());
    m.model.set("selected_layer", 0);
    expect(m.$("[data-testid=detail]").dataset.layer).toBe("0");
    expect(m.$("[data-testid=layer-title]").textContent).toBe("Layer 0: accuracy 0.800 (95% CI 0.627\u20130.905, n = 30)");
    const heat = m.parts.heat as { matrix: { values: Float32Array } };
    expect(Array.from(heat.matrix.values)).toEqual([8, 2, 2, 8]);
    expect(everyHeatmapHasColorbar(m)).toBe(true);
    expect(colorbars(m)["confusion-colorbar"]).toEqual({ label: "examples", kind: "seq", min: 0, max: 8 });
    expect(stripTexts(m, "wrong-example")).toEqual(["<s>", XSS]);
    expect(m.$("[data-testid=wrong]").textContent).toContain("true neg \u2192 predicted pos (p = 0.91)");
    expect(m.el.querySelector("img, b")).toBeNull();
    expect(m.$$("[data-testid=layers] tr.lw-sel").map((r) => r.dataset.id)).toEqual(["0"]);
    expect(m.$$("[data-testid=chart] rect[data-layer]").map((r) => r.getAttribute("stroke"))).toEqual(["none", "#d62728", "none"]);
  });

  it("a table row selects its layer", () => {
    const m = mount(probe, state());
    m.$("[data-testid=layers] tr[data-id='1']").click();
    expect(m.model.get("selected_layer")).toBe(1);
    expect(m.$("[data-testid=wrong]").textContent).toBe("No held-out mistakes at this layer.");
  });

  it("the detail panel's place depends on the width only: beside the chart when both fit, else below", () => {
    const m = mount(probe, state({ selected_layer: 0 }));
    const detail = m.$("[data-testid=detail]");
    expect(detail.dataset.place).toBe("beside"); // no layout here: the default width (940 px)
    expect(m.$("[data-testid=probe-split]").style.gridTemplateColumns).toBe(`${CHART_W}px minmax(0,1fr)`);
    m.model.set("selected_layer", 1); // other content, same place
    m.model.set("selected_layer", "embeddings");
    expect(detail.dataset.place).toBe("beside");
    expect(m.$$("[data-testid=chart-box] svg")[0].getAttribute("width")).toBe(String(CHART_W));
    // a narrow output area: below, whatever the layer shows
    document.body.innerHTML = "";
    vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(CHART_W + DETAIL_MIN - 60);
    const n = mount(probe, state({ selected_layer: 0 }));
    expect(n.$("[data-testid=detail]").dataset.place).toBe("below");
    expect(n.$("[data-testid=probe-split]").style.gridTemplateColumns).toBe("minmax(0,1fr)");
    n.model.set("selected_layer", 1);
    expect(n.$("[data-testid=detail]").dataset.place).toBe("below");
  });

  it("waits while training", () => {
    const m = mount(probe, state({ done: false }));
    expect(m.$("[data-testid=info]").textContent).toBe("extracting hidden states and training probes\u2026");
  });

  it("colours the wrong examples' tokens on one scale for the layer, with its colour bar", () => {
    const ex = (w: number[]) => ({ tokens: ["a", "b"], highlight: -1, true: "neg", pred: "pos", confidence: 0.9, weights: pack(w, [2]) });
    const m = mount(probe, state({ examples: [[], [ex([0.5, -1]), ex([2, 0.25])], []], selected_layer: 0 }));
    expect(colorbars(m)["weights-colorbar"]).toEqual({ label: "share of logit(predicted) \u2212 logit(true)", kind: "div", min: -2, max: 2 });
    const bg = m.$$("[data-testid=wrong-example] .lw-tok").map((e) => e.style.background.replace(/\s/g, ""));
    expect(bg).toEqual([0.5, -1, 2, 0.25].map((v) => css(div(v, 2))));
  });
});

describe("ProbeView: intervals and selectivity (issue 31, item 7)", () => {
  it("accuracy and control bands are the Wilson intervals, drawn with a dashed outline; selectivity has its own chart", () => {
    const m = mount(probe, state());
    const main = m.$("[data-testid=chart]");
    expect(Array.from(main.querySelectorAll("polyline")).map((p) => p.getAttribute("data-series"))).toEqual(["accuracy", "control", "majority"]);
    const bands = Array.from(main.querySelectorAll("polygon[data-band]"));
    expect(bands.map((b) => b.getAttribute("data-band"))).toEqual(["accuracy", "control"]);
    for (const b of bands) {
      expect(b.getAttribute("stroke-dasharray")).toBe("3 2");
      expect(Number(b.getAttribute("fill-opacity"))).toBeLessThan(0.2);
    }
    // the accuracy band's upper edge at the embeddings is 0.7541 on a [0, 1] axis, its lower 0.4232
    const ys = (bands[0].getAttribute("points") ?? "").split(" ").map((p) => Number(p.split(",")[1]));
    const y0 = ys[0], yLow0 = ys[ys.length - 1];
    const top = Number(main.querySelector("line.lw-axis")!.getAttribute("y1")), bottom = Number(main.querySelector("line.lw-axis")!.getAttribute("y2"));
    expect((bottom - y0) / (bottom - top)).toBeCloseTo(accHi[0], 3);
    expect((bottom - yLow0) / (bottom - top)).toBeCloseTo(accLo[0], 3);
    const selChart = m.$("[data-testid=selectivity-chart]");
    expect(Array.from(selChart.querySelectorAll("polyline")).map((p) => p.getAttribute("data-series"))).toEqual(["selectivity", "zero"]);
    expect(m.$("[data-testid=interval-note]").textContent).toBe("Bands: 95% Wilson intervals for 30 held-out texts per split.");
    expect(main.querySelector("[data-testid=layer-1] title")!.textContent).toBe(
      "layer 0: accuracy 0.800 (95% CI 0.627\u20130.905, n = 30 held-out), control 0.550, selectivity 0.250");
  });

  it("never 1.000 \u00b1 0.000: a perfect score on 30 rows reads with its interval", () => {
    const perfect = state({ curves: pack([1, 1, 1, 0, 0, 0, ...ctrl, ...ctrlCi, 0.5, 0.45, 0.5], [5, L + 1]),
      interval: pack([0.88649, 0.88649, 0.88649, 1, 1, 1, ...ctrlLo, ...ctrlHi], [4, L + 1]), selected_layer: 1 });
    const m = mount(probe, perfect);
    expect(m.$("[data-testid=layer-title]").textContent).toBe("Layer 1: accuracy 1.000 (95% CI 0.886\u20131.000, n = 30)");
    expect(m.el.textContent).not.toContain("\u00b1");
    expect(span(0.88649, 1)).toBe("0.886\u20131.000");
  });

  it("the selectivity chart's x axis lines up with the accuracy chart's (issue 31): one plot area", () => {
    // a negative selectivity widens its y tick labels, and its legend ("selectivity") is wider than "majority"
    const neg = state({ curves: pack([...acc, ...ci, ...ctrl, ...ctrlCi, -0.15, 0.25, 0.2], [5, L + 1]) });
    const m = mount(probe, neg);
    const xsOf = (chart: string, series: string) => (m.$(`[data-testid=${chart}] polyline[data-series=${series}]`).getAttribute("points") ?? "")
      .split(" ").map((p) => Number(p.split(",")[0]));
    const a = xsOf("chart", "accuracy"), s = xsOf("selectivity-chart", "selectivity");
    expect(a).toHaveLength(L + 1);
    expect(s[0]).toBeCloseTo(a[0], 6); // the embeddings column
    expect(s[L]).toBeCloseTo(a[L], 6); // the last layer
    expect(a[L] - a[0]).toBeGreaterThan(100); // a real plot width, not a degenerate one
    const axisX = (chart: string) => Array.from(m.$(`[data-testid=${chart}]`).querySelectorAll("line.lw-axis")).map((l) => [l.getAttribute("x1"), l.getAttribute("x2")]);
    expect(axisX("selectivity-chart")).toEqual(axisX("chart"));
    expect(m.$("[data-testid=selectivity-chart] [data-testid=layer-0]").getAttribute("x")).toBe(m.$("[data-testid=chart] [data-testid=layer-0]").getAttribute("x"));
  });

  it("without a control task: no selectivity chart", () => {
    const m = mount(probe, state({ curves: pack([...acc, ...ci, -1, -1, -1, 0, 0, 0, 0, 0, 0], [5, L + 1]) }));
    expect(m.el.querySelector("[data-testid=selectivity-chart]")).toBeNull();
  });
});

describe("ProbeView: ties", () => {
  it("reports every layer that ties for best, at the precision shown", () => {
    expect(bestOf([0.5, 1, 0.9999, 1, 0.8], 1)).toEqual([1, 2, 3]);
    expect(bestOf([0.5, 0.8, 0.7], 1)).toEqual([1]);
  });
});
