// Mounts views in a static HTML export (llm_widgets.widgets.base.render_html): no kernel, no network.
import { Model, ViewModule } from "./lib/frame";
import { exportedModel } from "./lib/model";

/** What render_html embeds in <script id="lw-payload">: every bundle used (base64 ES modules) and
 * every view's state ({__b64__} placeholders for binary buffers). */
export interface Payload {
  bundles: Record<string, string>;
  views: { bundle: string; state: Record<string, unknown> }[];
}

declare global {
  interface Window { __lw_models?: Model[] }
}

/** The payload embedded in `doc`, or null when the page has none. */
export function readPayload(doc: Document = document): Payload | null {
  const el = doc.getElementById("lw-payload");
  if (!el) return null;
  const p = JSON.parse(el.textContent || "null") as Payload | null;
  if (!p || typeof p !== "object" || !p.bundles || !Array.isArray(p.views)) throw new Error("llm-widgets: malformed export payload");
  return p;
}

/** Load a base64 bundle as an ES module (a blob: URL: nothing is fetched from the network). */
export async function importBundle(b64: string): Promise<ViewModule> {
  const url = URL.createObjectURL(new Blob([atob(b64)], { type: "text/javascript" }));
  try {
    return (await import(/* @vite-ignore */ url)).default as ViewModule;
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** Mount every view of the payload under `root`, in order; returns their models. */
export async function mount(payload: Payload, root: HTMLElement,
                            load: (b64: string, name: string) => Promise<ViewModule> = importBundle): Promise<Model[]> {
  const modules: Record<string, ViewModule> = {};
  for (const [name, b64] of Object.entries(payload.bundles)) modules[name] = await load(b64, name);
  const models: Model[] = [];
  for (const v of payload.views) {
    const mod = modules[v.bundle];
    if (!mod) throw new Error(`llm-widgets: the export has no bundle ${JSON.stringify(v.bundle)}`);
    const el = document.createElement("div");
    root.append(el);
    const model: Model = exportedModel(v.state);
    models.push(model);
    await mod.initialize?.({ model });
    await mod.render({ model, el });
  }
  return models;
}

async function main(payload: Payload) {
  document.getElementById("lw-fallback")?.remove(); // the no-script picture: scripts run here
  window.__lw_models = await mount(payload, document.getElementById("lw-root")!);
  document.body.dataset.lwReady = "1";
}

if (typeof document !== "undefined" && document.getElementById("lw-payload")) {
  Promise.resolve().then(() => main(readPayload()!)).catch((e) => {
    const pre = document.createElement("pre");
    pre.textContent = "llm-widgets export failed: " + String((e && (e as Error).stack) || e);
    document.body.append(pre);
  });
}
