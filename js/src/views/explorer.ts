// Explorer: child views around one shared token strip. Hover sync happens here in the browser (no
// kernel round trip); committed selections (selected_token) are traits, mirrored between the
// explorer and every child model here, and linked in Python too. The panels' own strips of the same
// tokens are hidden: the shared strip shows their values instead (a mode picks whose), with its
// colour bar, and is the one place a token is selected.
import { ColorBar } from "../lib/colorbar";
import { h, scrollCue, watchWidth } from "../lib/dom";
import { frame, Model, NEEDS_KERNEL } from "../lib/frame";
import { exportedModel } from "../lib/model";
import { fromSelection, mirror } from "../lib/selection";
import { PAINT_EVENT, showRoles, TokenStrip } from "../lib/tokens";
import attention from "./attention";
import attribution from "./attribution";
import logit_lens from "./logit_lens";
import neuron from "./neuron";
import type { ExplorerState } from "../generated/state";

type ViewModule = { render(a: { model: Model; el: HTMLElement }): (() => void) | void };
const REGISTRY: Record<string, ViewModule> = { attention, attribution, neuron, logit_lens };

/** Height (px) of the grid rows the panels span (balanced columns), and the gap kept under a panel. */
export const ROW_UNIT = 4;
export const PANEL_GAP = 12;

/** Rows of ROW_UNIT px a panel `height` px tall spans, with `gap` px under it. */
export function rowSpan(height: number, gap = PANEL_GAP): number {
  return Math.max(1, Math.ceil((height + gap) / ROW_UNIT));
}

/** Texts of more tokens than this start with the shared token strip folded. */
export const FOLD_TOKENS = 64;

/** Whose values the shared strip shows when the user has not picked ("auto"): the first of these
 * panels (then any other) whose strip has values now. */
export const MODE_ORDER = ["attribution", "neuron", "attention", "logit_lens"];

/** The panel whose values the shared strip shows: `picked` ("auto", "none" or a panel name) and which
 * panels have values now; "none" where nothing is to be shown. A picked panel stays picked while it
 * has no values (its caption says so). */
export function stripMode(picked: string, hasValues: Record<string, boolean>, order: readonly string[] = MODE_ORDER): string {
  if (picked !== "auto") return picked;
  const names = [...order.filter((n) => n in hasValues), ...Object.keys(hasValues).filter((n) => !order.includes(n))];
  return names.find((n) => hasValues[n]) ?? "none";
}

const TITLES: Record<string, string> = {
  attention: "Attention", attribution: "Attribution", neuron: "Neurons", logit_lens: "Logit lens",
};

async function childModels(model: Model): Promise<Model[]> {
  const exp = model.get("_export");
  if (exp && exp.children) return exp.children.map((c: { state: Record<string, unknown> }) => exportedModel(c.state));
  const refs: string[] = model.get("views") || [];
  const wm = (model as Model & { widget_manager: { get_model(id: string): Promise<Model> } }).widget_manager;
  return Promise.all(refs.map((r) => wm.get_model(String(r).replace(/^IPY_MODEL_/, ""))));
}

function render({ model, el }: { model: Model<ExplorerState>; el: HTMLElement }) {
  const f = frame(model, el, "explorer");
  const input = h("input", { type: "text", class: "lw-select", style: "width:min(640px,70vw)", "data-testid": "text" }) as HTMLInputElement;
  const run = h("button", { class: "lw-btn", text: "Run", "data-testid": "run" });
  // a text longer than the model's context is refused unless truncated: the box the error names
  const truncate = h("input", { type: "checkbox", "data-testid": "truncate" }) as HTMLInputElement;
  const truncateLabel = h("label", { class: "lw-muted", title: "Keep the first tokens of a text longer than the model accepts (truncate=True)" },
    truncate, " truncate long texts");
  f.toolbar.append(input, run, truncateLabel);
  if (f.exported) { // new text needs the kernel: one note for the box and the button
    f.disable(input, `new text ${NEEDS_KERNEL}`, false);
    f.disable(run, `running on new text ${NEEDS_KERNEL}`);
    f.disable(truncate, `truncating ${NEEDS_KERNEL}`, false);
  }
  const submit = () => { if (input.value.trim() && input.value !== model.get("text")) f.commit({ text: input.value }); };
  run.addEventListener("click", submit);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
  // an error is about the text that caused it: editing the text clears it
  input.addEventListener("input", () => { if (model.get("error")) f.commit({ error: "" }); });
  truncate.addEventListener("change", () => f.commit({ truncate: truncate.checked }));
  const showTruncate = () => { truncate.checked = Boolean(model.get("truncate")); };
  const stripHost = h("div", { "data-testid": "shared-strip" });
  // panels side by side where the width allows (a CSS grid of columns at least 420 px wide); a panel
  // whose content cannot fit a column (the head grid of a 12-head model) takes a whole row
  const panels = h("div", { class: "lw-panels", "data-testid": "panels" });
  const fitPanels = () => {
    const boxes = Array.from(panels.children) as HTMLElement[];
    for (const b of boxes) b.classList.remove("lw-wide");
    for (const b of boxes) if (b.clientWidth > 0 && b.scrollWidth > b.clientWidth + 2) b.classList.add("lw-wide");
    balance(boxes);
  };
  // balanced columns: each panel spans as many ROW_UNIT px rows as it is tall, so the grid places the
  // next panel in the column that ends first (no empty column beside a long panel)
  const balance = (boxes: HTMLElement[]) => {
    const cols = typeof getComputedStyle === "function" ? getComputedStyle(panels).gridTemplateColumns.split(" ").filter(Boolean).length : 1;
    const on = cols > 1 && boxes.some((b) => b.getBoundingClientRect().height > 0);
    panels.style.gridAutoRows = on ? `${ROW_UNIT}px` : "";
    panels.style.rowGap = on ? "0" : "";
    for (const b of boxes) b.style.gridRowEnd = on ? `span ${rowSpan(b.getBoundingClientRect().height, PANEL_GAP)}` : "";
    panels.dataset.columns = String(on ? cols : 1);
  };
  const RO = (globalThis as { ResizeObserver?: typeof ResizeObserver }).ResizeObserver;
  const heights = RO ? new RO(() => balance(Array.from(panels.children) as HTMLElement[])) : null;
  const stopWidth = watchWidth(panels, () => fitPanels());
  // a line for each panel that is not shown, and why (a model without a head, a failed target, ...)
  const skippedBox = h("div", { "data-testid": "skipped" });
  const showSkipped = () => {
    const skipped: Record<string, string> = model.get("skipped") || {};
    skippedBox.replaceChildren(...Object.entries(skipped).map(([name, why]) =>
      h("div", { class: "lw-muted", "data-skipped": name, text: `${TITLES[name] ?? name} panel not shown: ${why}` })));
  };
  // the shared strip's colours: whose values (a mode), what they are (caption) and their scale
  const modeSel = h("select", { class: "lw-select", "data-testid": "strip-mode", title: "Which panel's values colour the shared tokens" }) as HTMLSelectElement;
  const stripCaption = h("span", { class: "lw-muted", "data-testid": "strip-caption" });
  const stripBar = new ColorBar("shared-colorbar");
  const sources = new Map<string, TokenStrip>(); // panel -> its (hidden) strip of the same tokens
  let picked = "auto";
  modeSel.addEventListener("change", () => { picked = modeSel.value; showValues(); });
  const fillModes = () => {
    const names = [...sources.keys()];
    modeSel.replaceChildren(h("option", { value: "auto", text: "colour: auto" }), h("option", { value: "none", text: "colour: none" }),
      ...names.map((n) => h("option", { value: n, text: `colour: ${TITLES[n] ?? n}` })));
    modeSel.value = picked === "auto" || picked === "none" || sources.has(picked) ? picked : "auto";
    picked = modeSel.value;
  };
  const showValues = () => {
    if (!strip) return;
    const has: Record<string, boolean> = {};
    for (const [n, s] of sources) has[n] = s.weights !== null;
    const mode = stripMode(picked, has);
    const src = sources.get(mode);
    const w = src?.weights ?? null, sc = w ? src!.scale : null;
    strip.paint(w, sc);
    stripBar.set(sc);
    stripCaption.textContent = mode === "none" ? (sources.size ? "no panel has values for the tokens now" : "")
      : w ? `colours: ${TITLES[mode] ?? mode} panel` : `${TITLES[mode] ?? mode} panel: no values now (select something in it)`;
    stripHost.dataset.mode = w ? mode : "none";
  };
  /** A panel's strip of the text's own tokens (as many as the shared strip) is hidden, and its
   * colour bar with it: the shared strip shows its values. Other strips (generated outputs, words)
   * stay in their panel. */
  const adopt = (el: HTMLElement): boolean => {
    if (!strip || el.dataset.testid !== "tokens" || Number(el.dataset.total) !== strip.length) return false;
    el.classList.add("lw-shared-src");
    const next = el.nextElementSibling as HTMLElement | null;
    if (next && next.dataset.testid === "tokens-colorbar") next.classList.add("lw-shared-src");
    return true;
  };
  f.body.append(stripHost, skippedBox, panels);
  panels.style.marginTop = "8px";

  let cleanups: (() => void)[] = [];
  let children: Model[] = [];
  let strip: TokenStrip | null = null;

  // hover: mark token i in every strip of every panel (pure DOM, within the frame)
  let hovered = -1;
  const hover = (i: number) => {
    if (i === hovered) return;
    hovered = i;
    for (const e of Array.from(f.root.querySelectorAll(".lw-tok.lw-linked"))) e.classList.remove("lw-linked", "lw-hover");
    if (i >= 0) for (const e of Array.from(f.root.querySelectorAll(`.lw-tok[data-index="${i}"]`))) e.classList.add("lw-linked", "lw-hover");
    f.root.dataset.hovered = String(i);
  };
  f.root.addEventListener("mouseover", (e) => {
    const tok = (e.target as HTMLElement).closest?.(".lw-tok") as HTMLElement | null;
    if (tok && tok.dataset.index !== undefined) hover(Number(tok.dataset.index));
  });
  f.root.addEventListener("mouseleave", () => hover(-1));

  const select = (i: number | null, from: Model | null) => { // null: nothing selected
    strip?.select(fromSelection(i));
    mirror("selected_token", i, [model, ...children], from); // sets (and syncs) only where it differs: no echo
    f.root.dataset.selected = String(i);
  };

  const mount = async () => {
    cleanups.forEach((c) => c());
    cleanups = [];
    const names: string[] = model.get("view_names") || [];
    children = await childModels(model);
    strip = new TokenStrip(model.get("tokens") || [], { onClick: (i) => select(i, null), testid: "shared-tokens" });
    showRoles(strip, model); // a chat input: its role segments
    // one strip for the whole text, folded away for long texts (a wall of lines otherwise)
    const n = strip.length;
    stripHost.replaceChildren(h("details", { open: n <= FOLD_TOKENS, "data-testid": "shared-strip-fold" },
      h("summary", { class: "lw-muted", text: `Shared tokens (${n}): hover to highlight everywhere, click to select in every view.` }),
      h("div", { class: "lw-head" }, modeSel, stripCaption, stripBar.el), strip.el));
    sources.clear();
    heights?.disconnect();
    panels.replaceChildren();
    names.forEach((name, k) => {
      const child = children[k];
      // the panel's own frame hides its Snapshot button and title (.lw-panel): the Explorer has one of each
      const box = h("div", { "data-panel": name, class: "lw-panel" },
        h("div", { class: "lw-title", text: TITLES[name] ?? name }));
      const host = h("div");
      box.append(host, scrollCue(box, `of the ${TITLES[name] ?? name} panel`));
      panels.append(box);
      heights?.observe(host); // a panel that grows (its data arrived) re-balances the columns
      const mod = REGISTRY[name];
      if (!mod) { host.append(h("div", { class: "lw-muted", text: `No front end for panel ${name}.` })); return; }
      // the panel's strip of the text's tokens reports each painting: its values go to the shared strip
      box.addEventListener(PAINT_EVENT, (e) => {
        const src = (e as CustomEvent<TokenStrip>).detail;
        if (!(src instanceof TokenStrip) || !adopt(src.el)) return;
        const known = sources.get(name) === src;
        sources.set(name, src);
        if (!known) fillModes();
        showValues();
      });
      const cb = () => select(child.get("selected_token"), child);
      child.on("change:selected_token", cb);
      cleanups.push(() => child.off("change:selected_token", cb));
      const cleanup = mod.render({ model: child, el: host });
      if (typeof cleanup === "function") cleanups.push(cleanup);
      for (const el of Array.from(host.querySelectorAll<HTMLElement>(".lw-strip"))) adopt(el); // drawn, not painted yet
    });
    fillModes();
    showValues();
    input.value = model.get("text") || "";
    strip.select(fromSelection(model.get("selected_token")));
    f.root.dataset.selected = String(model.get("selected_token"));
    fitPanels();
    setTimeout(fitPanels, 50); // once the panels have drawn at their width
    f.root.dataset.ready = "1";
  };
  f.watch(["selected_token"], () => select(model.get("selected_token"), null));
  f.watch(["skipped"], showSkipped);
  f.watch(["truncate"], showTruncate);
  showTruncate();
  f.watch(["token_roles", "token_markup", "token_messages"], () => { if (strip) showRoles(strip, model); });
  showSkipped();
  // a re-run changes several traits in one message: mount once for all of them
  let pending = false;
  f.watch(["views", "view_names", "tokens"], () => {
    f.root.dataset.ready = "0";
    if (!pending) { pending = true; setTimeout(() => { pending = false; void mount(); }, 0); }
  });
  void mount();
  return () => { stopWidth(); heights?.disconnect(); cleanups.forEach((c) => c()); f.cleanup(); };
}

export default { render };
