"""Word substitutions for adversarial attacks: synonyms, typos and look-alike characters.

Each candidate keeps a reader's meaning: a synonym from a small table (`SYNONYM_SETS`, plus the
robustness tests' `perturb.SYNONYMS`), a typo (two inner letters swapped, a letter dropped or
doubled) or a visually similar character (o -> 0, l -> 1, ...). An attack that flips a model's
answer with such changes found a weakness, not a different text. Plain data: edit freely.
"""
from __future__ import annotations

import re

from .perturb import SYNONYMS

WORD = re.compile(r"[A-Za-z]+")

#: word -> meaning-preserving alternatives (small, hand-made; a probe, not a thesaurus)
SYNONYM_SETS: dict[str, list[str]] = {
    "great": ["good", "fine", "nice"], "excellent": ["fine", "first-rate", "good"],
    "wonderful": ["lovely", "marvellous", "delightful"], "superb": ["splendid", "fine", "first-rate"],
    "brilliant": ["splendid", "bright", "clever"], "terrible": ["bad", "dire", "atrocious"],
    "awful": ["bad", "dire", "atrocious"], "horrible": ["nasty", "bad", "ghastly"],
    "dreadful": ["dire", "bad", "ghastly"], "poor": ["bad", "weak", "inferior"],
    "good": ["fine", "decent", "nice"], "bad": ["poor", "weak", "lousy"], "movie": ["film", "picture"],
    "film": ["movie", "picture"], "story": ["tale", "narrative"], "plot": ["storyline", "narrative"],
    "show": ["programme", "performance"], "scene": ["sequence", "episode"], "actor": ["performer", "player"],
    "watched": ["viewed", "saw"], "saw": ["watched", "viewed"], "really": ["truly", "genuinely"],
    "very": ["quite", "truly"], "quite": ["rather", "fairly"], "night": ["evening"], "today": ["now"],
    "book": ["novel"], "music": ["score", "soundtrack"], "happy": ["glad", "pleased"], "sad": ["unhappy", "down"],
    "love": ["adore", "like"], "hate": ["detest", "loathe"], "boring": ["dull", "tedious"],
    "funny": ["amusing", "comic"], "nice": ["pleasant", "lovely"], "big": ["large", "huge"],
    "small": ["little", "tiny"],
}

LOOKALIKE = {"o": "0", "l": "1", "i": "1", "e": "3", "a": "@", "s": "5"}
KINDS = ("synonym", "typo", "character")


def _case_like(word: str, new: str) -> str:
    if word.isupper() and len(word) > 1:
        return new.upper()
    return new[:1].upper() + new[1:] if word[:1].isupper() else new


def synonyms(word: str) -> list[str]:
    w = word.lower()
    alts = list(SYNONYM_SETS.get(w, []))
    if w in SYNONYMS and SYNONYMS[w] not in alts:
        alts.append(SYNONYMS[w])
    return [_case_like(word, a) for a in alts]


def typos(word: str) -> list[str]:
    """Two inner letters swapped (middle first), the middle letter dropped, a letter doubled."""
    if len(word) < 4:
        return []
    mid = len(word) // 2
    out = [word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in sorted(range(1, len(word) - 2),
                                                                          key=lambda i: abs(i - mid + 1))]
    out += [word[:mid] + word[mid + 1:], word[:mid] + word[mid] + word[mid:]]
    return [w for w in dict.fromkeys(out) if w != word]


def characters(word: str) -> list[str]:
    """One letter replaced by a look-alike character (the first that has one, then the last)."""
    spots = [i for i, c in enumerate(word.lower()) if c in LOOKALIKE]
    out = [word[:i] + LOOKALIKE[word[i].lower()] + word[i + 1:] for i in dict.fromkeys(spots[:1] + spots[-1:])]
    return out


def candidates(word: str, kinds=KINDS, limit: int = 8) -> list[tuple[str, str]]:
    """Up to `limit` (replacement, kind) for `word`: synonyms first, then typos, then characters,
    interleaved so a small limit still tries each kind."""
    lists = {"synonym": synonyms, "typo": typos, "character": characters}
    unknown = set(kinds) - set(lists)
    if unknown:
        raise ValueError(f"unknown substitution kinds {sorted(unknown)}; use {list(KINDS)}")
    per = [[(w, k) for w in lists[k](word)] for k in kinds]
    out, seen = [], {word}
    for i in range(max((len(p) for p in per), default=0)):
        for p in per:
            if i < len(p) and p[i][0] not in seen:
                seen.add(p[i][0])
                out.append(p[i])
    return out[:limit]


def segments(text: str) -> list[str]:
    """The text cut into alternating non-word / word pieces: odd indices are the words an attack
    may change (runs of letters); "".join(pieces) is the text."""
    return re.split(r"([A-Za-z]+)", text)


def substitution_diff(a: str, b: str) -> tuple[list[list], list[list]]:
    """Word-level diff of a text and its substituted version ([[word, changed], ...] for each), word
    by word: substitutions keep the number of words, and a positional comparison marks exactly the
    words that changed (a sequence alignment can pair a changed word with an equal one elsewhere).
    Falls back to perturb.word_diff when the word counts differ."""
    wa, wb = a.split(), b.split()
    if len(wa) != len(wb):
        from .perturb import word_diff

        return word_diff(a, b)
    return [[x, x != y] for x, y in zip(wa, wb)], [[y, x != y] for x, y in zip(wa, wb)]
