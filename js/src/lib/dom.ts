// Safe DOM building: text always goes through textContent, never innerHTML.
type Attrs = Record<string, string | number | boolean | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Attrs = {}, ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "class") e.className = String(v);
    else if (k === "text") e.textContent = String(v);
    else if (k === "style") e.setAttribute("style", String(v));
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c != null) e.append(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
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
canvas.lw-canvas{image-rendering:pixelated;cursor:crosshair;display:block}
`;

export function injectStyle(): void {
  if (document.getElementById(STYLE_ID)) return;
  const s = document.createElement("style");
  s.id = STYLE_ID;
  s.textContent = CSS;
  document.head.appendChild(s);
}

/** Download a canvas as a PNG file. */
export function savePNG(canvas: HTMLCanvasElement, filename: string): void {
  const a = document.createElement("a");
  a.download = filename;
  a.href = canvas.toDataURL("image/png");
  a.click();
}
