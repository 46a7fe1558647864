// Safe DOM building: text always goes through textContent, never innerHTML.
type Attrs = Record<string, string | number | boolean | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Attrs = {}, ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = String(v);
    else if (k === "text") e.textContent = String(v);
    else if (k === "style") e.setAttribute("style", String(v));
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c != null) e.append(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}

/** Where a mouse event happened, in CSS px relative to the top-left corner of `el`. */
export function localPoint(e: { clientX: number; clientY: number }, el: Element): [number, number] {
  const r = el.getBoundingClientRect();
  return [e.clientX - r.left, e.clientY - r.top];
}

const STYLE_ID = "llm-widgets-style";

/** The theme's colours as custom properties on every view's root: JupyterLab's variables first, then
 * VS Code's (its notebooks define --vscode-*), then light fallbacks (static exports, Colab, classic).
 * Every colour below reads these, so a view follows the notebook's light or dark theme; canvases read
 * the computed values (themeInk). Text on --lw-bg has a WCAG contrast of at least 4.5:1 in
 * JupyterLab Light and Dark and in the fallbacks. */
export const THEME_VARS = {
  "--lw-bg": "var(--jp-layout-color0,var(--vscode-editor-background,#fff))",
  "--lw-bg2": "var(--jp-layout-color2,var(--vscode-editorWidget-background,#eee))",
  "--lw-fg": "var(--jp-ui-font-color1,var(--vscode-editor-foreground,#222))",
  "--lw-muted": "var(--jp-ui-font-color2,var(--vscode-descriptionForeground,#616161))",
  "--lw-border": "var(--jp-border-color1,var(--vscode-editorWidget-border,#bdbdbd))",
  "--lw-line": "var(--jp-border-color2,var(--vscode-editorWidget-border,#e0e0e0))",
  "--lw-brand": "var(--jp-brand-color1,var(--vscode-focusBorder,#1976d2))",
} as const;

export const CSS = `
.lw-root{${Object.entries(THEME_VARS).map(([k, v]) => `${k}:${v}`).join(";")};--lw-sel:#d62728;--lw-sel-bg:rgba(214,39,40,.18);color-scheme:light;font:12px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--lw-fg);background:var(--lw-bg);padding:6px;box-sizing:border-box;max-width:100%;overflow:auto}
body[data-jp-theme-light=false] .lw-root,body.vscode-dark .lw-root,body.vscode-high-contrast .lw-root{color-scheme:dark}
.lw-head{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-bottom:6px}
.lw-title{font-weight:600;font-size:13px}
.lw-notice{background:rgba(255,193,7,.16);border:1px solid rgba(214,160,0,.7);padding:2px 6px;border-radius:3px}
.lw-error{background:rgba(214,39,40,.14);border:1px solid rgba(214,39,40,.75);padding:2px 6px;border-radius:3px}
.lw-progress{display:inline-flex;align-items:center;gap:6px}
.lw-progress progress{width:160px}
.lw-btn,.lw-select{font:inherit;padding:1px 6px;color:var(--lw-fg);background:var(--lw-bg2);border:1px solid var(--lw-border);border-radius:3px}
.lw-btn{cursor:pointer}
.lw-btn:hover:not(:disabled),.lw-select:hover:not(:disabled){border-color:var(--lw-brand)}
.lw-btn:disabled,.lw-select:disabled{opacity:.6;cursor:not-allowed}
.lw-btn[aria-busy=true]{cursor:progress}
.lw-why{color:var(--lw-muted);font-style:italic}
.lw-row{display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap}
.lw-strip{display:flex;flex-wrap:wrap;gap:2px;margin:6px 0;max-width:900px}
.lw-tok{white-space:pre;padding:1px 3px;border-radius:3px;border:1px solid transparent;cursor:pointer;font-family:ui-monospace,Menlo,monospace}
.lw-tok.lw-sel{border-color:var(--lw-sel);box-shadow:0 0 0 1px var(--lw-sel)}
.lw-tok.lw-hover{border-color:var(--lw-muted)}
.lw-table{border-collapse:collapse;font-variant-numeric:tabular-nums}
.lw-table th{cursor:pointer;user-select:none;background:var(--lw-bg2);position:sticky;top:0}
.lw-table th,.lw-table td{padding:1px 6px;border-bottom:1px solid var(--lw-line);text-align:right}
.lw-table tr.lw-sel td{background:var(--lw-sel-bg)}
.lw-table td.lw-sel{background:var(--lw-sel-bg);outline:2px solid var(--lw-sel);outline-offset:-2px}
.lw-table tbody tr{cursor:pointer}
.lw-scroll{max-height:260px;overflow:auto;border:1px solid var(--lw-line)}
.lw-hscroll{max-width:100%;overflow-x:auto;overflow-y:hidden}
.lw-cue{color:var(--lw-muted);font-size:11px}
.lw-muted{color:var(--lw-muted)}
.lw-root{--lw-hot:#b00000}
body[data-jp-theme-light=false] .lw-root,body.vscode-dark .lw-root,body.vscode-high-contrast .lw-root{--lw-hot:#ff8a80}
.lw-bad{color:var(--lw-hot);font-weight:600}
.lw-select[aria-invalid=true]{border-color:var(--lw-hot);box-shadow:0 0 0 1px var(--lw-hot)}
.lw-snap{margin-left:auto}
canvas.lw-canvas{image-rendering:pixelated;cursor:crosshair;display:block}
.lw-cbar{display:inline-flex;align-items:flex-start;gap:6px;font-size:10px;color:var(--lw-muted);margin:2px 0}
.lw-cbar-ramp{height:9px;border:1px solid var(--lw-border);box-sizing:border-box}
.lw-cbar-ticks{display:flex;justify-content:space-between;font-variant-numeric:tabular-nums;line-height:1.2}
.lw-cbar-label{padding-top:0;white-space:nowrap}
.lw-foot{display:flex;gap:10px;align-items:flex-start;flex-wrap:wrap}
.lw-zoom{display:inline-flex;gap:2px;align-items:center}
.lw-zoom .lw-btn{padding:0 5px;line-height:1.2;min-width:20px}
.lw-more{color:var(--lw-muted);padding:1px 3px;cursor:pointer;text-decoration:underline dotted}
.lw-chart text{fill:var(--lw-fg)}
.lw-chart text.lw-tick{fill:var(--lw-muted)}
.lw-chart .lw-gridline{stroke:var(--lw-line)}
.lw-chart .lw-axis{stroke:var(--lw-muted)}
.lw-list{max-height:360px;overflow:auto;border:1px solid var(--lw-line);padding:2px 6px}
.lw-panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:10px 14px;align-items:start}
.lw-panel{min-width:0;overflow:auto;border-top:1px solid var(--lw-line);padding-top:6px}
.lw-panel.lw-wide{grid-column:1/-1}
.lw-panel .lw-root{padding:0;overflow:visible}
.lw-panel .lw-snap,.lw-panel .lw-view-title{display:none}
.lw-panel .lw-shared-src{display:none}
.lw-split{display:grid;gap:12px;align-items:start}
.lw-split>*{min-width:0}
`;

export function injectStyle(): void {
  if (document.getElementById(STYLE_ID)) return;
  const s = document.createElement("style");
  s.id = STYLE_ID;
  s.textContent = CSS;
  document.head.appendChild(s);
}

/** Colours for text and lines drawn on a canvas: the computed theme of the view around `el`. */
export interface Ink {
  fg: string; // text
  muted: string; // secondary text, axis labels
  bg: string; // the view's background (behind labels drawn over the plot)
  line: string; // grid lines, empty cells' borders
  hot: string; // red text (highlighted labels, warnings) readable on bg
}

/** The light theme's colours: where nothing is laid out (a canvas not yet in the page, happy-dom). */
export const LIGHT_INK: Ink = { fg: "#222", muted: "#616161", bg: "#fff", line: "#e0e0e0", hot: "#b00000" };

const TRANSPARENT = /^(transparent|rgba\(0, 0, 0, 0\))$/;

/** The colours the view around `el` is drawn in (its computed style: the notebook's theme through the
 * --lw-* variables); LIGHT_INK where el is not in a document. */
export function themeInk(el: Element | null): Ink {
  if (!el || !el.isConnected || typeof getComputedStyle !== "function") return LIGHT_INK;
  const cs = getComputedStyle(el);
  const ok = (c: string | undefined) => Boolean(c) && !c!.includes("var(");
  const v = (name: string, dflt: string) => { const c = cs.getPropertyValue(name).trim(); return ok(c) ? c : dflt; };
  let bg = "";
  for (let e: Element | null = el; e && !bg; e = e.parentElement) {
    const b = getComputedStyle(e).backgroundColor;
    if (ok(b) && !TRANSPARENT.test(b)) bg = b;
  }
  return {
    fg: ok(cs.color) ? cs.color : LIGHT_INK.fg, muted: v("--lw-muted", LIGHT_INK.muted),
    bg: bg || v("--lw-bg", LIGHT_INK.bg), line: v("--lw-line", LIGHT_INK.line), hot: v("--lw-hot", LIGHT_INK.hot),
  };
}

const pending = new WeakSet<Element>();

/** Call cb once el is in the page (checked every 50 ms, for three seconds): a canvas drawn before it
 * was placed learns its theme's colours then. */
export function whenShown(el: Element, cb: () => void): void {
  if (pending.has(el)) return;
  pending.add(el);
  let tries = 0;
  const tick = () => {
    if (el.isConnected) { pending.delete(el); cb(); }
    else if (++tries < 60) setTimeout(tick, 50);
    else pending.delete(el);
  };
  setTimeout(tick, 0);
}

/** Event sent to every canvas of a view when the notebook's theme changes: canvases listen for it on
 * themselves and redraw with the new themeInk. */
export const THEME_EVENT = "lw-theme";

/** Call cb whenever the page's theme may have changed (JupyterLab's data-jp-theme-* attributes or VS
 * Code's body classes; again a moment later, once the theme's stylesheet has loaded). Returns a stop
 * function. */
export function watchTheme(cb: () => void): () => void {
  const MO = (globalThis as { MutationObserver?: typeof MutationObserver }).MutationObserver;
  if (!MO || typeof document === "undefined" || !document.body) return () => {};
  const b = document.body;
  const key = () => `${b.dataset.jpThemeName}|${b.dataset.jpThemeLight}|` +
    ["vscode-light", "vscode-dark", "vscode-high-contrast"].filter((c) => b.classList.contains(c)).join();
  let last = key();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const mo = new MO(() => {
    const now = key();
    if (now === last) return; // another class (a drag's cursor, focus...): not a theme change
    last = now;
    cb();
    clearTimeout(timer);
    timer = setTimeout(cb, 400);
  });
  mo.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name", "class"] });
  return () => { clearTimeout(timer); mo.disconnect(); };
}

/** Call cb with el's content width now and whenever it changes (ResizeObserver where the browser has
 * one); where nothing is laid out (width 0, as in happy-dom) cb gets `fallback`. Returns a stop function. */
export function watchWidth(el: Element, cb: (width: number) => void, fallback = 940): () => void {
  let last = -1;
  const emit = (w: number) => {
    if (!(w > 0) && last > 0) return; // detached for a moment: keep the last real width
    const width = w > 0 ? w : fallback;
    if (Math.abs(width - last) < 1) return;
    last = width;
    cb(width);
  };
  let pad = 0;
  if (el.clientWidth > 0 && typeof getComputedStyle === "function") {
    const cs = getComputedStyle(el);
    pad = (parseFloat(cs.paddingLeft) || 0) + (parseFloat(cs.paddingRight) || 0);
  }
  emit(el.clientWidth - pad);
  const RO = (globalThis as { ResizeObserver?: typeof ResizeObserver }).ResizeObserver;
  if (!RO) return () => {};
  const ro = new RO((entries) => { for (const e of entries) emit(e.contentRect.width); });
  ro.observe(el);
  return () => ro.disconnect();
}

/** Download a canvas as a PNG file. */
export function savePNG(canvas: HTMLCanvasElement, filename: string): void {
  const a = document.createElement("a");
  a.download = filename;
  a.href = canvas.toDataURL("image/png");
  a.click();
}

/** The whole view as an image: its DOM (canvases as their pixels) drawn through an SVG
 * foreignObject with our stylesheet, so a PNG needs no library and no network. */
export async function snapshot(root: HTMLElement, scale = window.devicePixelRatio || 1): Promise<HTMLCanvasElement> {
  const w = Math.ceil(Math.max(root.scrollWidth, root.getBoundingClientRect().width));
  const ht = Math.ceil(Math.max(root.scrollHeight, root.getBoundingClientRect().height));
  const clone = root.cloneNode(true) as HTMLElement;
  const live = Array.from(root.querySelectorAll("canvas"));
  Array.from(clone.querySelectorAll("canvas")).forEach((c, i) => {
    const img = document.createElement("img");
    img.src = live[i].toDataURL("image/png");
    img.style.cssText = c.style.cssText;
    img.style.width = `${live[i].clientWidth}px`;
    img.style.height = `${live[i].clientHeight}px`;
    img.style.display = "block";
    c.replaceWith(img);
  });
  const liveInputs = Array.from(root.querySelectorAll("input, select"));
  Array.from(clone.querySelectorAll("input, select")).forEach((c, i) => {  // typed values are properties
    const src = liveInputs[i] as HTMLInputElement;
    if (src.type === "checkbox") { if (src.checked) c.setAttribute("checked", ""); }
    else if (c instanceof HTMLSelectElement) Array.from(c.options).forEach((o, k) => { if (k === (src as unknown as HTMLSelectElement).selectedIndex) o.setAttribute("selected", ""); });
    else c.setAttribute("value", src.value);
  });
  clone.querySelectorAll(".lw-snap").forEach((b) => b.remove()); // the button is no part of the picture
  // the image has no page around it: carry the theme's resolved colours (custom properties) along
  const cs = getComputedStyle(root);
  const resolved = [...Object.keys(THEME_VARS), "--lw-hot"].map((name) => [name, cs.getPropertyValue(name).trim()]);
  for (const r of [clone, ...Array.from(clone.querySelectorAll<HTMLElement>(".lw-root"))]) {
    for (const [name, v] of resolved) if (v) r.style.setProperty(name, v);
  }
  const ink = themeInk(root);
  clone.style.setProperty("color", ink.fg);
  clone.style.setProperty("background", ink.bg);
  clone.style.overflow = "visible";
  clone.style.maxWidth = "none";
  clone.style.width = `${w}px`;
  const body = new XMLSerializer().serializeToString(clone);
  const css = new XMLSerializer().serializeToString(Object.assign(document.createElement("style"), { textContent: CSS }));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${ht}"><foreignObject x="0" y="0" width="${w}" height="${ht}">` +
    `<div xmlns="http://www.w3.org/1999/xhtml">${css}${body}</div></foreignObject></svg>`;
  const img = new Image();
  img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg);
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(w * scale);
  canvas.height = Math.round(ht * scale);
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = ink.bg;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.scale(scale, scale);
  ctx.drawImage(img, 0, 0);
  return canvas;
}

const invalidNotes = new WeakMap<HTMLElement, HTMLElement>();

/** Mark a text box's value as wrong with `message` (the view's error style: a red frame around the
 * box and the message in an error box right after it), or clear the mark (null). Returns the message
 * element (data-testid "<box's testid>-error"). */
export function markInvalid(input: HTMLElement, message: string | null): HTMLElement {
  let note = invalidNotes.get(input);
  if (!note) {
    note = h("span", { class: "lw-error", "data-testid": `${input.dataset.testid ?? "input"}-error`, role: "alert", style: "margin-left:4px" });
    invalidNotes.set(input, note);
    input.after(note);
  }
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  note.textContent = message ?? "";
  note.style.display = message ? "" : "none";
  return note;
}

/** A line under a sideways-scrolling box that says there is more to see ("scroll sideways for 3 more
 * heads →"), shown only while the box's content is wider than the box; kept up to date as the
 * box is resized or scrolled. */
export function scrollCue(box: HTMLElement, what: string): HTMLElement {
  const cue = h("div", { class: "lw-cue", "data-testid": "scroll-cue", style: "display:none" });
  const update = () => {
    const hidden = box.scrollWidth - box.clientWidth - box.scrollLeft;
    const more = box.scrollWidth > box.clientWidth + 1;
    const display = more ? "" : "none";
    const text = !more ? "" : hidden > 1 ? `scroll sideways for more ${what} \u2192` : `\u2190 scroll back for the first ${what}`;
    // only real changes: the cue's own mutations must not wake the observer below again
    if (cue.style.display !== display) cue.style.display = display;
    if (cue.textContent !== text) cue.textContent = text;
  };
  box.addEventListener("scroll", update);
  const RO = (globalThis as { ResizeObserver?: typeof ResizeObserver }).ResizeObserver;
  if (RO) {
    const ro = new RO(update);
    ro.observe(box);
    if (box.firstElementChild) ro.observe(box.firstElementChild);
  }
  // content that grows inside a box of fixed width (a canvas drawn wider after the data arrived)
  // resizes neither: watch the box's subtree, at most once a frame
  const MO = (globalThis as { MutationObserver?: typeof MutationObserver }).MutationObserver;
  if (MO) {
    let queued = false;
    const later = (globalThis as { requestAnimationFrame?: (cb: () => void) => number }).requestAnimationFrame ?? ((cb: () => void) => setTimeout(cb, 16));
    new MO(() => {
      if (queued) return;
      queued = true;
      later(() => { queued = false; update(); });
    }).observe(box, { subtree: true, childList: true, attributes: true, attributeFilter: ["style", "width", "height", "class"] });
  }
  update(); // and again when the observer first sees the box laid out (it fires as it starts observing)
  return cue;
}
