// AuditView: pass/fail summary, counterfactual shift histogram + worst pairs (click one: both
// versions side by side with token attribution), robustness pass rates with failing examples
// (changed words highlighted), per-group metrics with bootstrap CIs. Every string via textContent.
import { decode } from "../lib/buffers";
import { csvOf } from "../lib/csv";
import { h, themeInk, THEME_EVENT, whenShown } from "../lib/dom";
import { fmt, fmtSigned } from "../lib/format";
import { absMax, binCounts } from "../lib/ndarray";
import { frame, Model } from "../lib/frame";
import { fromSelection } from "../lib/selection";
import { Row, SortableTable } from "../lib/table";
import { TokenStrip } from "../lib/tokens";
import type { AuditViewState } from "../generated/state";

type Words = [string, boolean][];
// what AuditView sends, typed by its traits (llm_widgets/widgets/audit.py: PAIR, SIDE, EXAMPLE, ...)
type Pair = AuditViewState["pairs"][number];
type Side = AuditViewState["attributions"][string]["a"];
type Example = NonNullable<AuditViewState["attack_result"]>["examples"][number];

const ci = (r: Row, k: string) => `${fmt(r[k])} [${fmt(r[k + "_lo"])}, ${fmt(r[k + "_hi"])}]`;

function section(title: string, testid: string, ...children: (Node | null)[]): HTMLElement {
  return h("details", { open: true, "data-testid": testid, style: "margin:6px 0" },
    h("summary", { text: title, style: "font-weight:600;cursor:pointer" }), ...children);
}

const SUMMARY_COLUMNS = ["section", "check", "value", "ci_low", "ci_high", "threshold", "rule", "passed", "detail"];

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
  const W = 360, H = 150, bins = 31;
  const c = h("canvas", { class: "lw-canvas", "data-testid": "cf-hist", style: `width:${W}px;height:${H}px;cursor:default` }) as HTMLCanvasElement;
  const dpr = window.devicePixelRatio || 1;
  c.width = W * dpr; c.height = H * dpr;
  const m = Math.max(1e-6, absMax(shifts));
  const counts = binCounts(shifts, bins, -m, m);
  const cmax = Math.max(1, ...counts);
  c.dataset.max = String(m);
  c.dataset.counts = counts.join(",");
  const draw = () => paintHistogram(c, counts, m, cmax, shifts.length, label);
  draw();
  c.addEventListener(THEME_EVENT, draw); // text in the notebook theme's colour
  if (!c.isConnected) whenShown(c, draw);
  return c;
}

/** The label of the histogram's line at 0. */
export const ZERO_LINE = "no shift";

/** The x-axis ticks of the shift histogram over [-m, m] drawn from x = l over pw px: its ends aligned
 * inwards (the right end's label ends at the plot's edge, never past the canvas), 0 centred. */
export function histTicks(m: number, l: number, pw: number): { text: string; x: number; align: CanvasTextAlign }[] {
  return [{ text: fmt(-m, 2), x: l, align: "center" }, { text: "0", x: l + pw / 2, align: "center" },
    { text: fmt(m, 2), x: l + pw, align: "right" }];
}

function paintHistogram(c: HTMLCanvasElement, counts: number[], m: number, cmax: number, n: number, label: string): void {
  const W = 360, H = 150, l = 34, b = 30, top = 8, bins = counts.length;
  const dpr = window.devicePixelRatio || 1;
  const ctx = c.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  const pw = W - l - 6, ph = H - b - top;
  ctx.fillStyle = "#4c78a8";
  counts.forEach((n, i) => {
    const bh = (n / cmax) * ph;
    ctx.fillRect(l + (i * pw) / bins + 0.5, top + ph - bh, pw / bins - 1, bh);
  });
  const ink = themeInk(c);
  ctx.strokeStyle = ink.hot;
  ctx.beginPath(); ctx.moveTo(l + pw / 2, top); ctx.lineTo(l + pw / 2, top + ph); ctx.stroke();
  ctx.fillStyle = ink.fg; ctx.font = "10px system-ui,sans-serif";
  ctx.textBaseline = "top";
  for (const t of histTicks(m, l, pw)) { ctx.textAlign = t.align; ctx.fillText(t.text, t.x, top + ph + 3); }
  ctx.textAlign = "center";
  ctx.fillText(`shift in ${label} (compared group \u2212 reference), ${n} pairs`, l + pw / 2, top + ph + 16);
  // the line at 0 says what it marks
  ctx.fillStyle = ink.hot; ctx.textAlign = "left";
  ctx.fillText(ZERO_LINE, l + pw / 2 + 3, top);
  ctx.fillStyle = ink.fg;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  ctx.fillText(String(cmax), l - 3, top + 4);
  ctx.fillText("0", l - 3, top + ph);
}

function words(ws: Words, testid: string): HTMLElement {
  const el = h("div", { "data-testid": testid, style: "font-family:ui-monospace,Menlo,monospace" });
  ws.forEach(([w, changed], i) => {
    if (i) el.append(" ");
    el.append(h("span", { text: w, class: changed ? "lw-changed" : undefined, style: changed ? "background:rgba(255,193,7,.35);border-radius:2px;padding:0 2px" : undefined }));
  });
  return el;
}

/** Two token strips coloured on one scale (a pair's versions, an attack's original and adversarial). */
function sideBySide(sides: { head: string; side: Side | undefined; fallback: HTMLElement; testid: string }[]): HTMLElement[] {
  const ws = sides.map((s) => (s.side ? decode(s.side.weights)!.values : null));
  const vmax = Math.max(1e-9, ...ws.map((w) => (w ? absMax(w) : 0)));
  return sides.map((s, k) => {
    let body = s.fallback;
    if (s.side && ws[k]) {
      const strip = new TokenStrip(s.side.tokens, { testid: s.testid });
      strip.setWeights(ws[k]!, true, vmax);
      body = strip.el;
    }
    return h("div", { style: "min-width:260px;max-width:440px" }, h("div", { text: s.head, style: "font-weight:600" }), body);
  });
}

function attackSection(model: Model<AuditViewState>, commit: (v: Record<string, unknown>) => void, detail: HTMLElement): HTMLElement | null {
  const a = model.get("attack_result");
  if (!a) return null;
  const rows: Row[] = a.summary || [];
  if (!rows.length) return null;
  const table = new SortableTable(
    [{ key: "order", label: "word order" }, { key: "flipped", label: "flipped" },
     { key: "rate", label: "success rate [95% CI]" }, { key: "mean_words_changed", label: "mean words changed", format: (v) => fmt(v, 2) },
     { key: "queries_per_success", label: "queries per success", format: (v) => fmt(v, 1) },
     { key: "mean_queries", label: "mean queries", format: (v) => fmt(v, 1) }],
    rows.map((r) => ({ ...r, flipped: `${r.successes}/${r.texts}`, rate: ci(r, "success_rate") })),
    (r) => String(r.order), undefined, "attack-summary");
  table.sortBy("order", false); // ours first, then the random-order baseline
  const names: string[] = a.class_names || [];
  const label = (k: number) => names[k] ?? String(k);
  const examples = a.examples.map((x) => {
    const item = h("div", { class: "lw-example", "data-id": x.id, style: "border-top:1px solid #eee;padding:3px 0;cursor:pointer" },
      h("span", { class: "lw-muted", text: `#${x.id}: ${label(x.pred_o)} → ${label(x.pred_a)} (${fmt(x.conf_o)} → ${fmt(x.conf_a)}), ` +
        `${x.words_changed} word${x.words_changed === 1 ? "" : "s"} changed, ${x.queries} queries` }),
      words(x.original, "example-original-words"), words(x.adversarial, "example-adversarial-words"));
    item.addEventListener("click", () => commit({ selected_example: x.id }));
    return item;
  });
  const b = a.budget || {};
  return section("Adversarial robustness: word substitutions", "attack-section", table.el,
    h("div", { class: "lw-muted", text: `Words tried in the order of the ${a.ranking}; substitutions: ${(b.kinds || []).join(", ")}; ` +
      `budget ${b.max_words} changed words, ${b.max_queries} queries per text. Random word order is the baseline. ` +
      `Successful examples (changed words highlighted); click one for both versions' attribution:` }),
    h("div", { "data-testid": "attack-examples", style: "max-height:260px;overflow:auto" }, ...examples), detail);
}

function memorizationSection(model: Model<AuditViewState>): HTMLElement | null {
  const m = model.get("memorization_result");
  if (!m) return null;
  const strings: Row[] = m.strings || [], canaries: Row[] = m.canaries || [];
  if (!strings.length && !canaries.length) return null;
  const parts: HTMLElement[] = [];
  if (strings.length) {
    const t = new SortableTable(
      [{ key: "n", label: "#" }, { key: "string", label: "string" }, { key: "extracted", label: "extracted" }, { key: "reproduced", label: "tokens reproduced" },
       { key: "continuation", label: "greedy continuation" }, { key: "loglik", label: "log-likelihood", format: (v) => fmt(v, 2) },
       { key: "percentile", label: "percentile", format: (v) => fmt(v, 2) }],
      strings.map((r, n) => ({ ...r, n, extracted: r.exact ? "yes" : "no", reproduced: `${r.matched}/${r.rest_tokens}` })),
      (r) => String(r.n), undefined, "memorization-strings");
    t.sortBy("n", false);
    parts.push(h("div", { class: "lw-muted", text: `Greedy decoding from the first ${m.prefix_tokens} tokens; likelihood percentile ` +
      `against ${m.n_lookalikes} ${m.lookalike}d look-alikes (near 1: memorized).` }), t.el);
  }
  if (canaries.length) {
    const t = new SortableTable(
      [{ key: "canary", label: "canary" }, { key: "secret", label: "secret" }, { key: "rank", label: "rank" },
       { key: "candidates", label: "candidates" }, { key: "exposure", label: "exposure (bits)", format: (v) => fmt(v, 2) },
       { key: "max_exposure", label: "max (bits)", format: (v) => fmt(v, 2) }],
      canaries, (r) => String(r.canary), undefined, "memorization-canaries");
    t.sortBy("exposure", true);
    parts.push(h("div", { class: "lw-muted", text: "Exposure (Carlini et al. 2019): log2 |candidates| \u2212 log2 rank of the canary among " +
      "every secret of its form; near the maximum when memorized, about 1.4 bits by chance." }), t.el);
  }
  return section("Memorization and privacy leakage", "memorization-section", ...parts);
}

function render({ model, el }: { model: Model<AuditViewState>; el: HTMLElement }) {
  const f = frame(model, el, "audit");
  const csvBtn = h("button", { class: "lw-btn", text: "CSV", title: "Download the summary table as CSV", "data-testid": "csv" });
  const info = h("span", { class: "lw-muted", "data-testid": "info" });
  f.toolbar.append(csvBtn, info);
  csvBtn.addEventListener("click", () => {
    const a = document.createElement("a");
    a.download = "audit-summary.csv";
    a.href = URL.createObjectURL(new Blob([csvOf(SUMMARY_COLUMNS, model.get("summary") || [])], { type: "text/csv" }));
    a.click();
  });

  let pairTable: SortableTable | null = null;
  const detail = h("div", { "data-testid": "pair-detail", class: "lw-row", style: "margin-top:6px" });
  const exampleDetail = h("div", { "data-testid": "example-detail", class: "lw-row", style: "margin-top:6px" });

  const showExample = () => {
    const id = fromSelection(model.get("selected_example"));
    exampleDetail.dataset.example = String(id);
    for (const e of Array.from(f.body.querySelectorAll<HTMLElement>(".lw-example"))) {
      const on = e.dataset.id === String(id);
      e.classList.toggle("lw-sel", on);
      e.style.background = on ? "#fde9e8" : "";
    }
    const ex: Example | undefined = (model.get("attack_result")?.examples ?? []).find((x) => x.id === id);
    if (!ex) {
      exampleDetail.replaceChildren(h("span", { class: "lw-muted", text: id >= 0 ? "loading\u2026" : "Click an example to compare both versions." }));
      return;
    }
    const att: Record<"original" | "adversarial", Side> | undefined = (model.get("example_attributions") || {})[String(id)];
    const fallback = (w: Words, t: string) => words(w, t);
    exampleDetail.replaceChildren(...sideBySide([
      { head: "original", side: att?.original, fallback: fallback(ex.original, "example-original"), testid: "example-original" },
      { head: "adversarial", side: att?.adversarial, fallback: fallback(ex.adversarial, "example-adversarial"), testid: "example-adversarial" },
    ]), h("div", { class: "lw-muted", style: "flex-basis:100%", text: att ? `Token colour: ${att.original.what} (red raises it, blue lowers it), one scale for both.` : "" }));
  };

  const showPair = () => {
    const id = fromSelection(model.get("selected_pair"));
    pairTable?.select(id >= 0 ? String(id) : null);
    detail.dataset.pair = String(id);
    const pair: Pair | undefined = (model.get("pairs") || []).find((p) => p.id === id);
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
      const shifts = decode(model.get("shifts"))!.values;
      const pairs = model.get("pairs") || [];
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
      const fails = (model.get("failures") || []).map((x) =>
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
    const att = attackSection(model, (v) => f.commit(v), exampleDetail);
    if (att) parts.push(att);
    const mem = memorizationSection(model);
    if (mem) parts.push(mem);
    f.body.replaceChildren(...parts);
    if (att) showExample();
    f.root.dataset.ready = "1";
  };

  f.watch(["done", "summary", "pairs", "attributions", "attack_result", "memorization_result"], draw);
  f.watch(["selected_pair"], showPair);
  f.watch(["selected_example", "example_attributions"], showExample);
  draw();
  return () => f.cleanup();
}

export default { render };
