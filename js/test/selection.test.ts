import { describe, expect, it } from "vitest";
import { createModel } from "../src/lib/model";
import {
  clampIndex, clickColumn, columnOf, firstTokenOfWord, fromSelection, mirror, tokenOfColumn, tokensOfWord, toSelection, wordOfToken,
} from "../src/lib/selection";
import { EMBEDDINGS, hiddenRow, layerOfRow } from "../src/lib/selection";

// "The un|believ|able cat": tokens 0..5 -> words 0, 1, 1, 1, 2 (and a special token with no word)
const groups = [0, 1, 1, 1, 2, -1];

describe("selection traits", () => {
  it("map null (nothing selected) to -1 and back", () => {
    expect(fromSelection(null)).toBe(-1);
    expect(fromSelection(undefined)).toBe(-1);
    expect(fromSelection(0)).toBe(0);
    expect(fromSelection(7)).toBe(7);
    expect(fromSelection(-1)).toBe(-1);
    expect(toSelection(-1)).toBeNull();
    expect(toSelection(0)).toBe(0);
    expect(toSelection(3)).toBe(3);
  });
});

describe("word <-> token mapping", () => {
  it("maps tokens to words and back", () => {
    expect([0, 1, 2, 3, 4].map((t) => wordOfToken(groups, t))).toEqual([0, 1, 1, 1, 2]);
    expect(wordOfToken(groups, 5)).toBe(-1); // no word
    expect(wordOfToken(groups, 6)).toBe(-1);
    expect(wordOfToken(groups, -1)).toBe(-1);
    expect(tokensOfWord(groups, 1)).toEqual([1, 2, 3]);
    expect(tokensOfWord(groups, 7)).toEqual([]);
    expect(firstTokenOfWord(groups, 1)).toBe(1);
    expect(firstTokenOfWord(groups, 2)).toBe(4);
    expect(firstTokenOfWord(groups, 9)).toBe(-1);
  });
  it("shows a selected token as its word's column in word-level mode, as itself otherwise", () => {
    expect(columnOf(3, true, groups)).toBe(1);
    expect(columnOf(3, false, groups)).toBe(3);
    expect(columnOf(-1, true, groups)).toBe(-1);
    expect(columnOf(-1, false, groups)).toBe(-1);
    expect(tokenOfColumn(1, true, groups)).toBe(1);
    expect(tokenOfColumn(2, true, groups)).toBe(4);
    expect(tokenOfColumn(2, false, groups)).toBe(2);
    expect(tokenOfColumn(-1, true, groups)).toBe(-1);
    for (let w = 0; w < 3; w++) expect(columnOf(tokenOfColumn(w, true, groups), true, groups)).toBe(w);
  });
  it("a second click on the selected column clears, a click elsewhere selects its token", () => {
    expect(clickColumn(-1, 1, true, groups)).toBe(1);
    expect(clickColumn(3, 1, true, groups)).toBe(-1); // token 3 is in word 1
    expect(clickColumn(3, 2, true, groups)).toBe(4);
    expect(clickColumn(3, 3, false, groups)).toBe(-1);
    expect(clickColumn(3, 1, false, groups)).toBe(1);
  });
  it("clamps a possibly stale selection into range", () => {
    expect(clampIndex(5, 3)).toBe(2);
    expect(clampIndex(-1, 3)).toBe(0);
    expect(clampIndex(1, 3)).toBe(1);
    expect(clampIndex(null, 3)).toBe(0);
    expect(clampIndex(undefined, 3)).toBe(0);
    expect(clampIndex(NaN, 3)).toBe(0);
    expect(clampIndex(2, 0)).toBe(0);
  });
});

describe("selection mirroring", () => {
  it("sets and saves the value on every other model that differs", () => {
    const saved: string[] = [];
    const models = ["a", "b", "c"].map((name) => {
      const m = createModel({ selected_token: -1 });
      return { ...m, name, save_changes: () => saved.push(name) };
    });
    models[2].set("selected_token", 4);
    const changed = mirror("selected_token", 4, models, models[0]);
    expect(changed.map((m) => m.name)).toEqual(["b"]); // a is the source, c already holds 4
    expect(models.map((m) => m.get("selected_token"))).toEqual([-1, 4, 4]);
    expect(saved).toEqual(["b"]);
  });
  it("settles when every model mirrors its changes to the others (no echo loop)", () => {
    const models = [0, 1, 2].map(() => createModel({ selected_token: -1 }));
    let sets = 0;
    for (const m of models) m.on("change:selected_token", () => { sets++; mirror("selected_token", m.get("selected_token"), models, m); });
    models[1].set("selected_token", 3);
    expect(models.map((m) => m.get("selected_token"))).toEqual([3, 3, 3]);
    expect(sets).toBe(3);
  });
});

describe("layer selections: block indices and the embeddings sentinel", () => {
  it("maps a selection to its row of an embeddings-first array and back", () => {
    expect([hiddenRow(EMBEDDINGS), hiddenRow(0), hiddenRow(4), hiddenRow(null), hiddenRow(-1), hiddenRow("x")]).toEqual([0, 1, 5, -1, -1, -1]);
    for (const r of [0, 1, 5]) expect(hiddenRow(layerOfRow(r))).toBe(r);
    expect(layerOfRow(0)).toBe("embeddings");
  });
});
