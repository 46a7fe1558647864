// AuditView: pass/fail summary, counterfactual shift histogram + worst pairs (click one: both
// versions side by side with token attribution), robustness pass rates with failing examples
// (changed words highlighted), per-group metrics with bootstrap CIs. Every string via textContent.
import { decode, Packed } from "../lib/buffers";
import { h } from "../lib/dom";
import { fmt, fmtSigned } from "../lib/format";
import { absMax, binCounts } from "../lib/ndarray";
import { frame, Model } from "../lib/frame";
import { fromSelection } from "../lib/selection";
import { Row, SortableTable } from "../lib/table";
import { TokenStrip } from "../lib/tokens";

type Words = [string, boolean][];
// what AuditView sends (llm_widgets/widgets/audit.py)
type Pair = { id: number; group: string; term_a: string; term_b: string; text_a: string; text_b: string;
              score_a: number; score_b: number; shift: number };
type Failure = { test: string; kind: string; original: Words; perturbed: Words; score_o: number; score_p: number;
                 pred_o: number; pred_p: number };
type Side = { tokens: string[]; weights: Packed; what: string };

const ci = (r: Row, k: string) => `${fmt(r[k])} [${fmt(r[k + "_lo"])}, ${fmt(r[k + "_hi"])}]`;

function section(title: string, testid: string, ...children: (Node | null)[]): HTMLElement {
  return h("details", { open: true, "data-testid": testid, style: "margin:6px 0" },
    h("summary", { text: title, style: "font-weight:600;cursor:pointer" }), ...children);
}

function csvOf(rows: Row[]): string {
  const cols = ["section", "check", "value", "ci_low", "ci_high", "threshold", "rule", "passed", "detail"];
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? "" : typeof v === "boolean" ? (v ? "True" : "False") : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [cols.join(","), ...rows.map((r) => cols.map((c) => cell(r[c])).join(","))].join("\r\n") + "\r\n";
}

function summaryTable(rows: Row[]): HTMLElement {
  const head = h("tr", {}, ...["", "section", "check", "value", "95% CI", "threshold", "detail"].map((c) => h("th", { text: c })));
  const body = h("tbody");
  for (const r of rows) {
    const ok = Boolean(r.passed);
    body.append(h("tr", { "data-passed": ok ? "1" : "0" },
      h("td", { text: ok ? "PASS" : "FAIL", style: `font-weight:600;color:${ok ? "#1a7f37" : "#b42318"}` }),
      h("td", { text: r.section, style: "text-align:left" }),
      h("td", { text: r.check, style: "text-align:left" }),
      h("td", { text: fmt(r.value) }),
      h("td", { text: r.ci_low == null ? "" : `[${fmt(r.ci_low)}, ${fmt(r.ci_high)}]` }),
      h("td", { text: `${r.rule} ${fmt(r.threshold, 2)}` }),
      h("td", { text: r.detail, style: "text-align:left", class: "lw-muted" })));
  }
  return h("div", { class: "lw-scroll", "data-testid": "summary" }, h("table", { class: "lw-table" }, h("thead", {}, head), body));
}

function histogram(shifts: Float32Array, label: string): HTMLCanvasElement {
  const W = 360, H = 150, l = 34, b = 30, top = 8, bins = 31;
  const c = h("canvas", { class: "lw-canvas", "data-testid": "cf-hist", style: `width:${W}px;height:${H}px;cursor:default` }) as HTMLCanvasElement;
  const dpr = window.devicePixelRatio || 1;
  c.width = W * dpr; c.height = H * dpr;
  const m = Math.max(1e-6, absMax(shifts));
  const counts = binCounts(shifts, bins, -m, m);
  const cmax = Math.max(1, ...counts);
  c.dataset.max = String(m);
  c.dataset.counts = counts.join(",");
  const ctx = c.getContext("2d");
  if (!ctx) return c;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const pw = W - l - 6, ph = H - b - top;
  ctx.fillStyle = "#4c78a8";
  counts.forEach((n, i) => {
    const bh = (n / cmax) * ph;
    ctx.fillRect(l + (i * pw) / bins + 0.5, top + ph - bh, pw / bins - 1, bh);
  });
  ctx.strokeStyle = "#d62728";
  ctx.beginPath(); ctx.moveTo(l + pw / 2, top); ctx.lineTo(l + pw / 2, top + ph); ctx.stroke();
  ctx.fillStyle = "#444"; ctx.font = "10px system-ui,sans-serif";
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  ctx.fillText(fmt(-m, 2), l, top + ph + 3);
  ctx.fillText("0", l + pw / 2, top + ph + 3);
  ctx.fillText(fmt(m, 2), l + pw, top + ph + 3);
  ctx.fillText(`shift in ${label} (compared group \u2212 reference), ${shifts.length} pairs`, l + pw / 2, top + ph + 16);
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  ctx.fillText(String(cmax), l - 3, top + 4);
  ctx.fillText("0", l - 3, top + ph);
  return c;
}

function words(ws: Words, testid: string): HTMLElement {
  const el = h("div", { "data-testid": testid, style: "font-family:ui-monospace,Menlo,monospace" });
  ws.forEach(([w, changed], i) => {
    if (i) el.append(" ");
    el.append(h("span", { text: w, class: changed ? "lw-changed" : undefined, style: changed ? "background:#ffe08a;border-radius:2px;padding:0 2px" : undefined }));
  });
  return el;
}

function render({ model, el }: { model: Model; el: HTMLElement }) {
  const f = frame(model, el, "audit");
  const csvBtn = h("button", { class: "lw-btn", text: "CSV", title: "Download the summary table as CSV", "data-testid": "csv" });
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  f.toolbar.append(csvBtn, info);
  csvBtn.addEventListener("click", () => {
    const a = document.createElement("a");
    a.download = "audit-summary.csv";
    a.href = URL.createObjectURL(new Blob([csvOf(model.get("summary") || [])], { type: "text/csv" }));
    a.click();
  });

  let pairTable: SortableTable | null = null;
  const detail = h("div", { "data-testid": "pair-detail", class: "lw-row", style: "margin-top:6px" });

  const showPair = () => {
    const id = fromSelection(model.get("selected_pair"));
    pairTable?.select(id >= 0 ? String(id) : null);
    detail.dataset.pair = String(id);
    const pair: Pair | undefined = (model.get("pairs") as Pair[] || []).find((p) => p.id === id);
    if (!pair) {
      detail.replaceChildren(h("span", { class: "lw-muted", text: id >= 0 ? "loading\u2026" : "Click a pair to compare both versions." }));
      return;
    }
    const att: Record<"a" | "b", Side> | undefined = (model.get("attributions") || {})[String(id)];
    const sides = (["a", "b"] as const).map((s) => {
      const a = att?.[s];
      const w = a ? decode(a.weights)!.values : null;
      return { s, tokens: a ? a.tokens : null, w };
    });
    const vmax = Math.max(1e-9, ...sides.map((sd) => (sd.w ? absMax(sd.w) : 0)));
    detail.replaceChildren(...sides.map(({ s, tokens, w }) => {
      const term = s === "a" ? pair.term_a : pair.term_b;
      const who = s === "a" ? "reference" : String(pair.group);
      const score = s === "a" ? pair.score_a : pair.score_b;
      const head = h("div", { text: `${who}: \u201c${term}\u201d \u00b7 ${model.get("score_name")} = ${fmt(score)}`, style: "font-weight:600" });
      let body: HTMLElement;
      if (tokens && w) {
        const strip = new TokenStrip(tokens, { testid: `pair-${s}` });
        strip.setWeights(w, true, vmax);
        body = strip.el;
      } else {
        const text = String(s === "a" ? pair.text_a : pair.text_b);
        const other = String(s === "a" ? pair.text_b : pair.text_a).split(/\s+/);
        body = words(text.split(/\s+/).map((x, i) => [x, x !== other[i]] as [string, boolean]), `pair-${s}`);
      }
      return h("div", { style: "min-width:260px;max-width:440px" }, head, body);
    }), h("div", { class: "lw-muted", style: "flex-basis:100%", text: att ? `Token colour: ${att.a.what} (red: the token raises it, blue: lowers it), one scale for both.` : "" }));
  };

  const draw = () => {
    if (!model.get("done")) {
      f.body.replaceChildren(h("div", { class: "lw-muted", text: "Running the audit\u2026" }));
      return;
    }
    const scoreName: string = model.get("score_name");
    const summary: Row[] = model.get("summary") || [];
    const nFail = summary.filter((r) => !r.passed).length;
    info.textContent = `${summary.length} checks, ${nFail} failed \u00b7 score: ${scoreName}`;
    const parts: HTMLElement[] = [section(`Audit summary (${nFail ? nFail + " failed" : "all passed"})`, "summary-section", summaryTable(summary))];

    const cfs: Row[] = model.get("cf_summary") || [];
    if (cfs.length) {
      const cfTable = new SortableTable(
        [{ key: "group", label: "group" }, { key: "reference", label: "vs" }, { key: "pairs", label: "pairs" },
         { key: "mean_shift", label: "mean shift", format: fmtSigned },
         { key: "mean_abs_shift", label: "mean |shift|", format: fmt, help: "counterfactual token fairness gap" },
         { key: "max_abs_shift", label: "max |shift|", format: fmt }],
        cfs, (r) => String(r.group), undefined, "cf-groups");
      const shifts = decode(model.get("shifts") as Packed)!.values;
      const pairs: Pair[] = model.get("pairs") || [];
      pairTable = new SortableTable(
        [{ key: "abs", label: "|shift|", format: fmt }, { key: "shift", label: "shift", format: fmtSigned },
         { key: "term_a", label: "reference" }, { key: "term_b", label: "compared" },
         { key: "score_a", label: "score ref", format: fmt }, { key: "score_b", label: "score cmp", format: fmt },
         { key: "text_b", label: "sentence (compared)" }],
        pairs.map((p) => ({ ...p, abs: Math.abs(p.shift) })), (r) => String(r.id),
        (r) => f.commit({ selected_pair: Number(r.id) }), "pairs");
      parts.push(section(`Counterfactual bias: ${model.get("protected_attribute")}`, "cf-section",
        h("div", { class: "lw-row" }, histogram(shifts, scoreName), cfTable.el),
        h("div", { class: "lw-muted", text: "Worst pairs (largest |shift|); click one to compare both versions:" }),
        pairTable.el, detail));
      showPair();
    }

    const rob: Row[] = model.get("robustness") || [];
    if (rob.length) {
      const robTable = new SortableTable(
        [{ key: "test", label: "test" }, { key: "kind", label: "kind" }, { key: "cases", label: "cases" },
         { key: "pass_rate", label: "pass rate", format: fmt }, { key: "mean_abs_change", label: "mean |\u0394 score|", format: fmt }],
        rob, (r) => String(r.test), undefined, "robustness");
      robTable.sortBy("pass_rate", false);
      const fails = (model.get("failures") as Failure[] || []).map((x) =>
        h("div", { class: "lw-fail", "data-test": x.test, style: "border-top:1px solid #eee;padding:3px 0" },
          h("span", { class: "lw-muted", text: `${x.test} (${x.kind}): ${fmt(x.score_o)} \u2192 ${fmt(x.score_p)}, class ${x.pred_o} \u2192 ${x.pred_p}` }),
          words(x.original, "fail-original"), words(x.perturbed, "fail-perturbed")));
      parts.push(section("Robustness and consistency", "robustness-section", robTable.el,
        h("div", { class: "lw-muted", text: "Invariance: same class and |\u0394 score| within tolerance. Directional (negation): the class must flip. Failing examples, changed words highlighted:" }),
        h("div", { "data-testid": "failures", style: "max-height:260px;overflow:auto" }, ...fails)));
    }

    const gt: Row[] = model.get("group_table") || [];
    if (gt.length) {
      const d: Record<string, (number | null)[]> = model.get("differences") || {};
      const M = ["accuracy", "selection_rate", "tpr", "fpr"];
      const rows = gt.map((r) => { const o: Row = { group: r.group, n: r.n }; for (const k of M) o[k] = ci(r, k); return o; });
      const table = new SortableTable(
        [{ key: "group", label: "group" }, { key: "n", label: "n" },
         ...M.map((k) => ({ key: k, label: k.replace("_", " ") + " [95% CI]" }))],
        rows, (r) => String(r.group), undefined, "groups");
      table.sortBy("n", true);
      const line = (k: string, label: string) => {
        const v = d[k] || [];
        return h("div", { "data-testid": k, text: `${label}: ${fmt(v[0])}  [95% CI ${fmt(v[1])}, ${fmt(v[2])}]` });
      };
      parts.push(section("Per-group metrics", "groups-section", table.el,
        line("demographic_parity_difference", "Demographic parity difference (max \u2212 min selection rate)"),
        line("equalized_odds_difference", "Equalized-odds difference (max of TPR range, FPR range)")));
    }
    f.body.replaceChildren(...parts);
    f.root.dataset.ready = "1";
  };

  f.watch(["done", "summary", "pairs", "attributions"], draw);
  f.watch(["selected_pair"], showPair);
  draw();
  return () => f.cleanup();
}

export default { render };
