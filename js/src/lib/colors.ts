// Colour scales as RGB tables. Sequential for [0, max], diverging for [-m, m].
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

function pick(t: RGB[], x: number): RGB {
  const last = t.length - 1;
  return t[Math.round(last * Math.min(Math.max(x, 0), 1))];
}

/** Colour of v on a sequential scale over [0, vmax]; values outside are clamped, non-finite ones (and
 * any value when vmax <= 0) get the lowest colour. */
export function seq(v: number, vmax: number): RGB {
  return pick(SEQUENTIAL, vmax > 0 && Number.isFinite(v) ? v / vmax : 0);
}

/** Colour of v on a diverging scale over [-m, m]; non-finite values get the neutral centre. */
export function div(v: number, m: number): RGB {
  return pick(DIVERGING, m > 0 && Number.isFinite(v) ? 0.5 + v / (2 * m) : 0.5);
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

/** Black or white text, whichever reads on background c. */
export function ink(c: RGB): string {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 ? "#111" : "#fff";
}
