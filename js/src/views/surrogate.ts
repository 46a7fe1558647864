// SurrogateView: size (log scale) against fidelity of every surrogate; click a point or a table row
// (-> selected_surrogate) for what it says: a logistic surrogate's top weights, a tree's rules, or a
// student's token attributions next to the model's, on the held-out text picked in the menu.
import { decode, Packed } from "../lib/buffers";
import { h } from "../lib/dom";
import { fmt } from "../lib/format";
import { expose, frame, Model } from "../lib/frame";
import { PointChart } from "../lib/pointchart";
import { fromSelection } from "../lib/selection";
import { category } from "../lib/scatter";
import { Row, SortableTable } from "../lib/table";
import { TokenStrip } from "../lib/tokens";
import type { SurrogateViewState } from "../generated/state";

const KINDS = ["logistic", "tree", "student"];
const MAX_TEXTS = 500; // held-out texts listed in the menu

type Explanation = SurrogateViewState["explanations"][string];
type Detail = SurrogateViewState["details"][string];

const ci = (r: Row, k: string) => `${fmt(r[k])} [${fmt(r[k + "_lo"])}, ${fmt(r[k + "_hi"])}]`;

function render({ model, el }: { model: Model<SurrogateViewState>; el: HTMLElement }) {
  const f = frame(model, el, "surrogate");
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  const pick = h("select", { class: "lw-select", "data-testid": "text", style: "max-width:520px" }) as HTMLSelectElement;
  f.toolbar.append(info);
  const legend = h("div", { class: "lw-muted", "data-testid": "legend" });
  const chartBox = h("div", { "data-testid": "chart-box" });
  let chart: PointChart | null = null;
  const tableBox = h("div");
  const explanation = h("div", { "data-testid": "explanation", style: "margin-top:8px" });
  f.body.append(h("div", { class: "lw-row" }, h("div", {}, chartBox, legend), tableBox),
    h("div", { class: "lw-head" }, h("span", { text: "held-out text:" }), pick), explanation);
  let table: SortableTable | null = null;
  pick.addEventListener("change", () => f.commit({ selected_text: Number(pick.value) }));

  const names = (): string[] => model.get("class_names") || [];
  const predsOf = (s: number): number[] => {
    const p = decode(model.get("preds") as Packed);
    if (!p) return [];
    const n = p.shape[1];
    return Array.from(p.values.subarray(s * n, (s + 1) * n));
  };

  const fillPicker = () => {
    const texts: string[] = model.get("texts") || [];
    const teacher: number[] = model.get("teacher_pred") || [];
    const s = fromSelection(model.get("selected_surrogate"));
    const mine = s >= 0 ? predsOf(s) : [];
    pick.replaceChildren(...texts.slice(0, MAX_TEXTS).map((t, i) => {
      const differ = s >= 0 && mine[i] !== teacher[i];
      return h("option", { value: i, text: `${differ ? "\u2260 " : ""}#${i} [${names()[teacher[i]] ?? teacher[i]}] ${t}` });
    }));
    pick.value = String(fromSelection(model.get("selected_text")));
  };

  const weightsPanel = (ex: Explanation, d: Detail | undefined): HTMLElement[] => {
    const rows = (ex.weights ?? []).map((w) => ({ feature: w.feature, weight: w.weight, toward: names()[w.toward] ?? String(w.toward) }));
    const t = new SortableTable([{ key: "weight", label: "weight", format: (v) => fmt(v) }, { key: "feature", label: "word / n-gram" },
      { key: "toward", label: "toward" }], rows, (r) => String(r.feature), undefined, "weights");
    const out: HTMLElement[] = [h("div", { class: "lw-muted", text: "Largest weights (L1 keeps few): the presence of each word raises the log-odds of its class by the weight." }), t.el];
    if (d?.words && d.weights) {
      const strip = new TokenStrip(d.words, { testid: "text-words" });
      strip.setWeights(decode(d.weights)!.values, true);
      out.push(h("div", { class: "lw-muted", text: `This text's words, coloured by their weight toward the class the surrogate predicts (${names()[d.pred]}):` }), strip.el);
    }
    return out;
  };

  const rulesPanel = (ex: Explanation, d: Detail | undefined): HTMLElement[] => {
    const rules = ex.rules ?? [];
    const list = h("ol", { "data-testid": "rules", style: "margin:4px 0;padding-left:22px;font-family:ui-monospace,Menlo,monospace" },
      ...rules.map((r, k) => h("li", { "data-rule": k, class: d?.rule === k ? "lw-sel" : undefined,
        style: d?.rule === k ? "background:var(--lw-sel-bg)" : undefined,
        text: `${r.text}   (${r.n} fitting texts, ${fmt(100 * r.purity, 0)}% the model's class)` })));
    return [h("div", { class: "lw-muted", text: `${rules.length} rules, one per leaf; the one deciding the selected text is highlighted.` }), list];
  };

  const studentPanel = (d: Detail | undefined): HTMLElement[] => {
    if (!d || !d.tokens || !d.teacher || !d.student) {
      return [h("div", { class: "lw-muted", "data-testid": "pending", text: f.exported ? "Not computed in this export: pick the first text." : "computing attributions\u2026" })];
    }
    const side = (who: string, p: Packed, top: number[], testid: string) => {
      const strip = new TokenStrip(d.tokens!, { testid });
      strip.setWeights(decode(p)!.values, true);
      const topWords = top.map((j) => d.tokens![j]).join(", ");
      return h("div", {}, h("div", { style: "font-weight:600", text: `${who}: top ${d.k} ${topWords}` }), strip.el);
    };
    return [
      h("div", { "data-testid": "agreement", text: `${d.method} of ${d.target} (the model's class), each on its own scale. ` +
        `Top-${d.k} agreement: ${Math.round((d.agreement ?? 0) * (d.k ?? 0))}/${d.k} (${fmt(d.agreement, 2)}).` }),
      side("model", d.teacher, d.top_teacher || [], "teacher-attr"),
      side("student", d.student, d.top_student || [], "student-attr"),
    ];
  };

  const drawExplanation = () => {
    const s = fromSelection(model.get("selected_surrogate"));
    const t = fromSelection(model.get("selected_text"));
    table?.select(s >= 0 ? String(s) : null);
    chart?.select(s);
    explanation.dataset.surrogate = String(s);
    explanation.dataset.text = String(t);
    const r: Row | undefined = model.get("surrogates")[s];
    if (!r) {
      explanation.replaceChildren(h("span", { class: "lw-muted", text: "Click a point or a row to see what that surrogate says." }));
      return;
    }
    const ex = model.get("explanations")[String(s)];
    const d: Detail | undefined = model.get("details")[`${s}:${t}`];
    const verdict = d ? ` \u00b7 on text #${t}: surrogate ${names()[d.pred] ?? d.pred}, model ${names()[d.teacher_pred] ?? d.teacher_pred}` +
      (d.pred === d.teacher_pred ? " (agree)" : " (DISAGREE)") : "";
    const head = h("div", { class: "lw-title", "data-testid": "explanation-title",
      text: `${r.name}: fidelity ${ci(r, "fidelity")}, ${r.size} ${r.size_unit}${verdict}` });
    const body = r.kind === "logistic" ? weightsPanel(ex, d) : r.kind === "tree" ? rulesPanel(ex, d) : studentPanel(d);
    explanation.dataset.kind = String(r.kind);
    explanation.replaceChildren(head, ...body);
  };

  const draw = () => {
    if (!model.get("done")) {
      info.textContent = "fitting surrogates\u2026";
      return;
    }
    const rows: Row[] = model.get("surrogates");
    const teacher = model.get("teacher");
    info.textContent = `imitating ${teacher.name}: ${teacher.size} parameters (without word embeddings), ` +
      `${fmt(teacher.ms_per_text, 3)} ms/text` + (teacher.accuracy == null ? "" : `, accuracy ${ci(teacher, "accuracy")}`) +
      ` \u00b7 ${(model.get("texts") || []).length} held-out texts`;
    const kindIndex = (r: Row) => KINDS.indexOf(String(r.kind));
    chart = new PointChart(rows.map((r) => ({
      x: Math.max(1, Number(r.size)), y: Number(r.fidelity), lo: Number(r.fidelity_lo), hi: Number(r.fidelity_hi),
      label: String(r.name), color: category(kindIndex(r)),
    })), {
      width: 460, height: 300, testid: "chart", xLog: true, yMax: 1,
      xLabel: "size (non-zero weights / leaves / parameters), log scale", yLabel: "fidelity (95% CI)",
      onClick: (i) => f.commit({ selected_surrogate: i }),
      describe: (i) => `${rows[i].name}\nfidelity ${ci(rows[i], "fidelity")}\n${rows[i].size} ${rows[i].size_unit} \u00b7 ${fmt(rows[i].ms_per_text, 3)} ms/text`,
    });
    chartBox.replaceChildren(chart.el);
    legend.replaceChildren(...KINDS.filter((k) => rows.some((r) => r.kind === k)).map((k) => h("span", { style: "margin-right:10px" },
      h("span", { style: `display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px;background:${category(KINDS.indexOf(k))}` }), k)));
    table = new SortableTable(
      [{ key: "name", label: "surrogate" }, { key: "size", label: "size" }, { key: "size_unit", label: "unit" },
       { key: "fidelity", label: "fidelity", format: (v) => fmt(v) }, { key: "fid_ci", label: "95% CI" },
       { key: "accuracy", label: "accuracy", format: (v) => fmt(v) }, { key: "ms_per_text", label: "ms/text", format: (v) => fmt(v, 3) },
       { key: "disagreements", label: "disagree" }],
      rows.map((r) => ({ ...r, fid_ci: `[${fmt(r.fidelity_lo)}, ${fmt(r.fidelity_hi)}]` })), (r) => String(r.id),
      (r) => f.commit({ selected_surrogate: Number(r.id) }), "surrogates");
    table.sortBy("size", false);
    tableBox.replaceChildren(table.el);
    fillPicker();
    drawExplanation();
    f.root.dataset.ready = "1";
  };

  f.watch(["done", "surrogates"], draw);
  f.watch(["selected_surrogate"], () => { fillPicker(); drawExplanation(); });
  f.watch(["selected_text"], () => { pick.value = String(fromSelection(model.get("selected_text"))); drawExplanation(); });
  f.watch(["details"], drawExplanation);
  draw();
  expose(el, { chart: () => chart });
  return () => f.cleanup();
}

export default { render };
