import { afterEach, describe, expect, it, vi } from "vitest";
import { CSS, h, injectStyle, localPoint, savePNG, snapshot } from "../src/lib/dom";
import { placeAt, stubCanvas } from "./helpers";

afterEach(() => vi.restoreAllMocks());

describe("h", () => {
  it("sets text and string children as text, never markup", () => {
    const e = h("div", { text: "<script>alert(1)</script> & co" });
    expect(e.textContent).toBe("<script>alert(1)</script> & co");
    expect(e.querySelector("script")).toBeNull();
    expect(e.innerHTML).toBe("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co");
    const p = h("p", {}, "<b>x</b>", null, undefined, h("i", { text: "&amp;" }));
    expect(p.querySelector("b")).toBeNull();
    expect(p.childNodes).toHaveLength(2);
    expect(p.textContent).toBe("<b>x</b>&amp;");
  });
  it("maps class, style and boolean attributes, and skips false/undefined", () => {
    const e = h("input", { class: "a b", style: "color:red", disabled: true, checked: false, title: undefined, "data-x": 3 });
    expect(e.className).toBe("a b");
    expect(e.getAttribute("style")).toBe("color:red");
    expect(e.getAttribute("disabled")).toBe("");
    expect(e.hasAttribute("checked")).toBe(false);
    expect(e.hasAttribute("title")).toBe(false);
    expect(e.dataset.x).toBe("3");
    const q = h("span", { title: '"><img src=x onerror=alert(1)>' });
    expect(q.getAttribute("title")).toBe('"><img src=x onerror=alert(1)>');
    const reparsed = document.createElement("div");
    reparsed.innerHTML = q.outerHTML; // the quote is escaped: the attribute cannot be closed early
    expect(reparsed.querySelector("img")).toBeNull();
    expect(reparsed.firstElementChild!.getAttribute("title")).toBe('"><img src=x onerror=alert(1)>');
  });
});

describe("page helpers", () => {
  it("injects the stylesheet once", () => {
    injectStyle();
    injectStyle();
    const styles = document.querySelectorAll("#llm-widgets-style");
    expect(styles).toHaveLength(1);
    expect(styles[0].textContent).toBe(CSS);
  });
  it("gives mouse positions relative to an element", () => {
    const e = h("div");
    placeAt(e, 100, 40);
    expect(localPoint({ clientX: 130, clientY: 45 }, e)).toEqual([30, 5]);
  });
  it("savePNG downloads the canvas as a named PNG", () => {
    const canvas = h("canvas");
    vi.spyOn(canvas, "toDataURL").mockReturnValue("data:image/png;base64,AAAA");
    const click = vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(() => {});
    savePNG(canvas, "view.png");
    expect(click).toHaveBeenCalledTimes(1);
    const a = click.mock.contexts[0] as HTMLAnchorElement;
    expect(a.download).toBe("view.png");
    expect(a.href).toBe("data:image/png;base64,AAAA");
  });
  it("snapshot draws the view with canvases as images and typed values kept, markup still escaped", async () => {
    const calls = stubCanvas();
    vi.spyOn(HTMLImageElement.prototype, "decode").mockResolvedValue(undefined);
    vi.spyOn(HTMLCanvasElement.prototype, "toDataURL").mockReturnValue("data:image/png;base64,QUJD");
    const text = h("input", { type: "text" });
    const box = h("input", { type: "checkbox" });
    const sel = h("select", {}, h("option", { value: "a", text: "a" }), h("option", { value: "b", text: "b" }));
    const root = h("div", {}, h("span", { text: "<script>x</script>" }), h("canvas"), text, box, sel);
    document.body.append(root);
    text.value = "typed";
    box.checked = true;
    sel.selectedIndex = 1;
    const out = await snapshot(root, 2);
    const draw = calls.find((c) => c.name === "drawImage")!;
    const svg = decodeURIComponent((draw.args[0] as HTMLImageElement).src.replace(/^data:image\/svg\+xml;charset=utf-8,/, ""));
    expect(svg).toContain('value="typed"');
    expect(svg).toMatch(/<option[^>]*selected=""[^>]*>b<\/option>/);
    expect(svg).toMatch(/type="checkbox"[^>]*checked=""|checked=""[^>]*type="checkbox"/);
    expect(svg).not.toContain("<canvas");
    expect(svg).toContain("data:image/png;base64,QUJD");
    expect(svg).toContain("&lt;script&gt;x&lt;/script&gt;");
    expect(svg).not.toContain("<script>");
    expect(calls.some((c) => c.name === "scale" && c.args[0] === 2)).toBe(true);
    expect(out.tagName).toBe("CANVAS");
    root.remove();
  });
});
