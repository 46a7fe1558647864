// Mounts views in a static HTML export (llm_widgets.widgets.base.render_html): no kernel, no network.
import { createModel, revive } from "./lib/model";

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
    pre.textContent = "llm-widgets export failed: " + String((e && (e as Error).stack) || e);
    document.body.append(pre);
  });
}
