import { afterEach, describe, expect, it, vi } from "vitest";
import { frame, STALLED_MS } from "../src/lib/frame";
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
});
