// Fake widget models for rendering views in happy-dom. Trait names and shapes follow the Python
// widgets (llm_widgets/widgets/*.py): counts n_layers/n_heads/n_neurons, selections selected_* (an
// index, or null for nothing selected), arrays packed as encode_array packs them.
import { vi } from "vitest";
import { Packed } from "../../src/lib/buffers";
import { Model, ViewModule } from "../../src/lib/frame";
import { createModel } from "../../src/lib/model";
import { size } from "../../src/lib/ndarray";
import { Call, stubCanvas } from "../helpers";

/** IEEE half-precision bits of v (round to nearest even; enough for test values). */
export function floatToHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const e = ((x >>> 23) & 0xff) - 127 + 15;
  let m = x & 0x7fffff;
  if (Number.isNaN(v)) return 0x7e00;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) { // subnormal
    if (e < -10) return sign;
    m = (m | 0x800000) >> (1 - e);
    return sign | ((m + 0x1000) >> 13);
  }
  const half = sign | (e << 10) | (m >> 13);
  const rest = m & 0x1fff;
  return rest > 0x1000 || (rest === 0x1000 && half & 1) ? half + 1 : half;
}

/** An array packed for transport (little-endian), as llm_widgets.widgets.base.encode_array does. */
export function pack(values: ArrayLike<number>, shape: number[], dtype: "float32" | "float16" | "int32" | "uint16" = "float32"): Packed {
  const n = size(shape);
  if (values.length !== n) throw new Error(`pack: ${values.length} values for shape [${shape}]`);
  const item = dtype === "uint16" || dtype === "float16" ? 2 : 4;
  const view = new DataView(new ArrayBuffer(n * item));
  for (let i = 0; i < n; i++) {
    if (dtype === "float32") view.setFloat32(4 * i, values[i], true);
    else if (dtype === "int32") view.setInt32(4 * i, values[i], true);
    else if (dtype === "float16") view.setUint16(2 * i, floatToHalf(values[i]), true);
    else view.setUint16(2 * i, values[i], true);
  }
  return { shape, dtype, scale: 1, offset: 0, data: view };
}

/** 0, 1, 2, ... scaled into [0, 1): distinct, easy to predict values. */
export const ramp = (n: number, scale = 1 / n) => Array.from({ length: n }, (_, i) => i * scale);

/** The traits every view has (llm_widgets.widgets.base.View). */
export const BASE = { title: "", notice: "", error: "", progress: -1, progress_label: "" };

export interface Mounted {
  model: Model;
  el: HTMLElement;
  saves: () => number; // save_changes calls (one per commit)
  cleanup: () => void;
  $: <E extends Element = HTMLElement>(sel: string) => E;
  $$: <E extends Element = HTMLElement>(sel: string) => E[];
  parts: Record<string, unknown>; // what the view exposed as el.__lw
  texts: () => unknown[]; // every string drawn on a canvas so far (fillText)
  calls: Call[]; // every 2-D context call so far (all canvases)
}

/** Render `view` into a fresh element attached to the document, with 2-D contexts stubbed. */
export function mount(view: ViewModule, state: Record<string, unknown>, model: Model = createModel({ ...BASE, ...state })): Mounted {
  const calls = stubCanvas();
  const save = vi.spyOn(model, "save_changes");
  const el = document.createElement("div");
  document.body.append(el);
  const cleanup = view.render({ model, el }) as () => void;
  return {
    model, el, cleanup,
    saves: () => save.mock.calls.length,
    $: (sel) => {
      const e = el.querySelector(sel);
      if (!e) throw new Error(`no element ${sel}`);
      return e as never;
    },
    $$: (sel) => Array.from(el.querySelectorAll(sel)) as never,
    texts: () => calls.filter((c) => c.name === "fillText").map((c) => c.args[0]),
    calls,
    get parts() { return (el as unknown as { __lw: Record<string, unknown> }).__lw; },
  };
}

/** Click the centre of heatmap cell (r, c) of the heatmap canvas with test id `testid`. */
export function clickCell(m: Mounted, testid: string, r: number, c: number): void {
  const canvas = m.$<HTMLCanvasElement>(`canvas[data-testid="${testid}"]`);
  const d = canvas.dataset;
  const cell = Number(d.cell), cellW = Number(d.cellW ?? d.cell), left = Number(d.left), top = Number(d.top);
  canvas.dispatchEvent(new MouseEvent("click", { clientX: left + (c + 0.5) * cellW, clientY: top + (r + 0.5) * cell, bubbles: true }));
}

/** Texts of the tokens of the strip with test id `testid`. */
export const stripTexts = (m: Mounted, testid = "tokens") => m.$$(`[data-testid="${testid}"] .lw-tok`).map((e) => e.textContent);
/** Index of the selected token of a strip, -1 for none. */
export const stripSelected = (m: Mounted, testid = "tokens") =>
  m.$$(`[data-testid="${testid}"] .lw-tok`).findIndex((e) => e.classList.contains("lw-sel"));
/** Weights a strip shows (data-weight), null where it shows none. */
export const stripWeights = (m: Mounted, testid = "tokens") =>
  m.$$(`[data-testid="${testid}"] .lw-tok`).map((e) => (e.dataset.weight === undefined ? null : Number(e.dataset.weight)));
/** Change a <select> or <input> as a user would. */
export function choose(e: HTMLSelectElement | HTMLInputElement, value: string, event = "change"): void {
  e.value = value;
  e.dispatchEvent(new Event(event, { bubbles: true }));
}

export const XSS = '<img src=x onerror="window.__xss=1">';

/** The colour bars of a view, by test id: {label, kind, min, max} of each one shown. */
export function colorbars(m: Mounted): Record<string, { label?: string; kind?: string; min?: number; max?: number }> {
  const out: Record<string, { label?: string; kind?: string; min?: number; max?: number }> = {};
  for (const e of m.$$(".lw-cbar")) {
    if (e.style.display === "none") continue;
    const d = e.dataset;
    out[d.testid ?? "?"] = { label: d.label, kind: d.kind, min: Number(d.min), max: Number(d.max) };
  }
  return out;
}

/** Every heatmap canvas of a view has a colour bar shown beside it (in the heatmap's element). */
export function everyHeatmapHasColorbar(m: Mounted): boolean {
  const canvases = m.$$<HTMLCanvasElement>("canvas.lw-canvas[data-rows]");
  return canvases.length > 0 && canvases.every((c) => {
    const bar = c.parentElement?.querySelector<HTMLElement>(`[data-testid="${c.dataset.testid}-colorbar"]`);
    return Boolean(bar && bar.style.display !== "none" && bar.dataset.label);
  });
}
