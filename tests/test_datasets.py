"""Built-in generated datasets: seeded, balanced, labels true by construction."""
import re

import pytest

import llm_widgets as lw
from llm_widgets import datasets as D


def test_seeded_and_balanced():
    for make in D.ALL.values():
        a, b, c = make(40, seed=1), make(40, seed=1), make(40, seed=2)
        assert a.texts == b.texts and a.labels == b.labels
        assert a.texts != c.texts
        assert len(a) == 40 and len(set(a.texts)) > 30
    for make in (D.tense, D.subject_number, D.negation):
        ds = make(50)
        counts = {k: ds.labels.count(k) for k in set(ds.labels)}
        assert sorted(counts) == sorted(ds.classes) and max(counts.values()) - min(counts.values()) <= 1


def test_sentence_labels_match_the_words():
    past = {v[2] for v in D.VERBS}
    present = {v[1] for v in D.VERBS} | {v[0] for v in D.VERBS}
    nouns = {s for pair in D.SUBJECTS for s in pair}
    for text, lab in zip(*D.tense(60).args):
        words = text.rstrip(".").split()
        verb = words[next(i for i, w in enumerate(words) if w in nouns) + 1]  # word after the subject
        assert verb in (past if lab == "past" else present), (text, lab)
    plurals = {p[1] for p in D.SUBJECTS}
    for text, lab in zip(*D.subject_number(60).args):
        words = set(text.rstrip(".").split()[:3])
        assert bool(words & plurals) == (lab == "plural"), (text, lab)
    for text, lab in zip(*D.negation(60).args):
        assert (" not " in text) == (lab == "negated")


def test_token_level_labels_align_with_words():
    pos = D.part_of_speech(80)
    assert pos.level == "token"
    seen = {}
    for text, labels in zip(*pos.args):
        words = text.split()
        assert len(words) == len(labels) and not re.search(r"[.,]", text)
        for w, lab in zip(words, labels):
            seen.setdefault(w, set()).add(lab)
        assert labels[0] == "other" and "verb" in labels and labels.count("noun") >= 2
    # some words are both nouns and verbs, so part of speech is not word identity
    assert any(len(v) > 1 for v in seen.values())
    buckets = D.position_bucket(20, buckets=3)
    for _, labels in zip(*buckets.args):
        assert labels[0] == "start" and labels[-1] == "end" and labels == sorted(labels, key=["start", "middle", "end"].index)


def test_frame_and_bad_arguments():
    df = D.tense(10).to_frame()
    assert list(df.columns) == ["text", "label"] and len(df) == 10
    assert lw.datasets.tense is D.tense
    with pytest.raises(ValueError, match="n must be"):
        D.tense(1)
    with pytest.raises(ValueError, match="buckets"):
        D.position_bucket(10, buckets=1)
