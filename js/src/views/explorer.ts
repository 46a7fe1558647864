// Explorer: child views around one shared token strip. Hover sync happens here in the browser (no
// kernel round trip); committed selections (selected_token) are traits, mirrored between the
// explorer and every child model here, and linked in Python too.
import { h, scrollCue, watchWidth } from "../lib/dom";
import { frame, Model, NEEDS_KERNEL } from "../lib/frame";
import { exportedModel } from "../lib/model";
import { fromSelection, mirror } from "../lib/selection";
import { showRoles, TokenStrip } from "../lib/tokens";
import attention from "./attention";
import attribution from "./attribution";
import logit_lens from "./logit_lens";
import neuron from "./neuron";
import type { ExplorerState } from "../generated/state";

type ViewModule = { render(a: { model: Model; el: HTMLElement }): (() => void) | void };
const REGISTRY: Record<string, ViewModule> = { attention, attribution, neuron, logit_lens };

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
  f.toolbar.append(input, run);
  if (f.exported) { // new text needs the kernel: one note for the box and the button
    f.disable(input, `new text ${NEEDS_KERNEL}`, false);
    f.disable(run, `running on new text ${NEEDS_KERNEL}`);
  }
  const submit = () => { if (input.value.trim() && input.value !== model.get("text")) f.commit({ text: input.value }); };
  run.addEventListener("click", submit);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
  const stripHost = h("div", { "data-testid": "shared-strip" });
  // panels side by side where the width allows (a CSS grid of columns at least 420 px wide); a panel
  // whose content cannot fit a column (the head grid of a 12-head model) takes a whole row
  const panels = h("div", { class: "lw-panels", "data-testid": "panels" });
  const fitPanels = () => {
    const boxes = Array.from(panels.children) as HTMLElement[];
    for (const b of boxes) b.classList.remove("lw-wide");
    for (const b of boxes) if (b.clientWidth > 0 && b.scrollWidth > b.clientWidth + 2) b.classList.add("lw-wide");
  };
  const stopWidth = watchWidth(panels, () => fitPanels());
  // a line for each panel that is not shown, and why (a model without a head, a failed target, ...)
  const skippedBox = h("div", { "data-testid": "skipped" });
  const showSkipped = () => {
    const skipped: Record<string, string> = model.get("skipped") || {};
    skippedBox.replaceChildren(...Object.entries(skipped).map(([name, why]) =>
      h("div", { class: "lw-muted", "data-skipped": name, text: `${TITLES[name] ?? name} panel not shown: ${why}` })));
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
    stripHost.replaceChildren(h("div", { class: "lw-muted", text: "Shared tokens: hover to highlight everywhere, click to select in every view." }), strip.el);
    panels.replaceChildren();
    names.forEach((name, k) => {
      const child = children[k];
      // the panel's own frame hides its Snapshot button and title (.lw-panel): the Explorer has one of each
      const box = h("div", { "data-panel": name, class: "lw-panel" },
        h("div", { class: "lw-title", text: TITLES[name] ?? name }));
      const host = h("div");
      box.append(host, scrollCue(box, `of the ${TITLES[name] ?? name} panel`));
      panels.append(box);
      const mod = REGISTRY[name];
      if (!mod) { host.append(h("div", { class: "lw-muted", text: `No front end for panel ${name}.` })); return; }
      const cb = () => select(child.get("selected_token"), child);
      child.on("change:selected_token", cb);
      cleanups.push(() => child.off("change:selected_token", cb));
      const cleanup = mod.render({ model: child, el: host });
      if (typeof cleanup === "function") cleanups.push(cleanup);
    });
    input.value = model.get("text") || "";
    strip.select(fromSelection(model.get("selected_token")));
    f.root.dataset.selected = String(model.get("selected_token"));
    fitPanels();
    setTimeout(fitPanels, 50); // once the panels have drawn at their width
    f.root.dataset.ready = "1";
  };
  f.watch(["selected_token"], () => select(model.get("selected_token"), null));
  f.watch(["skipped"], showSkipped);
  f.watch(["token_roles", "token_markup", "token_messages"], () => { if (strip) showRoles(strip, model); });
  showSkipped();
  // a re-run changes several traits in one message: mount once for all of them
  let pending = false;
  f.watch(["views", "view_names", "tokens"], () => {
    f.root.dataset.ready = "0";
    if (!pending) { pending = true; setTimeout(() => { pending = false; void mount(); }, 0); }
  });
  void mount();
  return () => { stopWidth(); cleanups.forEach((c) => c()); f.cleanup(); };
}

export default { render };
