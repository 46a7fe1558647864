// Selection logic without the DOM: the attribution view's word level (a column is a word, the
// selection a token), and the Explorer's mirroring of one selection across several models.

/** A selection trait (`selected_*`: an index, or null for nothing selected) as an index, -1 for none. */
export function fromSelection(v: number | null | undefined): number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : -1;
}

/** An index as a selection trait value: any negative index (none) is null. */
export function toSelection(i: number): number | null {
  return i >= 0 ? i : null;
}

/** Word shown for token `tok`: groups[tok] is the word index of every token (as Python sends it); -1 for
 * no token (tok < 0) or a token outside groups. */
export function wordOfToken(groups: ArrayLike<number>, tok: number): number {
  if (!(tok >= 0 && tok < groups.length)) return -1;
  const w = groups[tok];
  return Number.isInteger(w) && w >= 0 ? w : -1;
}

/** Tokens of word `word`, in order. */
export function tokensOfWord(groups: ArrayLike<number>, word: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < groups.length; i++) if (groups[i] === word) out.push(i);
  return out;
}

/** The token a click on word `word` selects: its first token, -1 for a word without tokens. */
export function firstTokenOfWord(groups: ArrayLike<number>, word: number): number {
  for (let i = 0; i < groups.length; i++) if (groups[i] === word) return i;
  return -1;
}

/** Column shown for token `tok`: the token itself, or its word in word-level mode; -1 for none. */
export function columnOf(tok: number, wordLevel: boolean, groups: ArrayLike<number>): number {
  if (tok < 0) return -1;
  return wordLevel ? wordOfToken(groups, tok) : tok;
}

/** Token selected by clicking column `c` (inverse of columnOf: a word's first token). */
export function tokenOfColumn(c: number, wordLevel: boolean, groups: ArrayLike<number>): number {
  if (c < 0) return -1;
  return wordLevel ? firstTokenOfWord(groups, c) : c;
}

/** The token selected after a click on column `c`: none (-1) when `c` already shows the selected token
 * (a second click clears), else the column's token. */
export function clickColumn(selectedTok: number, c: number, wordLevel: boolean, groups: ArrayLike<number>): number {
  return columnOf(selectedTok, wordLevel, groups) === c ? -1 : tokenOfColumn(c, wordLevel, groups);
}

/** `i` clamped into [0, n - 1] (0 for a missing value or n = 0): the row shown for a selection that may be stale. */
export function clampIndex(i: number | null | undefined, n: number): number {
  if (typeof i !== "number" || !Number.isFinite(i) || n <= 0) return 0;
  return Math.min(Math.max(Math.trunc(i), 0), n - 1);
}

/** The part of a widget model that mirroring needs. */
export interface Selectable {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
  save_changes(): void;
}

/** Set `key` to `value` on every model but `from` (where the change came from) that differs, and sync
 * each to its kernel. Returns the models changed. Models that already hold the value are left alone:
 * this is what stops A -> B -> A echo loops when every model mirrors to the others. */
export function mirror<M extends Selectable>(key: string, value: unknown, models: readonly M[], from: M | null = null): M[] {
  const changed: M[] = [];
  for (const m of models) {
    if (m === from || m.get(key) === value) continue;
    m.set(key, value);
    m.save_changes();
    changed.push(m);
  }
  return changed;
}

/** The `selected_layer` value of the embedding output (Python's lw.EMBEDDINGS): a string, so that no
 * block index (0 = first block) can be mistaken for it. */
export const EMBEDDINGS = "embeddings";

/** A layer selection: a block index, EMBEDDINGS, or null for none. */
export type LayerSelection = number | typeof EMBEDDINGS | null;

/** Row of a layer selection in arrays built from hidden states (embeddings first): EMBEDDINGS -> 0,
 * block i -> i + 1; -1 for none. */
export function hiddenRow(layer: unknown): number {
  if (layer === EMBEDDINGS) return 0;
  return typeof layer === "number" && Number.isInteger(layer) && layer >= 0 ? layer + 1 : -1;
}

/** The layer selection of row `row` of an embeddings-first array (the inverse of hiddenRow). */
export function layerOfRow(row: number): number | typeof EMBEDDINGS {
  return row === 0 ? EMBEDDINGS : row - 1;
}
