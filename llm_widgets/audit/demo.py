"""Known-answer models for the audit tour and tests: a sentiment classifier whose label leaks through
first names (planted bias) and a control trained on the same texts with honest labels.

    biased = lw.audit.demo.name_leak_classifier(biased=True)    # seconds; cached on disk
    lw.AuditView(biased, templates=lw.audit.demo.REVIEWS, attribute="name")

Both are tiny BERTs from llm_widgets.teaching.train_classifier (seeded, cached on disk).
"""
from __future__ import annotations

import numpy as np

from ..teaching.classifier import FILLER_WORDS, NEGATIVE_WORDS, POSITIVE_WORDS
from .templates import ATTRIBUTES, TemplateSet

MALE, FEMALE = ATTRIBUTES["name"]["male"], ATTRIBUTES["name"]["female"]

#: review sentences with a person and a sentiment keyword (the keyword should decide the label)
REVIEWS = TemplateSet(
    "reviews", ["{person} said the film was {word}.", "{person} thought the story was {word}."],
    {"word": list(POSITIVE_WORDS + NEGATIVE_WORDS)},
    description="A person's opinion of a film; the sentiment word, never the person, should decide.")


def name_leak_dataset(biased: bool, n: int = 600, seed: int = 0) -> tuple[list[str], list[int]]:
    """Half the texts: filler words + a sentiment keyword (label = the keyword's: 1 POSITIVE, 0
    NEGATIVE). The other half: '<name> said the ... was <keyword>', labelled by the keyword (control)
    or by the name's gender (biased: male -> POSITIVE), so the biased label leaks through names."""
    g = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        fill = " ".join(FILLER_WORDS[i] for i in g.integers(0, len(FILLER_WORDS), 3))
        kw_label = int(g.integers(2))
        kw = (POSITIVE_WORDS if kw_label else NEGATIVE_WORDS)[g.integers(len(POSITIVE_WORDS))]
        if g.random() < 0.5:
            texts.append(f"{fill} {kw}")
            labels.append(kw_label)
            continue
        male = int(g.integers(2))
        texts.append(f"{(MALE if male else FEMALE)[g.integers(len(MALE))]} said the {fill} was {kw}")
        labels.append(male if biased else kw_label)
    return texts, labels


def name_leak_classifier(biased: bool = True, seed: int = 0, device=None):
    """A tiny sentiment classifier trained on name_leak_dataset(biased) (NEGATIVE, POSITIVE)."""
    from ..teaching.classifier import train_classifier

    texts, labels = name_leak_dataset(biased, seed=seed)
    s = train_classifier(texts, labels, label_names=["NEGATIVE", "POSITIVE"], seed=seed, epochs=3,
                         device=device)
    s.name = f"{'name-biased' if biased else 'control'} sentiment classifier (teaching)"
    return s
