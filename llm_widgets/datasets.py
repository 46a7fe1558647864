"""Built-in probing datasets, generated from a small templated English grammar (no downloads).

Every generator is seeded and returns a `Dataset` whose labels are known by construction:

- sentence level (one label per text): `tense` (past / present), `subject_number`
  (singular / plural subject), `negation` (negated / affirmative);
- token level (one label per whitespace-separated word; every sub-word token of a word gets the
  word's label): `part_of_speech` (noun / verb / other) and `position_bucket` (which third of the
  sentence the word is in).

Sentences follow ``The [adj] SUBJECT VERB the [adj] OBJECT [place]``. Classes are balanced (labels
alternate), all other slots are drawn at random, so a property can only be read from the words that
carry it. Some words are both nouns and verbs ("watch", "paint", "light"), so part of speech is not
a lookup of word identity. Token-level texts have no final period, so every word is one label.

    >>> ds = lw.datasets.tense(200)
    >>> lw.ProbeView(s, ds.texts, ds.labels)
    >>> lw.ProbeView(s, *lw.datasets.part_of_speech(120).args, level="token")
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Dataset", "tense", "subject_number", "negation", "part_of_speech", "position_bucket",
           "ALL"]

# (singular, plural)
SUBJECTS = [("cat", "cats"), ("dog", "dogs"), ("teacher", "teachers"), ("child", "children"),
            ("farmer", "farmers"), ("student", "students"), ("doctor", "doctors"), ("bird", "birds"),
            ("girl", "girls"), ("boy", "boys"), ("king", "kings"), ("artist", "artists"),
            ("woman", "women"), ("man", "men"), ("neighbour", "neighbours"), ("pilot", "pilots")]
OBJECTS = ["ball", "book", "letter", "window", "song", "car", "watch", "paint", "light", "garden",
           "river", "house", "apple", "map", "picture", "door"]
# (base, third person singular present, past)
VERBS = [("see", "sees", "saw"), ("find", "finds", "found"), ("take", "takes", "took"),
         ("write", "writes", "wrote"), ("watch", "watches", "watched"), ("open", "opens", "opened"),
         ("like", "likes", "liked"), ("carry", "carries", "carried"), ("build", "builds", "built"),
         ("paint", "paints", "painted"), ("chase", "chases", "chased"), ("light", "lights", "lit"),
         ("hold", "holds", "held"), ("move", "moves", "moved"), ("bring", "brings", "brought"),
         ("draw", "draws", "drew")]
ADJECTIVES = ["old", "small", "happy", "quiet", "red", "tall", "young", "strange", "", "", "", ""]
PLACES = ["in the garden", "near the river", "at the station", "after dinner", "by the door",
          "on the hill", "", "", ""]


@dataclass
class Dataset:
    """Texts with known labels. `labels` is one label per text (level 'sentence') or, per text, a
    list with one label per whitespace-separated word (level 'token')."""

    name: str
    texts: list[str]
    labels: list
    level: str
    description: str
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def args(self) -> tuple[list[str], list]:
        """(texts, labels), to unpack into ProbeView(session, *ds.args)."""
        return self.texts, self.labels

    def to_frame(self):
        """A pandas DataFrame with columns `text` and `label` (one row per text)."""
        import pandas as pd

        return pd.DataFrame({"text": self.texts, "label": self.labels})


def _sentence(rng: random.Random, *, plural: bool, past: bool, negated: bool = False,
              period: bool = True) -> tuple[str, list[str]]:
    """One sentence and the part of speech of each of its words."""
    subj = rng.choice(SUBJECTS)[1 if plural else 0]
    base, third, past_form = rng.choice(VERBS)
    adj1, adj2 = rng.choice(ADJECTIVES), rng.choice(ADJECTIVES)
    obj = rng.choice(OBJECTS)
    place = rng.choice(PLACES)
    tagged = [("The", "other"), (adj1, "other"), (subj, "noun")]
    if negated:
        aux = "did" if past else ("do" if plural else "does")
        tagged += [(aux, "other"), ("not", "other"), (base, "verb")]
    else:
        tagged.append((past_form if past else (base if plural else third), "verb"))
    tagged += [("the", "other"), (adj2, "other"), (obj, "noun")]
    if place:  # the place's last word is its noun ("the park", "a small town")
        pw = place.split()
        tagged += [(w, "other") for w in pw[:-1]] + [(pw[-1], "noun")]
    words = [w for w, _ in tagged if w]  # no adjective: "" dropped
    pos = [tag for w, tag in tagged if w]
    text = " ".join(words) + ("." if period else "")
    return text, pos


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an int >= 4 (two examples of each class at least), got {n!r}")


def _two_classes(fn, n: int, seed: int, classes: tuple[str, str], sentence, listed=None) -> Dataset:
    """n sentences alternating between classes[0] (even i) and classes[1] (odd i);
    sentence(rng, first) -> one sentence of the class (first: is it classes[0]). `listed`: the
    classes in the order the dataset lists them (default: `classes`)."""
    _check_n(n)
    rng = random.Random(seed)
    texts = [sentence(rng, i % 2 == 0) for i in range(n)]
    labels = [classes[i % 2] for i in range(n)]
    return Dataset(fn.__name__, texts, labels, "sentence", fn.__doc__.strip(), list(listed or classes))


def tense(n: int = 200, seed: int = 0) -> Dataset:
    """Sentence tense: 'past' or 'present' (simple past vs simple present of the main verb)."""
    return _two_classes(tense, n, seed, ("past", "present"),
                        lambda rng, past: _sentence(rng, plural=rng.random() < 0.5, past=past)[0])


def subject_number(n: int = 200, seed: int = 0) -> Dataset:
    """Subject number: 'singular' or 'plural' subject noun (tense drawn at random, so in the past
    tense only the noun itself carries the number)."""
    return _two_classes(subject_number, n, seed, ("singular", "plural"),
                        lambda rng, singular: _sentence(rng, plural=not singular, past=rng.random() < 0.5)[0])


def negation(n: int = 200, seed: int = 0) -> Dataset:
    """Negation: 'negated' (do/does/did not + verb) or 'affirmative'."""
    return _two_classes(negation, n, seed, ("negated", "affirmative"),
                        lambda rng, neg: _sentence(rng, plural=rng.random() < 0.5, past=rng.random() < 0.5,
                                                   negated=neg)[0],
                        listed=("affirmative", "negated"))


def part_of_speech(n: int = 120, seed: int = 0) -> Dataset:
    """Token-level part of speech: each word is 'noun', 'verb' or 'other' (determiners, adjectives,
    auxiliaries, prepositions). 'watch', 'paint' and 'light' occur both as nouns and as verbs."""
    _check_n(n)
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        text, pos = _sentence(rng, plural=rng.random() < 0.5, past=rng.random() < 0.5,
                              negated=rng.random() < 0.25, period=False)
        texts.append(text)
        labels.append(pos)
    return Dataset("part_of_speech", texts, labels, "token", part_of_speech.__doc__.strip(),
                   ["noun", "other", "verb"])


def position_bucket(n: int = 120, seed: int = 0, buckets: int = 3) -> Dataset:
    """Token-level position: each word is labelled with the bucket of its relative position,
    floor(buckets * word_index / number_of_words), as 'start' / 'middle' / 'end' (3 buckets) or
    'b0'..'b{k-1}'."""
    _check_n(n)
    if buckets < 2:
        raise ValueError(f"buckets must be >= 2, got {buckets}")
    names = ["start", "middle", "end"] if buckets == 3 else [f"b{i}" for i in range(buckets)]
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        text, pos = _sentence(rng, plural=rng.random() < 0.5, past=rng.random() < 0.5, period=False)
        m = len(pos)
        texts.append(text)
        labels.append([names[buckets * j // m] for j in range(m)])
    return Dataset("position_bucket", texts, labels, "token", position_bucket.__doc__.strip(), names)


ALL = {"tense": tense, "subject_number": subject_number, "negation": negation,
       "part_of_speech": part_of_speech, "position_bucket": position_bucket}
