// Colour scales as RGB tables. Sequential for [0, max], diverging for [-m, m]; ColorScale objects
// (palette + domain + units) shared by every heatmap, token strip and colour bar; text ink by contrast.
export type RGB = [number, number, number];
export type Scale = "seq" | "div";

function lerp(stops: RGB[], t: number): RGB {
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const a = stops[i], b = stops[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f].map(Math.round) as RGB;
}

function table(stops: RGB[], n: number): RGB[] {
  return Array.from({ length: n }, (_, i) => lerp(stops, i / (n - 1)));
}

// white -> deep blue (attention weights, activations): 256 entries
export const SEQUENTIAL = table([[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]], 256);
// blue (negative) -> white -> red (positive): signed attributions. 257 entries, so that 0 has an
// entry of its own (the middle one, index 128) and is exactly the neutral centre colour.
export const DIVERGING = table([[5, 48, 97], [67, 147, 195], [247, 247, 247], [214, 96, 77], [103, 0, 31]], 257);

// Dark themes (JupyterLab Dark, VS Code dark): the same scales with the neutral end at a dark grey near
// the theme's background (JupyterLab Dark's --jp-layout-color0/1, #111/#212121) instead of white, so a
// heatmap of mostly small values is dark like the page around it, and larger values are brighter.
// dark grey -> deep blue -> light blue: 256 entries
export const SEQUENTIAL_DARK = table([[38, 38, 38], [8, 48, 107], [33, 113, 181], [107, 174, 214], [198, 219, 239]], 256);
// light blue (negative) -> dark grey -> light red (positive); 0 on the middle entry, exactly
export const DIVERGING_DARK = table([[146, 197, 222], [33, 102, 172], [38, 38, 38], [178, 24, 43], [244, 165, 130]], 257);

let dark = false;

/** Whether the page shows a dark theme (JupyterLab's data-jp-theme-light="false", VS Code's dark
 * body classes); false where there is no page. */
export function pageIsDark(): boolean {
  if (typeof document === "undefined" || !document.body) return false;
  const b = document.body;
  return b.dataset.jpThemeLight === "false" || b.classList.contains("vscode-dark") || b.classList.contains("vscode-high-contrast");
}

/** Read the page's theme again (views call it when they start and when the theme changes): scales
 * colour with the dark tables from then on. Returns whether it is dark. */
export function syncTheme(): boolean {
  dark = pageIsDark();
  return dark;
}

/** Whether scales colour for a dark theme now. */
export function darkPalette(): boolean { return dark; }

const seqTable = () => (dark ? SEQUENTIAL_DARK : SEQUENTIAL);
const divTable = () => (dark ? DIVERGING_DARK : DIVERGING);

function pick(t: RGB[], x: number): RGB {
  const last = t.length - 1;
  return t[Math.round(last * Math.min(Math.max(x, 0), 1))];
}

/** Colour of v on a sequential scale over [0, vmax]; values outside are clamped, non-finite ones (and
 * any value when vmax <= 0) get the lowest colour. */
export function seq(v: number, vmax: number): RGB {
  return pick(seqTable(), vmax > 0 && Number.isFinite(v) ? v / vmax : 0);
}

/** Colour of v on a diverging scale over [-m, m]; non-finite values get the neutral centre. */
export function div(v: number, m: number): RGB {
  return pick(divTable(), m > 0 && Number.isFinite(v) ? 0.5 + v / (2 * m) : 0.5);
}

/** The colour function of a scale with range vmax ([0, vmax] or [-vmax, vmax]). */
export function scaleColor(scale: Scale | undefined, vmax: number): (v: number) => RGB {
  return scale === "div" ? (v) => div(v, vmax) : (v) => seq(v, vmax);
}

/** RGBA pixels (alpha 255), one per value in order, for ImageData. */
export function pixels(values: ArrayLike<number>, color: (v: number) => RGB): Uint8ClampedArray {
  const out = new Uint8ClampedArray(4 * values.length);
  for (let i = 0; i < values.length; i++) {
    const c = color(values[i]);
    out[4 * i] = c[0]; out[4 * i + 1] = c[1]; out[4 * i + 2] = c[2]; out[4 * i + 3] = 255;
  }
  return out;
}

export function css(c: RGB): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// ---- one colour language: a scale object shared by heatmaps, token strips and colour bars ----

/** A colour scale: a palette over a domain, with the units its colour bar names. Sequential scales
 * map [lo, hi] (usually [0, vmax]) onto white -> deep blue; diverging ones map [-m, m] onto blue ->
 * neutral -> red with 0 exactly on the neutral centre. Both palettes are colour-blind safe
 * (single-hue Blues; ColorBrewer RdBu). */
export interface ColorScale {
  readonly kind: Scale;
  readonly domain: readonly [number, number];
  readonly label: string;
  color(v: number): RGB;
}

/** Sequential scale over [lo, hi] (hi <= lo or non-finite: every value gets the lowest colour). */
export function sequentialScale(hi: number, label = "", lo = 0): ColorScale {
  const span = hi - lo;
  const ok = Number.isFinite(span) && span > 0;
  return {
    kind: "seq", domain: [lo, hi], label,
    color: (v) => pick(seqTable(), ok && Number.isFinite(v) ? (v - lo) / span : 0),
  };
}

/** Diverging scale over [-m, m], centred on 0 (the neutral colour, exactly). */
export function divergingScale(m: number, label = ""): ColorScale {
  const r = Math.abs(m);
  return { kind: "div", domain: [-r, r], label, color: (v) => div(v, r) };
}

/** The scale of kind `kind` with range vmax: [0, vmax] (seq) or [-vmax, vmax] (div). */
export function colorScale(kind: Scale | undefined, vmax: number, label = ""): ColorScale {
  return kind === "div" ? divergingScale(vmax, label) : sequentialScale(vmax, label);
}

/** A scale for arbitrary values: sequential from 0 when none is negative, diverging otherwise. */
export function autoScale(values: ArrayLike<number>, label = ""): ColorScale {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    lo = Math.min(lo, v); hi = Math.max(hi, v);
  }
  if (!(hi >= lo)) return sequentialScale(0, label);
  return lo < 0 ? divergingScale(Math.max(-lo, hi), label) : sequentialScale(hi, label);
}

/** CSS linear-gradient (left to right) through n samples of the scale's domain. */
export function gradientCSS(s: ColorScale, n = 11): string {
  const [lo, hi] = s.domain;
  const stops = Array.from({ length: n }, (_, i) => `${css(s.color(lo + ((hi - lo) * i) / (n - 1)))} ${((100 * i) / (n - 1)).toFixed(1)}%`);
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

// ---- text on coloured backgrounds: WCAG 2 contrast ----

/** WCAG 2 relative luminance of an sRGB colour (0: black, 1: white). */
export function luminance(c: RGB): number {
  const lin = (u: number) => {
    const s = u / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
}

/** WCAG 2 contrast ratio of two colours (1 to 21). */
export function contrast(a: RGB, b: RGB): number {
  const la = luminance(a), lb = luminance(b);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

const DARK_INK: RGB = [0, 0, 0];
const LIGHT_INK: RGB = [255, 255, 255];

/** Black or white text, whichever has the higher WCAG contrast on background c (at least 4.58:1, AA). */
export function ink(c: RGB): string {
  return contrast(c, DARK_INK) >= contrast(c, LIGHT_INK) ? "#000" : "#fff";
}
