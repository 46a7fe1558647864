import { afterEach, describe, expect, it, vi } from "vitest";
import { css, div, seq } from "../src/lib/colors";
import { TokenStrip } from "../src/lib/tokens";

const spans = (s: TokenStrip) => Array.from(s.el.children) as HTMLSpanElement[];
const bg = (s: HTMLElement) => s.style.background.replace(/\s/g, "");

describe("token strip", () => {
  afterEach(() => vi.useRealTimers());

  it("shows token text literally, never as markup", () => {
    const labels = ['<img src=x onerror="window.__xss=1">', "</script>", "&amp;", "<script>alert(1)</script>", " a&b "];
    const strip = new TokenStrip(labels);
    document.body.append(strip.el);
    expect(strip.el.querySelectorAll("img, script")).toHaveLength(0);
    expect(spans(strip).map((e) => e.textContent)).toEqual(labels);
    expect(strip.el.innerHTML).toContain("&lt;script&gt;");
    expect((window as unknown as { __xss?: number }).__xss).toBeUndefined();
    expect(strip.length).toBe(5);
    strip.el.remove();
  });
  it("colours tokens by weight: sequential up to the largest |weight|, diverging when signed", () => {
    const strip = new TokenStrip(["a", "b", "c"]);
    strip.setWeights([0, 1, 2]);
    expect(spans(strip).map(bg)).toEqual([css(seq(0, 2)), css(seq(1, 2)), css(seq(2, 2))]);
    expect(spans(strip).map((s) => s.title)).toEqual(["0.0000", "1.0000", "2.0000"]);
    expect(spans(strip).map((s) => s.dataset.weight)).toEqual(["0", "1", "2"]);
    strip.setWeights([-2, 0, 1], true);
    expect(spans(strip).map(bg)).toEqual([css(div(-2, 2)), css(div(0, 2)), css(div(1, 2))]);
    strip.setWeights([1, 1, 1], true, 4); // an explicit range
    expect(bg(spans(strip)[0])).toBe(css(div(1, 4)));
  });
  it("clears colours, titles and weights for tokens without a weight", () => {
    const strip = new TokenStrip(["a", "b", "c"]);
    strip.setWeights([1, 2, 3]);
    strip.setWeights([5]); // shorter: tokens 1 and 2 have none
    expect(bg(spans(strip)[1])).toBe("");
    expect(spans(strip)[1].title).toBe("");
    expect(spans(strip)[1].dataset.weight).toBeUndefined();
    strip.setWeights(null);
    expect(spans(strip).map((s) => s.dataset.weight)).toEqual([undefined, undefined, undefined]);
    expect(spans(strip)[0].getAttribute("style") ?? "").toBe("");
  });
  it("marks the selected token", () => {
    const strip = new TokenStrip(["a", "b", "c"]);
    strip.select(1);
    expect(spans(strip).map((s) => s.classList.contains("lw-sel"))).toEqual([false, true, false]);
    expect(strip.selectedIndex).toBe(1);
    strip.select(-1);
    expect(strip.el.querySelectorAll(".lw-sel")).toHaveLength(0);
  });
  it("reports clicks and hovers, with one leave after the pointer moves off (none between neighbours)", () => {
    vi.useFakeTimers();
    const hovers: (number | null)[] = [];
    const clicks: number[] = [];
    const strip = new TokenStrip(["a", "b", "c"], { onHover: (i) => hovers.push(i), onClick: (i) => clicks.push(i), testid: "t" });
    expect(strip.el.dataset.testid).toBe("t");
    const [a, b] = spans(strip);
    a.dispatchEvent(new MouseEvent("mouseenter"));
    expect(a.classList.contains("lw-hover")).toBe(true);
    a.dispatchEvent(new MouseEvent("mouseleave"));
    b.dispatchEvent(new MouseEvent("mouseenter")); // straight to the neighbour
    vi.runAllTimers();
    expect(hovers).toEqual([0, 1]);
    b.dispatchEvent(new MouseEvent("mouseleave"));
    vi.runAllTimers();
    expect(hovers).toEqual([0, 1, null]);
    expect(a.classList.contains("lw-hover")).toBe(false);
    b.click();
    expect(clicks).toEqual([1]);
  });
});
