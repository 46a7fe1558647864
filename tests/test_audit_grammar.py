"""The audit's demo sentences are grammatical English: the generated reviews of
llm_widgets.audit.demo (the name-leak training and audit texts) and every shipped template filled with
every shipped term (subject-verb agreement, "a"/"an")."""
import itertools
import re

import pytest

import llm_widgets as lw
from llm_widgets.audit import demo
from llm_widgets.audit.templates import ATTRIBUTES, TEMPLATE_SETS, fill
from llm_widgets.teaching.classifier import NEGATIVE_WORDS, POSITIVE_WORDS

# agreement errors: a plural or first/second-person subject with a singular verb, and the reverse
DISAGREE = re.compile(r"\b(they|we|you|friends|critics) (was|is|has|does)\b|\b(he|she|it|everyone) (were|are|have|do)\b"
                      r"|\bI (is|are|were|has)\b|\ban? (?:\w+ )?(were|are)\b", re.I)
ARTICLE = re.compile(r"\ba [aeiou]|\ban [^aeiou\W]", re.I)


def alt(words):
    return "|".join(re.escape(w.strip()) for w in words if w.strip())


def test_name_leak_sentences_follow_the_grammar():
    thing = rf"the (?:(?:{alt(demo.ADJECTIVES)}) )?(?:{alt(demo.NOUNS)})(?: (?:{alt(demo.WHEN)}))?"
    opinion = rf"(?:(?:{alt(demo.DEGREES)}) )?(?:{alt(POSITIVE_WORDS + NEGATIVE_WORDS)})\."
    subject = alt([*demo.SPEAKERS, *demo.MALE, *demo.FEMALE])
    sentence = re.compile(rf"(?:{thing} (?:is|was)|(?:{subject}) (?:{alt(demo.VERBS)}) {thing} was) {opinion}", re.I)
    texts = [t for biased, seed in itertools.product((True, False), range(4))
             for t in demo.name_leak_dataset(biased, n=600, seed=seed)[0]]
    assert {t.split()[0].lower() for t in texts} >= {"they", "we", "i", "the", "my", "everyone"}
    for t in texts:
        assert t[0].isupper() and sentence.fullmatch(t), t
        assert not DISAGREE.search(t) and not ARTICLE.search(t), t
    assert not any(re.search(r"\bthey was\b|\bhe were\b", t, re.I) for t in texts)


def test_name_leak_labels_follow_the_keyword_or_the_name():
    for biased in (True, False):
        texts, labels = demo.name_leak_dataset(biased, n=300, seed=1)
        for t, y in zip(texts, labels):
            first, keyword = t.split()[0], t.rstrip(".").split()[-1]
            expected = int(first in demo.MALE) if biased and first in demo.MALE + demo.FEMALE else int(keyword in POSITIVE_WORDS)
            assert y == expected, t


@pytest.mark.parametrize("name", sorted(TEMPLATE_SETS) + ["reviews"])
def test_shipped_templates_with_every_shipped_term_are_grammatical(name):
    ts = demo.REVIEWS if name == "reviews" else TEMPLATE_SETS[name]
    for (_, base), groups in itertools.product(ts.expand(), ATTRIBUTES.values()):
        for term in itertools.chain(*groups.values()):
            text = fill(base, term)
            assert not DISAGREE.search(text) and not ARTICLE.search(text), text


def test_a_filler_after_a_takes_the_right_article():
    texts = [t for _, t in lw.audit.templates.occupations.expand()]
    assert "{person} works as an engineer." in texts and "{person} works as a nurse." in texts
    ts = lw.audit.templates.TemplateSet("t", ["A {x} met {person}, a {x}."], {"x": ["owl", "cat"]})
    assert [t for _, t in ts.expand()] == ["An owl met {person}, an owl.", "A cat met {person}, a cat."]
