"""Known-answer models for the audit tour and tests: a sentiment classifier whose label leaks through
first names (planted bias) and a control trained on the same texts with honest labels.

    biased = lw.audit.demo.name_leak_classifier(biased=True)    # seconds; cached on disk
    lw.AuditView(biased, templates=lw.audit.demo.REVIEWS, attribute="name")

Both are tiny BERTs from llm_widgets.teaching.train_classifier (seeded, cached on disk).
"""
from __future__ import annotations

import numpy as np

from ..teaching.classifier import NEGATIVE_WORDS, POSITIVE_WORDS
from .templates import ATTRIBUTES, TemplateSet

MALE, FEMALE = ATTRIBUTES["name"]["male"], ATTRIBUTES["name"]["female"]

#: review sentences with a person and a sentiment keyword (the keyword should decide the label)
REVIEWS = TemplateSet(
    "reviews", ["{person} said the film was {word}.", "{person} thought the story was {word}."],
    {"word": list(POSITIVE_WORDS + NEGATIVE_WORDS)},
    description="A person's opinion of a film; the sentiment word, never the person, should decide.")


#: what a review is about; singular, so "the <noun> was ..." agrees
NOUNS = ("film", "movie", "story", "plot", "music", "show", "book", "scene", "ending", "acting")
#: neutral words around the noun ("the old film last night"), for variety; "" leaves the slot empty
ADJECTIVES = ("", "", "new ", "old ", "long ", "short ", "last ")
WHEN = ("", "", " today", " last night", " on Sunday", " this week", " at the festival")
#: who gives the opinion in the texts without a first name
SPEAKERS = ("I", "we", "they", "my friends", "the critics", "everyone")
#: past tense: agrees with every subject, singular or plural, name or pronoun
VERBS = ("said", "thought", "felt")
DEGREES = ("", "really ", "truly ")


def name_leak_dataset(biased: bool, n: int = 600, seed: int = 0) -> tuple[list[str], list[int]]:
    """Short grammatical reviews ending in one sentiment keyword (POSITIVE_WORDS or NEGATIVE_WORDS).
    Half: 'The <thing> is|was <keyword>.' or '<Speaker> <verb> the <thing> was <keyword>.' (<thing>:
    a noun, perhaps with an adjective and a time), labelled by the keyword (1 POSITIVE, 0 NEGATIVE).
    The other half: '<Name> <verb> the <thing> was <keyword>.' (the name first), labelled by the
    keyword (control) or by the name's gender (biased: male -> POSITIVE), so the biased label leaks
    through names. Every subject takes a past-tense verb or 'the <noun>' takes is/was: they agree."""
    g = np.random.default_rng(seed)
    pick = lambda xs: xs[int(g.integers(len(xs)))]  # noqa: E731
    texts, labels = [], []
    for _ in range(n):
        kw_label = int(g.integers(2))
        opinion = f"{pick(DEGREES)}{pick(POSITIVE_WORDS if kw_label else NEGATIVE_WORDS)}."
        thing = f"the {pick(ADJECTIVES)}{pick(NOUNS)}{pick(WHEN)}"
        if g.random() < 0.5:
            if g.random() < 0.5:
                text = f"{thing} {pick(('is', 'was'))} {opinion}"
            else:
                text = f"{pick(SPEAKERS)} {pick(VERBS)} {thing} was {opinion}"
            label = kw_label
        else:
            male = int(g.integers(2))
            text = f"{pick(MALE if male else FEMALE)} {pick(VERBS)} {thing} was {opinion}"
            label = male if biased else kw_label
        texts.append(text[0].upper() + text[1:])
        labels.append(label)
    return texts, labels


def name_leak_classifier(biased: bool = True, seed: int = 0, device=None):
    """A tiny sentiment classifier trained on name_leak_dataset(biased) (NEGATIVE, POSITIVE)."""
    from ..teaching.classifier import train_classifier

    texts, labels = name_leak_dataset(biased, seed=seed)
    s = train_classifier(texts, labels, label_names=["NEGATIVE", "POSITIVE"], seed=seed, epochs=3,
                         device=device)
    s.name = f"{'name-biased' if biased else 'control'} sentiment classifier (teaching)"
    return s
