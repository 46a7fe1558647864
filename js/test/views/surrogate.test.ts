import { afterEach, describe, expect, it, vi } from "vitest";
import surrogate from "../../src/views/surrogate";
import { boxesOverlap, LABEL_LINE, labelBox } from "../../src/lib/pointchart";
import { choose, mount, pack, stripTexts, stripWeights, XSS } from "./fixtures";

const row = (id: number, name: string, kind: string, size: number, fidelity: number) => ({
  id, name, kind, size, size_unit: kind === "tree" ? "leaves" : kind === "logistic" ? "non-zero weights" : "parameters",
  fidelity, fidelity_lo: fidelity - 0.05, fidelity_hi: Math.min(1, fidelity + 0.02), accuracy: null, accuracy_lo: null,
  accuracy_hi: null, ms_per_text: 0.01, fit_seconds: 0.1, disagreements: 3,
});

function state(extra: Record<string, unknown> = {}) {
  return {
    done: true, class_names: ["NEGATIVE", "POSITIVE"],
    teacher: { name: XSS, size: 104258, ms_per_text: 0.2, accuracy: null },
    surrogates: [row(0, `logistic ${XSS}`, "logistic", 10, 1), row(1, "tree (depth \u2264 5)", "tree", 6, 0.98),
                 row(2, "student 1 layer", "student", 70786, 0.99)],
    texts: ["the film was great", `a ${XSS} plot`],
    teacher_pred: [1, 0],
    preds: pack([1, 1, 1, 0, 1, 0], [3, 2], "int32"), // the logistic disagrees on text 1
    explanations: {
      0: { kind: "logistic", weights: [{ feature: "great", weight: 3.1, toward: 1 }, { feature: "<b>awful</b>", weight: 2.9, toward: 0 }] },
      1: { kind: "tree", rules: [{ text: "IF no \u201cgreat\u201d THEN NEGATIVE", label: 0, n: 50, purity: 1 },
                                 { text: `IF has \u201c${XSS}\u201d THEN POSITIVE`, label: 1, n: 40, purity: 0.95 }] },
      2: { kind: "student", layers: 1 },
    },
    details: {
      "0:0": { pred: 1, teacher_pred: 1, words: ["the", "film", "was", "great"], weights: pack([0, 0, 0, 3.1], [4]) },
      "1:0": { pred: 1, teacher_pred: 1, rule: 1 },
      "2:0": { pred: 1, teacher_pred: 1, tokens: ["[CLS]", "the", "great", "[SEP]"], teacher: pack([0, 0.1, 2, 0], [4]),
               student: pack([0, 0.3, 1, 0], [4]), target: "POSITIVE", method: "occlusion", k: 2, top_teacher: [2, 1],
               top_student: [2, 1], agreement: 1 },
    },
    explain: "occlusion", top_k: 2, selected_surrogate: null, selected_text: 0,
    ...extra,
  };
}

afterEach(() => { vi.restoreAllMocks(); document.body.innerHTML = ""; });

describe("SurrogateView", () => {
  it("plots size against fidelity and lists every surrogate, text as text", () => {
    const m = mount(surrogate, state());
    expect(m.$("[data-lw-view=surrogate]").dataset.ready).toBe("1");
    expect(m.$$("[data-testid=chart] circle[data-index]")).toHaveLength(3);
    expect(m.$$("[data-testid=surrogates] tbody tr")).toHaveLength(3);
    expect(m.$("[data-testid=info]").textContent).toContain(XSS);
    expect(m.el.querySelector("img, b")).toBeNull();
    expect(m.$("[data-testid=explanation]").textContent).toBe("Click a point or a row to see what that surrogate says.");
  });

  it("a click on a point selects the surrogate and shows its weights", () => {
    const m = mount(surrogate, state());
    m.$("[data-testid=point-0]").dispatchEvent(new MouseEvent("click"));
    expect(m.model.get("selected_surrogate")).toBe(0);
    expect(m.saves()).toBe(1);
    const ex = m.$("[data-testid=explanation]");
    expect(ex.dataset.kind).toBe("logistic");
    expect(m.$$("[data-testid=weights] tbody tr").map((r) => r.children[1].textContent)).toEqual(["great", "<b>awful</b>"]);
    expect(stripWeights(m, "text-words")).toEqual([0, 0, 0, Math.fround(3.1)]);
    expect(m.$("[data-testid=point-0]").classList.contains("lw-sel")).toBe(true);
    expect(m.$$("[data-testid=surrogates] tr.lw-sel").map((r) => r.dataset.id)).toEqual(["0"]);
    // the text menu marks the texts where this surrogate and the model disagree
    expect(Array.from(m.$<HTMLSelectElement>("[data-testid=text]").options).map((o) => o.textContent!.startsWith("\u2260"))).toEqual([false, true]);
    expect(m.el.querySelector("b")).toBeNull();
  });

  it("a tree shows its rules with the one deciding the text highlighted", () => {
    const m = mount(surrogate, state({ selected_surrogate: 1 }));
    const items = m.$$("[data-testid=rules] li");
    expect(items.map((li) => li.classList.contains("lw-sel"))).toEqual([false, true]);
    expect(items[1].textContent).toContain(XSS);
    expect(m.el.querySelector("img")).toBeNull();
  });

  it("a student shows its attributions next to the model's, and the agreement", () => {
    const m = mount(surrogate, state({ selected_surrogate: 2 }));
    expect(stripTexts(m, "teacher-attr")).toEqual(["[CLS]", "the", "great", "[SEP]"]);
    expect(stripWeights(m, "student-attr")).toEqual([0, Math.fround(0.3), 1, 0]);
    expect(m.$("[data-testid=agreement]").textContent).toContain("Top-2 agreement: 2/2");
    // another text: not computed yet, so the view waits for the kernel
    choose(m.$<HTMLSelectElement>("[data-testid=text]"), "1");
    expect(m.model.get("selected_text")).toBe(1);
    expect(m.$("[data-testid=pending]").textContent).toBe("computing attributions\u2026");
  });

  it("says it is fitting until done", () => {
    const m = mount(surrogate, state({ done: false }));
    expect(m.$("[data-testid=info]").textContent).toBe("fitting surrogates\u2026");
    m.model.set("done", true);
    expect(m.$("[data-lw-view=surrogate]").dataset.ready).toBe("1");
  });
});

describe("SurrogateView: point labels (issue 31)", () => {
  // the gallery's surrogates (make gallery: keyword classifier, keyword_dataset(200, seed=1), students of 1 and 2
  // layers): "logistic L1 (C=1)" and "tree (depth <= 5)" both at fidelity 1, sizes 10 and 6
  const gallery = [row(0, "logistic L1 (C=1)", "logistic", 10, 1), row(1, "tree (depth \u2264 2)", "tree", 3, 0.75),
    row(2, "tree (depth \u2264 5)", "tree", 6, 1), row(3, "student 1 layer", "student", 70786, 0.9833),
    row(4, "student 2 layers", "student", 104258, 0.9833)];
  it("no two label boxes intersect; a label moved off its point has a leader line to it", () => {
    const m = mount(surrogate, state({ surrogates: gallery, preds: pack(new Array(10).fill(1), [5, 2], "int32") }));
    const labels = m.$$("[data-testid=chart] text[data-label]") as unknown as SVGTextElement[];
    expect(labels.map((t) => t.textContent)).toEqual(gallery.map((r) => r.name));
    const boxes = labels.map(labelBox);
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      expect(boxesOverlap(boxes[i], boxes[j], LABEL_LINE), `${labels[i].textContent} / ${labels[j].textContent}`).toBe(false);
    }
    // the two points at fidelity 1 sit 25 px apart: the later label moved down, with its leader line
    const leaders = m.$$("[data-testid=chart] line[data-leader]").map((l) => Number(l.dataset.leader));
    expect(leaders.length).toBeGreaterThan(0);
    for (const i of leaders) {
      const l = m.$(`[data-testid=chart] line[data-leader="${i}"]`);
      expect(Number(l.getAttribute("x1"))).toBe(Number(m.$(`[data-testid=point-${i}]`).getAttribute("cx")));
      expect(Number(l.getAttribute("y2"))).toBe(Number(labels[i].getAttribute("y")) - 4);
    }
    // labels left where nothing was in the way: on their point, with no leader
    for (const i of gallery.keys()) if (!leaders.includes(i)) {
      expect(Number(labels[i].getAttribute("y"))).toBe(Number(m.$(`[data-testid=point-${i}]`).getAttribute("cy")) - 5);
    }
  });
  it("boxesOverlap: boxes overlap only where they share both x and a line", () => {
    expect(boxesOverlap({ x0: 0, x1: 10, y: 50 }, { x0: 5, x1: 15, y: 55 }, 12)).toBe(true);
    expect(boxesOverlap({ x0: 0, x1: 10, y: 50 }, { x0: 10, x1: 15, y: 50 }, 12)).toBe(false);
    expect(boxesOverlap({ x0: 0, x1: 10, y: 50 }, { x0: 5, x1: 15, y: 62 }, 12)).toBe(false);
  });
});
