// The frame every view shares: title, notice, error and progress bound to the base traits
// (llm_widgets.widgets.base.View), a toolbar, and listener bookkeeping for clean teardown.
import { syncTheme } from "./colors";
import { h, injectStyle, savePNG, scrollCue, snapshot, THEME_EVENT, watchTheme } from "./dom";

/** What redraws itself on a theme change (THEME_EVENT): canvases, token strips, colour bars. */
export const THEMED = "canvas, .lw-strip, .lw-cbar";

// A view's model, typed by its state (S: the view's interface generated from its Python traits,
// js/src/generated/state.ts), so a trait renamed in Python fails the typecheck here. Untyped (S
// omitted: lib code shared by every view) get() returns `any`. Callbacks take the event's arguments.
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface Model<S = any> {
  get<K extends keyof S & string>(key: K): S[K];
  set<K extends keyof S & string>(key: K, value: S[K]): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string | null, cb?: ((...args: any[]) => void) | null): void;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** What a view bundle exports as default (anywidget's module shape). */
export interface ViewModule {
  initialize?(a: { model: Model }): unknown;
  render(a: { model: Model; el: HTMLElement }): (() => void) | void | Promise<(() => void) | void>;
}

/** Hand a view's parts (heatmap, strip, table...) to browser tests as `el.__lw`. */
export function expose(el: HTMLElement, parts: object): void {
  (el as HTMLElement & { __lw?: object }).__lw = parts;
}

export interface Frame {
  root: HTMLDivElement;
  toolbar: HTMLDivElement;
  body: HTMLDivElement;
  /** Subscribe to change:<key>; removed by cleanup(). */
  watch(keys: string[], cb: () => void): void;
  /** Set traits and sync them to Python in one message. */
  commit(values: Record<string, unknown>): void;
  cleanup(): void;
  /** True in a static export (no kernel behind the model). */
  exported: boolean;
  /** Disable a control that cannot work here, saying why: its tooltip, and (note) a muted note after it. */
  disable(control: HTMLElement, reason: string, note?: boolean | HTMLElement): void;
}

/** Why a control that needs the kernel is disabled in a static export. */
export const NEEDS_KERNEL = "needs the kernel: this is a static export";

/** How Snapshot saves the view (tests replace it). */
export const snapshotter = {
  async save(root: HTMLElement, filename: string): Promise<void> {
    savePNG(await snapshot(root), filename);
  },
};

const notes = new WeakMap<HTMLElement, HTMLElement>(); // a disabled control -> its muted note

/** Mark `control` disabled with `reason` (tooltip, aria), and add a muted note after it (or after
 * `note` where that is an element: an <option>'s note goes outside its menu) unless note is false;
 * enabled again by enable(). */
export function disable(control: HTMLElement, reason: string, note: boolean | HTMLElement = true): void {
  if (control.dataset.why === undefined) control.dataset.title = control.title; // the title to restore
  (control as HTMLButtonElement).disabled = true;
  control.title = reason;
  control.setAttribute("aria-disabled", "true");
  control.dataset.why = reason;
  let why = notes.get(control);
  const at = note instanceof HTMLElement ? note : control;
  if (!why && note && at.parentNode) {
    why = h("span", { class: "lw-why", "data-testid": "why-disabled" });
    at.parentNode.insertBefore(why, at.nextSibling);
    notes.set(control, why);
  }
  if (why) why.textContent = reason;
}

/** Undo disable(): the control works again, with its own title and no note. */
export function enable(control: HTMLElement): void {
  if (control.dataset.why === undefined) return;
  (control as HTMLButtonElement).disabled = false;
  control.title = control.dataset.title ?? "";
  control.removeAttribute("aria-disabled");
  delete control.dataset.why;
  delete control.dataset.title;
  notes.get(control)?.remove();
  notes.delete(control);
}

/** Milliseconds without a progress change after which a computing view says it may be stale. */
export const STALLED_MS = 15_000;

export function frame(model: Model, el: HTMLElement, view: string): Frame {
  injectStyle();
  const title = h("span", { class: "lw-title lw-view-title" });
  const notice = h("span", { class: "lw-notice" });
  const error = h("span", { class: "lw-error", "data-testid": "error" });
  const bar = h("progress", { max: 1 }) as HTMLProgressElement;
  const barLabel = h("span", { class: "lw-muted" });
  const progress = h("span", { class: "lw-progress", "data-testid": "progress" }, bar, barLabel);
  const toolbar = h("div", { class: "lw-head" });
  const body = h("div");
  const snap = h("button", { class: "lw-btn lw-snap", text: "Snapshot", title: "Save the whole view as a PNG image", "data-testid": "snapshot" });
  const root = h("div", { class: "lw-root", "data-lw-view": view },
    h("div", { class: "lw-head" }, title, notice, error, progress, snap), toolbar, body);
  // wider than the output area (a narrow panel, a projector's zoom): the view scrolls sideways, and says so
  const cue = scrollCue(root, "of this view");
  cue.style.cssText += ";position:sticky;left:0";
  root.append(cue);
  el.replaceChildren(root);
  // saving takes a moment (every canvas re-encoded, the page drawn through an SVG): say so
  snap.addEventListener("click", async (e) => {
    e.stopPropagation();
    if (snap.disabled) return;
    snap.disabled = true;
    snap.textContent = "saving\u2026";
    snap.setAttribute("aria-busy", "true");
    try {
      await new Promise((r) => setTimeout(r, 0)); // let the busy state paint first
      await snapshotter.save(root, `${view}.png`);
    } catch (err) { // e.g. a canvas the browser will not read back: say so where errors go
      error.textContent = `Snapshot failed: ${String((err as Error)?.message ?? err)}`;
      error.style.display = "";
    } finally {
      snap.disabled = false;
      snap.textContent = "Snapshot";
      snap.removeAttribute("aria-busy");
    }
  });
  // canvases draw their text in the theme's colours, and colour scales have a dark variant: redraw
  // canvases, token strips and colour bars when the theme changes
  syncTheme();
  const stopTheme = watchTheme(() => {
    syncTheme();
    for (const c of Array.from(root.querySelectorAll(THEMED))) c.dispatchEvent(new Event(THEME_EVENT));
  });

  const subs: [string, () => void][] = [];
  const watch = (keys: string[], cb: () => void) => {
    for (const k of keys) {
      model.on(`change:${k}`, cb);
      subs.push([`change:${k}`, cb]);
    }
  };
  // A view saved (or exported by hand) while its kernel was still computing would spin forever:
  // when progress stops moving, say what that may mean.
  let lastMove = Date.now();
  const stale = setInterval(() => {
    const p = model.get("progress");
    const computing = typeof p === "number" && p >= 0;
    const quiet = Date.now() - lastMove > STALLED_MS;
    stalled.style.display = computing && quiet ? "" : "none";
  }, 1000);
  const stalled = h("span", {
    class: "lw-muted", "data-testid": "stalled",
    text: " no progress for a while: if this view was saved before its work finished, re-run its cell",
  });
  stalled.style.display = "none";
  progress.append(stalled);
  const show = () => {
    lastMove = Date.now();
    stalled.style.display = "none";
    title.textContent = model.get("title") || "";
    title.style.display = title.textContent ? "" : "none";
    notice.textContent = model.get("notice") || "";
    notice.style.display = notice.textContent ? "" : "none";
    error.textContent = model.get("error") || "";
    error.style.display = error.textContent ? "" : "none";
    const p = model.get("progress");
    progress.style.display = typeof p === "number" && p >= 0 ? "" : "none";
    bar.value = Math.max(0, p ?? 0);
    barLabel.textContent = model.get("progress_label") || "";
  };
  watch(["title", "notice", "error", "progress", "progress_label"], show);
  show();
  return {
    root, toolbar, body, watch,
    exported: Boolean(model.get("_export")),
    disable,
    commit(values) {
      for (const [k, v] of Object.entries(values)) model.set(k, v);
      model.save_changes();
    },
    cleanup() {
      clearInterval(stale);
      stopTheme();
      for (const [ev, cb] of subs) model.off(ev, cb);
    },
  };
}
