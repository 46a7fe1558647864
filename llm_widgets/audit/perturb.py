"""Text perturbations for robustness tests (CheckList-style; Ribeiro et al. 2020).

Invariance tests change a text in a way that should not change the model's answer (a typo, casing,
a synonym, punctuation, an irrelevant clause). Directional tests change it in a way that should:
adding a negation should flip a sentiment label. Every perturbation is a function
``(text, rng) -> str | None`` returning None where it does not apply (no word to negate), and is
deterministic for a given ``numpy.random.Generator``. Add your own to `INVARIANCE` / `DIRECTIONAL`,
or pass ``perturbations={"name": (function, "invariance"|"directional")}`` to the audit.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

Perturbation = Callable[[str, np.random.Generator], "str | None"]

_WORD = re.compile(r"[A-Za-z]+")

SYNONYMS = {
    "good": "fine", "great": "excellent", "bad": "poor", "terrible": "awful", "movie": "film",
    "film": "movie", "happy": "glad", "sad": "unhappy", "big": "large", "small": "little",
    "quick": "fast", "fast": "quick", "love": "adore", "like": "enjoy", "hate": "detest",
    "nice": "pleasant", "awful": "dreadful", "excellent": "superb", "boring": "dull",
    "wonderful": "marvellous", "amazing": "astonishing", "food": "meal", "staff": "employees",
    "job": "work", "buy": "purchase", "begin": "start", "start": "begin", "house": "home",
    "story": "tale", "car": "automobile", "funny": "amusing", "smart": "clever", "rude": "impolite",
}

IRRELEVANT_CLAUSES = ["By the way, it was a Tuesday.", "I read this on my phone.",
                      "The weather was cloudy that day.", "My neighbour has a cat."]


def typo(text: str, rng: np.random.Generator) -> str | None:
    """Swap two adjacent letters inside one word of four or more letters."""
    words = [m for m in _WORD.finditer(text) if len(m.group()) >= 4]
    if not words:
        return None
    m = words[int(rng.integers(len(words)))]
    w = m.group()
    i = int(rng.integers(1, len(w) - 2)) if len(w) > 3 else 1
    w2 = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    return text[: m.start()] + w2 + text[m.end():]


def casing(text: str, rng: np.random.Generator) -> str | None:
    """All lower case, or all upper case if already lower."""
    low = text.lower()
    return low if low != text else text.upper()


def synonym(text: str, rng: np.random.Generator) -> str | None:
    """Replace one word that has an entry in `SYNONYMS`."""
    hits = [m for m in _WORD.finditer(text) if m.group().lower() in SYNONYMS]
    if not hits:
        return None
    m = hits[int(rng.integers(len(hits)))]
    rep = SYNONYMS[m.group().lower()]
    if m.group()[0].isupper():
        rep = rep[0].upper() + rep[1:]
    return text[: m.start()] + rep + text[m.end():]


def punctuation(text: str, rng: np.random.Generator) -> str | None:
    """Drop the final punctuation mark, or add a full stop where there is none."""
    s = text.rstrip()
    return s[:-1] if s and s[-1] in ".!?" else s + "."


def irrelevant_clause(text: str, rng: np.random.Generator) -> str | None:
    """Append a sentence that says nothing about the subject."""
    s = text.rstrip()
    s = s if not s or s[-1] in ".!?" else s + "."
    return s + " " + IRRELEVANT_CLAUSES[int(rng.integers(len(IRRELEVANT_CLAUSES)))]


_NEGATE = [
    (re.compile(r"\b(is|was|are|were|am)\b(?! not\b)", re.I), r"\1 not"),
    (re.compile(r"\b(can|will|would|should|could|did|does|do)\b(?! not\b)", re.I), r"\1 not"),
    (re.compile(r"\b(I|we|you|they)\s+(love|like|enjoy|hate|recommend|loved|liked|enjoyed|hated|recommended)\b", re.I),
     None),
]
_PAST = {"loved": "love", "liked": "like", "enjoyed": "enjoy", "hated": "hate", "recommended": "recommend"}


def negate(text: str, rng: np.random.Generator) -> str | None:
    """Negate the first auxiliary verb ("is" -> "is not") or first-person verb ("I loved" -> "I did
    not love"). None if the text has nothing to negate or is already negated."""
    if re.search(r"\b(not|never|n't|no)\b", text, re.I):
        return None
    best = None
    for pattern, rep in _NEGATE:
        m = pattern.search(text)
        if m and (best is None or m.start() < best[0].start()):
            best = (m, rep)
    if best is None:
        return None
    m, rep = best
    if rep is None:
        subj, verb = m.group(1), m.group(2)
        aux = "did" if verb.lower() in _PAST else "do"
        new = f"{subj} {aux} not {_PAST.get(verb.lower(), verb)}"
    else:
        new = m.expand(rep)
    return text[: m.start()] + new + text[m.end():]


#: name -> perturbation whose output should score like its input
INVARIANCE: dict[str, Perturbation] = {
    "typo": typo, "casing": casing, "synonym": synonym, "punctuation": punctuation,
    "irrelevant clause": irrelevant_clause,
}
#: name -> perturbation that should flip the predicted class
DIRECTIONAL: dict[str, Perturbation] = {"negation": negate}


def word_diff(a: str, b: str) -> tuple[list[list], list[list]]:
    """Word-level diff of two texts: ([[word, changed], ...] for a, the same for b)."""
    import difflib

    wa, wb = a.split(), b.split()
    ca, cb = [True] * len(wa), [True] * len(wb)
    for block in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            ca[block.a + k] = False
            cb[block.b + k] = False
    return [[w, c] for w, c in zip(wa, ca)], [[w, c] for w, c in zip(wb, cb)]
