"""The teaching classifier: data with a known rule, a model that learns it, caching, bad input."""
import numpy as np
import pytest
import torch

from llm_widgets.teaching.classifier import (
    FILLER_WORDS, NEGATIVE_WORDS, POSITIVE_WORDS, accuracy, keyword_classifier, keyword_dataset,
    train_classifier,
)


@pytest.fixture(scope="module")
def keyword_session():
    return keyword_classifier()


def test_keyword_dataset_has_exactly_one_deciding_keyword():
    texts, labels, pos = keyword_dataset(300, seed=3)
    assert len(texts) == len(labels) == len(pos) == 300
    keywords = set(POSITIVE_WORDS) | set(NEGATIVE_WORDS)
    for text, label, p in zip(texts, labels, pos):
        words = text.split()
        assert [i for i, w in enumerate(words) if w in keywords] == [p]
        assert (words[p] in POSITIVE_WORDS) == (label == 1)
        assert all(w in FILLER_WORDS for i, w in enumerate(words) if i != p)
    assert 0.35 < np.mean(labels) < 0.65  # both classes present
    assert len(set(pos)) > 5  # the keyword moves around
    assert keyword_dataset(20, seed=3) == tuple(x[:20] for x in (texts, labels, pos))  # seeded


def test_keyword_classifier_learns_the_rule_and_is_cached(keyword_session):
    s = keyword_session
    assert s.class_labels == ["NEGATIVE", "POSITIVE"]
    texts, labels, _ = keyword_dataset(400, seed=99)  # held out
    assert accuracy(s, texts, labels) >= 0.99
    # the cached copy loads the same weights
    again = keyword_classifier()
    a = s.model.classifier.weight
    assert torch.equal(a, again.model.classifier.weight)


def test_random_weights_do_not_know_the_rule(keyword_session):
    from llm_widgets.teaching.classifier import KEYWORD_LABELS, Settings, _build
    from llm_widgets.session import Session

    tok = keyword_session.tokenizer
    rnd = Session(_build(Settings(seed=1), 2, list(KEYWORD_LABELS), tok.vocab_size, tok.pad_token_id),
                  tok, device="cpu")
    texts, labels, _ = keyword_dataset(400, seed=99)
    assert accuracy(rnd, texts, labels) < 0.75


def test_train_classifier_string_labels_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_WIDGETS_CACHE", str(tmp_path))
    texts = ["good good", "bad bad", "good film", "bad film"] * 4
    names = ["neg", "pos"]
    labels = ["pos", "neg", "pos", "neg"] * 4
    s = train_classifier(texts, labels, label_names=names, epochs=2)
    assert s.class_labels == names
    assert list(tmp_path.glob("classifier-*.pt"))  # cached on disk
    with pytest.raises(ValueError, match="texts but"):
        train_classifier(texts, labels[:-1])
    with pytest.raises(ValueError, match="not in label_names"):
        train_classifier(texts, labels, label_names=["neg", "other"])
    with pytest.raises(ValueError, match="empty"):
        train_classifier([], [])
    with pytest.raises(ValueError, match="no name"):
        train_classifier(["a b", "c d", "e f"], [0, 1, 2], label_names=["x", "y"])
