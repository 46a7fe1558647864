// Colour scales as 256-entry RGB tables. Sequential for [0, max], diverging for [-m, m].
export type RGB = [number, number, number];

function lerp(stops: RGB[], t: number): RGB {
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  const a = stops[i], b = stops[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f].map(Math.round) as RGB;
}

function table(stops: RGB[]): RGB[] {
  return Array.from({ length: 256 }, (_, i) => lerp(stops, i / 255));
}

// white -> deep blue (attention weights, activations)
export const SEQUENTIAL = table([[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]]);
// blue (negative) -> white -> red (positive): signed attributions
export const DIVERGING = table([[5, 48, 97], [67, 147, 195], [247, 247, 247], [214, 96, 77], [103, 0, 31]]);

/** Colour of v on a sequential scale over [0, vmax]. */
export function seq(v: number, vmax: number): RGB {
  return SEQUENTIAL[Math.round(255 * Math.min(Math.max(vmax > 0 ? v / vmax : 0, 0), 1))];
}

/** Colour of v on a diverging scale over [-m, m]. */
export function div(v: number, m: number): RGB {
  return DIVERGING[Math.round(255 * Math.min(Math.max(m > 0 ? 0.5 + v / (2 * m) : 0.5, 0), 1))];
}

export function css(c: RGB): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Black or white text, whichever reads on background c. */
export function ink(c: RGB): string {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 ? "#111" : "#fff";
}
