import { afterEach, describe, expect, it, vi } from "vitest";
import { contrast, RGB } from "../src/lib/colors";
import { CSS, h, injectStyle, LIGHT_INK, localPoint, savePNG, snapshot, THEME_EVENT, THEME_VARS, themeInk, watchTheme, whenShown } from "../src/lib/dom";
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

/** An sRGB colour of a CSS #hex or rgb(a) string, composited over `under` where it has alpha. */
function rgb(c: string, under: RGB = [255, 255, 255]): RGB {
  const hex = c.match(/^#([0-9a-f]{3}|[0-9a-f]{6})$/i);
  if (hex) {
    const x = hex[1].length === 3 ? hex[1].split("").map((d) => d + d).join("") : hex[1];
    return [0, 2, 4].map((i) => parseInt(x.slice(i, i + 2), 16)) as RGB;
  }
  const m = c.match(/rgba?\(([^)]+)\)/)!;
  const [r, g, b, a = 1] = m[1].split(",").map(Number);
  return [r, g, b].map((v, i) => Math.round(a * v + (1 - a) * under[i])) as RGB;
}

describe("theme", () => {
  afterEach(() => { document.body.innerHTML = ""; document.body.removeAttribute("data-jp-theme-light"); });

  it("every colour variable reads JupyterLab's, then VS Code's, then a light fallback", () => {
    for (const [name, value] of Object.entries(THEME_VARS)) {
      expect(value).toMatch(/^var\(--jp-[a-z0-9-]+,var\(--vscode-[A-Za-z.-]+,#[0-9a-f]{3,6}\)\)$/);
      expect(CSS).toContain(`${name}:${value}`);
    }
    expect(CSS).toContain("color:var(--lw-fg);background:var(--lw-bg)");
    expect(CSS).not.toMatch(/color:#777|background:#fff\b/); // no fixed greys left
  });

  it("text reaches WCAG AA (4.5:1) on the background: fallbacks, JupyterLab Light and Dark", () => {
    const themes: Record<string, { bg: string; fg: string; muted: string; hot: string }> = {
      fallback: { bg: "#fff", fg: "#222", muted: "#616161", hot: "#b00000" },
      "JupyterLab Light": { bg: "#fff", fg: "rgba(0,0,0,.87)", muted: "rgba(0,0,0,.54)", hot: "#b00000" },
      "JupyterLab Dark": { bg: "#111", fg: "rgba(255,255,255,.87)", muted: "rgba(255,255,255,.54)", hot: "#ff8a80" },
    };
    for (const t of Object.values(themes)) {
      const bg = rgb(t.bg);
      for (const c of [t.fg, t.muted, t.hot]) expect(contrast(rgb(c, bg), bg)).toBeGreaterThanOrEqual(4.5);
    }
    expect(LIGHT_INK).toMatchObject({ fg: "#222", muted: "#616161", bg: "#fff" });
  });

  it("themeInk: the light colours for an element not in the page, the computed ones in it", () => {
    expect(themeInk(h("div"))).toEqual(LIGHT_INK);
    expect(themeInk(null)).toEqual(LIGHT_INK);
    const e = h("div", { style: "color: rgb(240, 240, 240); background-color: rgb(17, 17, 17); --lw-muted: rgb(150, 150, 150)" });
    document.body.append(e);
    const ink = themeInk(e);
    expect(ink.fg).toBe("rgb(240, 240, 240)");
    expect(ink.bg).toBe("rgb(17, 17, 17)");
    expect(ink.muted).toBe("rgb(150, 150, 150)");
  });

  it("watchTheme calls back when JupyterLab switches theme; whenShown once an element is placed", async () => {
    let n = 0;
    const stop = watchTheme(() => n++);
    document.body.classList.add("lm-mod-override-cursor"); // not a theme change
    await new Promise((r) => setTimeout(r, 20));
    expect(n).toBe(0);
    document.body.dataset.jpThemeLight = "false";
    await vi.waitFor(() => expect(n).toBeGreaterThan(0));
    stop();
    document.body.classList.remove("lm-mod-override-cursor");
    const e = h("canvas");
    let shown = 0;
    whenShown(e, () => shown++);
    whenShown(e, () => shown++); // once per element
    await new Promise((r) => setTimeout(r, 40));
    expect(shown).toBe(0);
    document.body.append(e);
    await vi.waitFor(() => expect(shown).toBe(1));
    expect(THEME_EVENT).toBe("lw-theme");
  });

  it("a snapshot carries the theme: its colours resolved on every view root, no Snapshot button", async () => {
    const calls = stubCanvas();
    vi.spyOn(HTMLImageElement.prototype, "decode").mockResolvedValue(undefined);
    const inner = h("div", { class: "lw-root" }, h("span", { text: "child" }));
    const root = h("div", { class: "lw-root", style: "--lw-fg: rgb(1, 2, 3); background-color: rgb(17, 17, 17)" },
      h("button", { class: "lw-btn lw-snap", text: "Snapshot" }), inner);
    document.body.append(root);
    await snapshot(root, 1);
    const svg = decodeURIComponent((calls.find((c) => c.name === "drawImage")!.args[0] as HTMLImageElement).src);
    expect(svg).not.toContain("Snapshot");
    expect(svg.match(/--lw-fg: rgb\(1, 2, 3\)/g)).toHaveLength(2); // the root and the nested view
    expect(calls.find((c) => c.name === "fillRect")).toBeTruthy();
  });
});
