import { afterEach, describe, expect, it, vi } from "vitest";
import { mount, Payload, readPayload } from "../src/export_host";
import { decode, Packed } from "../src/lib/buffers";
import { Model, ViewModule } from "../src/lib/frame";
import { exportedModel } from "../src/lib/model";

const packed = (bytes: string, shape: number[]): Packed & { data: { __b64__: string } } =>
  ({ shape, dtype: "uint8", scale: 1, offset: 0, data: { __b64__: btoa(bytes) } });

function page(payload: unknown): void {
  document.body.innerHTML = "";
  const script = document.createElement("script");
  script.id = "lw-payload";
  script.type = "application/json";
  script.textContent = JSON.stringify(payload);
  const root = document.createElement("div");
  root.id = "lw-root";
  document.body.append(script, root);
}

afterEach(() => {
  document.body.innerHTML = "";
  delete document.body.dataset.lwReady;
  vi.resetModules();
});

describe("export host", () => {
  it("reads the embedded payload; none without one; refuses a malformed one", () => {
    expect(readPayload()).toBeNull();
    page({ bundles: { v: "AAAA" }, views: [{ bundle: "v", state: { title: "</script><b>x</b>" } }] });
    const p = readPayload()!;
    expect(p.bundles.v).toBe("AAAA");
    expect(p.views[0].state.title).toBe("</script><b>x</b>");
    page({ views: "nope" });
    expect(() => readPayload()).toThrow(/malformed/);
  });

  it("decodes the state: base64 buffers become DataViews that decode to the numbers", () => {
    const m: Model = exportedModel({ scores: packed("\x01\x02\x03\x04", [2, 2]), tokens: ["<a>", "b"], selected_token: 1 });
    expect(m.get("scores").data).toBeInstanceOf(DataView);
    expect(Array.from(decode(m.get("scores"))!.values)).toEqual([1, 2, 3, 4]);
    expect(m.get("tokens")).toEqual(["<a>", "b"]);
    expect(m.get("selected_token")).toBe(1);
  });

  it("mounts every view in order with its own model, initialize before render", async () => {
    const log: string[] = [];
    const fake = (name: string): ViewModule => ({
      initialize: ({ model }) => { log.push(`init ${name} ${model.get("title")}`); },
      render: ({ model, el }) => {
        log.push(`render ${name} ${model.get("title")}`);
        el.textContent = String(decode(model.get("m"))!.values[0]);
      },
    });
    const payload: Payload = {
      bundles: { attention: "QQ==", probe: "Qg==" },
      views: [{ bundle: "probe", state: { title: "p", m: packed("\x07", [1]) } },
              { bundle: "attention", state: { title: "a", m: packed("\x09", [1]) } }],
    };
    const loaded: string[] = [];
    const root = document.createElement("div");
    const models: Model[] = await mount(payload, root, async (b64, name) => { loaded.push(`${name}:${atob(b64)}`); return fake(name); });
    expect(loaded).toEqual(["attention:A", "probe:B"]);
    expect(log).toEqual(["init probe p", "render probe p", "init attention a", "render attention a"]);
    expect(Array.from(root.children).map((e) => e.textContent)).toEqual(["7", "9"]);
    expect(models.map((m) => m.get("title"))).toEqual(["p", "a"]);
    models[1].set("selected_token", 3); // live in-page models
    expect(models[1].get("selected_token")).toBe(3);
  });

  it("refuses a view whose bundle is not in the export", async () => {
    const payload: Payload = { bundles: {}, views: [{ bundle: "missing", state: {} }] };
    await expect(mount(payload, document.createElement("div"), async () => ({ render() {} }))).rejects.toThrow(/no bundle "missing"/);
  });

  it("runs by itself on a page with a payload: marks the page ready, or shows the error as text", async () => {
    page({ bundles: {}, views: [] });
    await import("../src/export_host");
    await vi.waitFor(() => expect(document.body.dataset.lwReady).toBe("1"));
    expect((window as Window).__lw_models).toEqual([]);
    vi.resetModules();
    delete document.body.dataset.lwReady;
    page({ bundles: {}, views: [{ bundle: "<img src=x>", state: {} }] });
    await import("../src/export_host");
    await vi.waitFor(() => expect(document.querySelector("pre")).not.toBeNull());
    expect(document.querySelector("pre")!.textContent).toContain('llm-widgets export failed: Error: llm-widgets: the export has no bundle "<img src=x>"');
    expect(document.querySelector("img")).toBeNull();
    expect(document.body.dataset.lwReady).toBeUndefined();
  });
});
