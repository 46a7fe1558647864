// An in-page widget model for static exports (no kernel): get/set/on/off/save_changes with Backbone-
// style change events, so selections and links keep working inside an exported page.
import { fromBase64 } from "./buffers";
import type { Model } from "./frame";

type Cb = (...a: unknown[]) => void;

/** Turn {__b64__} placeholders (how exports carry binary buffers) back into DataViews. */
export function revive(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(revive);
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return v; // already revived
  if (v && typeof v === "object") {
    if ("__b64__" in (v as object)) return new DataView(fromBase64((v as { __b64__: string }).__b64__).buffer);
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as object)) o[k] = revive(x);
    return o;
  }
  return v;
}

export function createModel(state: Record<string, unknown>): Model & { send(): void; widget_manager: object } {
  const subs = new Map<string, Set<Cb>>();
  const emit = (ev: string, ...a: unknown[]) => subs.get(ev)?.forEach((cb) => cb(...a));
  return {
    get: (k: string) => state[k] as any, // eslint-disable-line @typescript-eslint/no-explicit-any
    set(k: string, v: unknown) {
      const old = state[k];
      state[k] = v;
      if (old !== v) { emit(`change:${k}`, v); emit("change"); }
    },
    save_changes() {},
    send() {},
    on(ev: string, cb: Cb) {
      if (!subs.has(ev)) subs.set(ev, new Set());
      subs.get(ev)!.add(cb);
    },
    off(ev?: string | null, cb?: Cb | null) {
      if (!ev) subs.clear();
      else if (!cb) subs.delete(ev);
      else subs.get(ev)?.delete(cb);
    },
    widget_manager: {},
  };
}

/** The in-page model of a view saved in an export: its state with binary buffers revived. */
export function exportedModel(state: Record<string, unknown>) {
  return createModel(revive(state) as Record<string, unknown>);
}
