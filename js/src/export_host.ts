// Mounts views in a static HTML export (llm_widgets.widgets.base.render_html): no kernel, no network.
// A minimal in-page model stands in for the widget model: get/set/on/off/save_changes, with
// change events, so selections and links keep working inside the page.
type Cb = (...a: unknown[]) => void;

function revive(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    if ("__b64__" in (v as object)) {
      const bin = atob((v as { __b64__: string }).__b64__);
      const out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return new DataView(out.buffer);
    }
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as object)) o[k] = revive(x);
    return o;
  }
  return v;
}

export function createModel(state: Record<string, unknown>) {
  const subs = new Map<string, Set<Cb>>();
  const emit = (ev: string, ...a: unknown[]) => subs.get(ev)?.forEach((cb) => cb(...a));
  return {
    get: (k: string) => state[k],
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

async function main() {
  const payload = JSON.parse(document.getElementById("lw-payload")!.textContent!);
  const root = document.getElementById("lw-root")!;
  const modules: Record<string, any> = {};
  for (const [name, b64] of Object.entries(payload.bundles as Record<string, string>)) {
    const url = URL.createObjectURL(new Blob([atob(b64)], { type: "text/javascript" }));
    modules[name] = (await import(url)).default;
  }
  const models = [];
  for (const v of payload.views) {
    const el = document.createElement("div");
    root.append(el);
    const model = createModel(revive(v.state) as Record<string, unknown>);
    models.push(model);
    const mod = modules[v.bundle];
    await mod.initialize?.({ model });
    await mod.render({ model, el });
  }
  (window as any).__lw_models = models;
  document.body.dataset.lwReady = "1";
}

if (typeof document !== "undefined" && document.getElementById("lw-payload")) {
  main().catch((e) => {
    const pre = document.createElement("pre");
    pre.textContent = "llm-widgets export failed: " + String(e && (e as Error).stack || e);
    document.body.append(pre);
  });
}
