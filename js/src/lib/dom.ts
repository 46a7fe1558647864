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
export const CSS = `
.lw-root{font:12px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;background:#fff;padding:6px;box-sizing:border-box;max-width:100%;overflow:auto}
.lw-head{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-bottom:6px}
.lw-title{font-weight:600;font-size:13px}
.lw-notice{background:#fff6d5;border:1px solid #e8d27a;padding:2px 6px;border-radius:3px}
.lw-error{background:#fde2e1;border:1px solid #e38b86;padding:2px 6px;border-radius:3px;color:#7a1410}
.lw-progress{display:inline-flex;align-items:center;gap:6px}
.lw-progress progress{width:160px}
.lw-btn,.lw-select{font:inherit;padding:1px 6px}
.lw-row{display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap}
.lw-strip{display:flex;flex-wrap:wrap;gap:2px;margin:6px 0;max-width:900px}
.lw-tok{white-space:pre;padding:1px 3px;border-radius:3px;border:1px solid transparent;cursor:pointer;font-family:ui-monospace,Menlo,monospace}
.lw-tok.lw-sel{border-color:#d62728;box-shadow:0 0 0 1px #d62728}
.lw-tok.lw-hover{border-color:#555}
.lw-table{border-collapse:collapse;font-variant-numeric:tabular-nums}
.lw-table th{cursor:pointer;user-select:none;background:#f3f3f3;position:sticky;top:0}
.lw-table th,.lw-table td{padding:1px 6px;border-bottom:1px solid #eee;text-align:right}
.lw-table tr.lw-sel td{background:#fde9e8}
.lw-table tbody tr{cursor:pointer}
.lw-scroll{max-height:260px;overflow:auto;border:1px solid #eee}
.lw-muted{color:#777}
.lw-snap{margin-left:auto}
canvas.lw-canvas{image-rendering:pixelated;cursor:crosshair;display:block}
.lw-cbar{display:inline-flex;align-items:flex-start;gap:6px;font-size:10px;color:#555;margin:2px 0}
.lw-cbar-ramp{height:9px;border:1px solid #bbb;box-sizing:border-box}
.lw-cbar-ticks{display:flex;justify-content:space-between;font-variant-numeric:tabular-nums;line-height:1.2}
.lw-cbar-label{padding-top:0;white-space:nowrap}
.lw-foot{display:flex;gap:10px;align-items:flex-start;flex-wrap:wrap}
.lw-zoom{display:inline-flex;gap:2px;align-items:center}
.lw-zoom .lw-btn{padding:0 5px;line-height:1.2;min-width:20px}
.lw-more{color:#777;padding:1px 3px;cursor:pointer;text-decoration:underline dotted}
`;

export function injectStyle(): void {
  if (document.getElementById(STYLE_ID)) return;
  const s = document.createElement("style");
  s.id = STYLE_ID;
  s.textContent = CSS;
  document.head.appendChild(s);
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
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.scale(scale, scale);
  ctx.drawImage(img, 0, 0);
  return canvas;
}
