import { afterEach, describe, expect, it, vi } from "vitest";
import { css, div, divergingScale, seq, sequentialScale } from "../src/lib/colors";
import { MAX_SPANS, TokenStrip } from "../src/lib/tokens";

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

  it("paints with a given scale (the heatmap's), not each row's own maximum", () => {
    const strip = new TokenStrip(["a", "b", "c"]);
    const scale = sequentialScale(4, "attention weight");
    strip.paint([0, 1, 2], scale);
    expect(spans(strip).map(bg)).toEqual([css(seq(0, 4)), css(seq(1, 4)), css(seq(2, 4))]);
    expect(strip.scale).toBe(scale);
    strip.paint([-1, 0, 1], divergingScale(2));
    expect(spans(strip).map(bg)).toEqual([css(div(-1, 2)), css(div(0, 2)), css(div(1, 2))]);
    strip.paint(null, null);
    expect(strip.scale).toBeNull();
    expect(spans(strip).map((s) => s.dataset.weight)).toEqual([undefined, undefined, undefined]);
  });
  it("shows a window of a long input: at most MAX_SPANS spans, indices of the whole list", () => {
    const labels = Array.from({ length: 5000 }, (_, i) => `t${i}`);
    const clicks: number[] = [];
    const strip = new TokenStrip(labels, { onClick: (i) => clicks.push(i) });
    const toks = () => Array.from(strip.el.querySelectorAll<HTMLElement>(".lw-tok"));
    expect(toks()).toHaveLength(MAX_SPANS);
    expect(strip.length).toBe(5000);
    expect(strip.el.querySelector("[data-more=after]")!.textContent).toBe(`\u2026${5000 - MAX_SPANS} more`);
    strip.setRange(1000, 1100);
    expect(toks().map((e) => e.dataset.index)).toEqual(Array.from({ length: 100 }, (_, i) => String(1000 + i)));
    expect(strip.el.dataset).toMatchObject({ start: "1000", end: "1100", total: "5000" });
    strip.select(1005);
    strip.paint(Float32Array.from({ length: 5000 }, (_, i) => i), sequentialScale(5000));
    expect(toks()[5].classList.contains("lw-sel")).toBe(true);
    expect(toks()[5].dataset.weight).toBe("1005");
    toks()[7].click();
    expect(clicks).toEqual([1007]);
    strip.setRange(0, 10000); // clamped to MAX_SPANS
    expect(strip.range).toEqual([0, MAX_SPANS]);
    strip.showAround(4990);
    expect(strip.range).toEqual([5000 - MAX_SPANS, 5000]);
    strip.showAround(2000, 1900, 2100);
    expect(strip.range).toEqual([1900, 2100]);
    expect(strip.el.querySelector(".lw-sel")).toBeNull(); // 1005 is not shown
    strip.showAround(1005);
    expect(strip.el.querySelector<HTMLElement>(".lw-sel")!.dataset.index).toBe("1005"); // shown again, still selected
    strip.setRange(0, MAX_SPANS);
    strip.el.querySelector<HTMLElement>("[data-more=after]")!.click(); // page on
    expect(strip.range).toEqual([MAX_SPANS, 2 * MAX_SPANS]);
    strip.el.querySelector<HTMLElement>("[data-more=before]")!.click(); // and back
    expect(strip.range).toEqual([0, MAX_SPANS]);
    expect(strip.el.querySelector("[data-more=before]")).toBeNull();
  });
});
