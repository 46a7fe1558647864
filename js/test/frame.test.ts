import { afterEach, describe, expect, it, vi } from "vitest";
import { disable, enable, expose, frame, NEEDS_KERNEL, snapshotter, STALLED_MS } from "../src/lib/frame";
import { h } from "../src/lib/dom";
import { createModel } from "../src/lib/model";

describe("frame", () => {
  afterEach(() => vi.useRealTimers());

  it("shows title, notice and error as text, and progress only while computing", () => {
    const m = createModel({ title: "<b>t</b>", notice: "", error: "", progress: -1, progress_label: "" });
    const el = document.createElement("div");
    const f = frame(m, el, "test");
    expect(el.querySelector(".lw-title")!.textContent).toBe("<b>t</b>"); // text, never markup
    expect(el.querySelector("b")).toBeNull();
    const progress = el.querySelector("[data-testid=progress]") as HTMLElement;
    expect(progress.style.display).toBe("none");
    m.set("progress", 0.5);
    expect(progress.style.display).toBe("");
    f.cleanup();
  });

  it("says a view may be stale when progress stops moving, and hides it when work moves again", () => {
    vi.useFakeTimers();
    const m = createModel({ title: "", notice: "", error: "", progress: 0.2, progress_label: "step" });
    const el = document.createElement("div");
    const f = frame(m, el, "test");
    const stalled = el.querySelector("[data-testid=stalled]") as HTMLElement;
    vi.advanceTimersByTime(STALLED_MS - 2000);
    expect(stalled.style.display).toBe("none");
    vi.advanceTimersByTime(4000);
    expect(stalled.style.display).toBe("");
    m.set("progress", 0.3); // work moves again
    expect(stalled.style.display).toBe("none");
    m.set("progress", -1); // done: never stale
    vi.advanceTimersByTime(3 * STALLED_MS);
    expect(stalled.style.display).toBe("none");
    f.cleanup();
  });

  it("commit sets every value and syncs them in one message", () => {
    const m = createModel({ title: "", notice: "", error: "", progress: -1, progress_label: "", selected_layer: 0, selected_head: 0 });
    const save = vi.spyOn(m, "save_changes");
    const f = frame(m, document.createElement("div"), "test");
    f.commit({ selected_layer: 2, selected_head: 5 });
    expect([m.get("selected_layer"), m.get("selected_head")]).toEqual([2, 5]);
    expect(save).toHaveBeenCalledTimes(1);
    f.cleanup();
  });

  it("watch subscribes to traits; cleanup removes every listener and the stale timer", () => {
    vi.useFakeTimers();
    const m = createModel({ title: "a", notice: "", error: "", progress: -1, progress_label: "", x: 0 });
    const el = document.createElement("div");
    const f = frame(m, el, "test");
    let seen = 0;
    f.watch(["x"], () => seen++);
    m.set("x", 1);
    expect(seen).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    f.cleanup();
    expect(vi.getTimerCount()).toBe(0);
    m.set("x", 2);
    m.set("title", "b");
    expect(seen).toBe(1);
    expect(el.querySelector(".lw-title")!.textContent).toBe("a"); // no longer bound
  });

  it("builds its parts inside el, with the view's name and the export flag", () => {
    const el = document.createElement("div");
    el.append(document.createElement("p")); // replaced
    const f = frame(createModel({ title: "", _export: { heads: 1 } }), el, "attention");
    expect(el.children).toHaveLength(1);
    expect(el.firstElementChild).toBe(f.root);
    expect(f.root.dataset.lwView).toBe("attention");
    expect(f.root.contains(f.toolbar) && f.root.contains(f.body)).toBe(true);
    expect(f.exported).toBe(true);
    expect(frame(createModel({}), document.createElement("div"), "x").exported).toBe(false);
    expect(el.querySelector("[data-testid=error]")!.getAttribute("style")).toContain("display: none");
    f.cleanup();
  });

  it("expose hands a view's parts to browser tests as el.__lw", () => {
    const el = document.createElement("div");
    const parts = { heat: 1 };
    expose(el, parts);
    expect((el as unknown as { __lw: unknown }).__lw).toBe(parts);
  });

  it("Snapshot says it is saving (busy, disabled) until the image is written, then is ready again", async () => {
    let finish!: () => void;
    const save = vi.spyOn(snapshotter, "save").mockImplementation(() => new Promise<void>((r) => { finish = r; }));
    const el = document.createElement("div");
    document.body.append(el);
    const f = frame(createModel({ title: "" }), el, "attention");
    const snap = el.querySelector("[data-testid=snapshot]") as HTMLButtonElement;
    expect(snap.textContent).toBe("Snapshot");
    snap.click();
    expect(snap.disabled).toBe(true);
    expect(snap.textContent).toBe("saving\u2026");
    expect(snap.getAttribute("aria-busy")).toBe("true");
    snap.click(); // a second click while it works does nothing
    await vi.waitFor(() => expect(save).toHaveBeenCalledTimes(1));
    expect(save.mock.calls[0][1]).toBe("attention.png");
    expect(save.mock.calls[0][0]).toBe(f.root);
    finish();
    await vi.waitFor(() => expect(snap.disabled).toBe(false));
    expect(snap.textContent).toBe("Snapshot");
    expect(snap.hasAttribute("aria-busy")).toBe(false);
    save.mockRejectedValueOnce(new Error("no canvas")); // a failure still frees the button
    snap.click();
    await vi.waitFor(() => expect(snap.disabled).toBe(false));
    expect(el.querySelector("[data-testid=error]")!.textContent).toBe("Snapshot failed: no canvas");
    f.cleanup();
    el.remove();
  });

  it("disable shows why a control cannot work (tooltip and a muted note); enable undoes it", () => {
    const sel = h("select", { title: "ablate the neuron" });
    const bar = h("div", {}, sel, h("span", { text: "next" }));
    disable(sel, `ablation ${NEEDS_KERNEL}`);
    expect(sel.disabled).toBe(true);
    expect(sel.title).toBe("ablation needs the kernel: this is a static export");
    expect(sel.getAttribute("aria-disabled")).toBe("true");
    const note = bar.querySelector("[data-testid=why-disabled]")!;
    expect(note.textContent).toBe(sel.title);
    expect(note.className).toBe("lw-why");
    disable(sel, "another reason"); // one note, updated
    expect(bar.querySelectorAll(".lw-why")).toHaveLength(1);
    expect(bar.querySelector(".lw-why")!.textContent).toBe("another reason");
    enable(sel);
    expect([sel.disabled, sel.title, bar.querySelectorAll(".lw-why").length]).toEqual([false, "ablate the neuron", 0]);
    const quiet = h("input");
    h("div", {}, quiet);
    disable(quiet, "why", false); // tooltip only
    expect(quiet.title).toBe("why");
    expect(quiet.nextElementSibling).toBeNull();
  });

  it("the view's title is marked, so an Explorer can hide its panels' own titles", () => {
    const el = document.createElement("div");
    frame(createModel({ title: "Attention" }), el, "attention").cleanup();
    expect(el.querySelector(".lw-view-title")!.textContent).toBe("Attention");
  });
});

