"""Tiny sequence classifiers with a known decision rule, trained here in seconds (cached on disk).

`keyword_dataset(n)` generates sentences of neutral filler words in which exactly one keyword, at a
random position, decides the label: a positive keyword ("great", "excellent", ...) -> POSITIVE, a
negative one ("terrible", "awful", ...) -> NEGATIVE. A model that fits this data can only be using
the keyword, so an attribution method that works must put the keyword on top.

    s = lw.teaching.keyword_classifier()        # Session; a few seconds the first time, then cached
    lw.AttributionView(s, "the movie was great today", target="POSITIVE")

`train_classifier(texts, labels)` trains the same tiny BERT (2 layers, 2 heads, hidden 64, MiniLM's
WordPiece tokenizer) on any labelled texts.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .train import cache_dir, cached_training, fit_epochs, frozen, one_thread

POSITIVE_WORDS = ("great", "excellent", "wonderful", "superb", "brilliant")
NEGATIVE_WORDS = ("terrible", "awful", "horrible", "dreadful", "poor")
FILLER_WORDS = ("the", "a", "movie", "film", "was", "is", "and", "it", "this", "that", "story", "plot",
                "actor", "scene", "today", "really", "very", "quite", "some", "then", "of", "on", "in",
                "with", "we", "they", "watched", "saw", "show", "book", "music", "night")
KEYWORD_LABELS = ("NEGATIVE", "POSITIVE")  # label 0, label 1


def keyword_dataset(n: int, seed: int = 0, *, min_words: int = 4,
                    max_words: int = 12) -> tuple[list[str], list[int], list[int]]:
    """`n` generated sentences where one keyword decides the label.

    Returns (texts, labels, positions): labels[i] is 1 (POSITIVE) when the keyword is one of
    POSITIVE_WORDS and 0 (NEGATIVE) for NEGATIVE_WORDS; positions[i] is the keyword's word index,
    i.e. ``texts[i].split()[positions[i]]`` is the keyword. Every other word is filler.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 1 <= min_words <= max_words:
        raise ValueError("need 1 <= min_words <= max_words")
    g = np.random.default_rng(seed)
    texts, labels, positions = [], [], []
    for _ in range(n):
        length = int(g.integers(min_words, max_words + 1))
        words = [FILLER_WORDS[i] for i in g.integers(0, len(FILLER_WORDS), size=length)]
        label = int(g.integers(0, 2))
        pool = POSITIVE_WORDS if label == 1 else NEGATIVE_WORDS
        pos = int(g.integers(0, length))
        words[pos] = pool[int(g.integers(0, len(pool)))]
        texts.append(" ".join(words))
        labels.append(label)
        positions.append(pos)
    return texts, labels, positions


KEYWORD_POOLER_PENALTY = 3.0  # keeps the keyword classifier unsaturated: gradient methods find the keyword


@dataclass(frozen=True)
class Settings:
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 128
    epochs: int = 3
    batch: int = 32
    lr: float = 3e-3
    embedding_std: float = 0.5
    # weight of a penalty on the squared pre-tanh activations of BERT's pooler (see _train)
    pooler_penalty: float = 0.0
    seed: int = 0


def _tokenizer():
    from transformers import AutoTokenizer

    from ..loading import default_model_path

    return AutoTokenizer.from_pretrained(str(default_model_path()))


def _build(st: Settings, num_labels: int, label_names: list[str], vocab_size: int, pad_id: int):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=vocab_size, hidden_size=st.hidden, num_hidden_layers=st.layers,
                     num_attention_heads=st.heads, intermediate_size=st.intermediate,
                     max_position_embeddings=512, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, num_labels=num_labels, pad_token_id=pad_id,
                     id2label={i: n for i, n in enumerate(label_names)},
                     label2id={n: i for i, n in enumerate(label_names)}, attn_implementation="eager")
    torch.manual_seed(st.seed)
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():  # word vectors are frozen during training (see _train): make them distinct
        model.bert.embeddings.word_embeddings.weight.normal_(0.0, st.embedding_std)
    return model


def _label_ids(labels, label_names):
    """Labels as ints; string labels are looked up in label_names (sorted unique when not given)."""
    labels = list(labels)
    if labels and all(isinstance(x, str) for x in labels):
        names = list(label_names) if label_names is not None else sorted(set(labels))
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise ValueError(f"labels {unknown} are not in label_names {names}")
        return [names.index(x) for x in labels], names
    try:
        ids = [int(x) for x in labels]
    except (TypeError, ValueError):
        raise ValueError("labels must be all ints (class indices) or all strings (class names)") from None
    if any(i < 0 for i in ids):
        raise ValueError("class indices must be >= 0")
    k = max(ids) + 1 if ids else 0
    names = list(label_names) if label_names is not None else [f"LABEL_{i}" for i in range(max(k, 2))]
    if k > len(names):
        raise ValueError(f"label index {k - 1} has no name: label_names has {len(names)} entries")
    return ids, names


def _key(texts, labels, names, st: Settings) -> str:
    blob = json.dumps({"v": 1, "texts": list(texts), "labels": list(labels), "names": names,
                       "settings": asdict(st)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _train(model, tok, texts, labels, st: Settings, log=None):
    enc = tok(list(texts), padding=True, return_tensors="pt")
    y = torch.tensor(labels)
    # Keep the pooler's tanh out of saturation (penalty on its squared pre-activations). Without it
    # the model drives the pooler to |pre-tanh| ~2.3 (a quarter of the units past tanh 0.99) and is
    # ~99.9% sure: the logit is nearly flat around every input, so local-gradient attributions
    # (grad x input, saliency) put the keyword on top in only ~52% / ~67% of held-out sentences.
    # With it: |pre-tanh| ~0.15, ~95% confidence, still ~100% accuracy, and every attribution method
    # (gradients included) finds the keyword in held-out sentences (seeds 0-5 checked).
    pre = []

    def loss(idx):
        out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx],
                    token_type_ids=enc["token_type_ids"][idx] if "token_type_ids" in enc else None,
                    labels=y[idx])
        return out.loss + st.pooler_penalty * pre.pop().pow(2).mean(), out.loss

    hook = model.bert.pooler.dense.register_forward_hook(lambda m, i, o: pre.append(o))
    # The word embeddings stay at their seeded random values: training all 30k rows would make each
    # optimiser step ~5x slower, and random 64-d vectors (std 0.5) already tell words apart.
    try:
        with frozen(model.get_input_embeddings().weight):
            fit_epochs(model, loss, len(y), epochs=st.epochs, batch=st.batch, lr=st.lr, seed=st.seed, log=log)
    finally:
        hook.remove()
    return model


def train_classifier(texts, labels, *, label_names=None, seed: int = 0, epochs: int = 3,
                     pooler_penalty: float = 0.0, lr: float = Settings.lr, cache: bool = True, device=None,
                     verbose: bool = False):
    """Train a tiny BertForSequenceClassification (2 layers, 2 heads, hidden 64, MiniLM's tokenizer)
    on `texts` / `labels` (class indices or names) and return it as a Session.

    Seeded and CPU-friendly (seconds for a few thousand short texts). With cache=True the weights are
    kept under cache_dir() keyed by a hash of (texts, labels, label_names, settings), so a second
    call loads in milliseconds. `label_names` sets the model's id2label (what views show).
    `pooler_penalty` > 0 keeps the pooler's tanh out of saturation (less over-confident, so local
    gradients stay informative; see _train); the keyword classifier uses 3.0. `lr`: Adam's
    learning rate (a large one saturates the model; see saturated_keyword_classifier).
    """
    from ..loading import load

    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: pass at least one labelled example")
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not all(isinstance(x, str) and x.strip() for x in texts):
        raise ValueError("every text must be a non-empty string")
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    ids, names = _label_ids(labels, label_names)
    st = Settings(seed=seed, epochs=epochs, pooler_penalty=pooler_penalty, lr=float(lr))
    tok = _tokenizer()
    model = _build(st, len(names), names, tok.vocab_size, tok.pad_token_id)
    path = cache_dir() / f"classifier-{_key(texts, ids, names, st)}.pt"

    def fit(model):
        with one_thread():
            return _train(model, tok, texts, ids, st, log=print if verbose else None)

    model, _ = cached_training(model, path, fit, load=cache, save=cache, verbose=verbose)
    model.eval()
    session = load((model, tok), device=device or "cpu")
    session.name = f"tiny-bert classifier ({len(names)} classes, teaching)"
    return session


def keyword_classifier(seed: int = 0, *, n: int = 800, device=None,
                       pooler_penalty: float = KEYWORD_POOLER_PENALTY):
    """A tiny classifier trained on keyword_dataset(n, seed): the label is decided by one keyword
    (POSITIVE_WORDS -> POSITIVE, NEGATIVE_WORDS -> NEGATIVE). Held-out accuracy is ~100%.
    pooler_penalty=0.0 gives the saturated variant, where gradient-based attribution misses the
    keyword that occlusion and integrated gradients find (a teaching case)."""
    texts, labels, _ = keyword_dataset(n, seed=seed)
    s = train_classifier(texts, labels, label_names=list(KEYWORD_LABELS), seed=seed, device=device,
                         pooler_penalty=float(pooler_penalty))
    s.name = "keyword classifier (teaching)"
    return s


SATURATED_LR = 1e-2  # Adam's learning rate of the saturated keyword classifier (the default is 3e-3)


def saturated_keyword_classifier(seed: int = 0, *, n: int = 800, device=None):
    """The keyword classifier trained the same way (keyword_dataset(n, seed), 3 epochs) without the
    pooler penalty and at a learning rate of SATURATED_LR: its units saturate, so along the
    integrated-gradients path from the [PAD] baseline to a sentence the output sits flat and then
    jumps within a few thousandths of the path (measured: 90% of the output's total variation in
    under 0.2% of the path on held-out sentences). Uniform IG steps miss those jumps (ig_rule=
    'adaptive' finds them). It is a less accurate classifier than keyword_classifier (about 77%
    held-out for seed 0): a teaching case for attribution, not for the keyword rule."""
    texts, labels, _ = keyword_dataset(n, seed=seed)
    s = train_classifier(texts, labels, label_names=list(KEYWORD_LABELS), seed=seed, device=device,
                         pooler_penalty=0.0, lr=SATURATED_LR)
    s.name = "saturated keyword classifier (teaching)"
    return s


def accuracy(session, texts, labels, batch: int = 256) -> float:
    """Fraction of `texts` the session's classifier labels correctly (labels: class indices)."""
    right = 0
    for i in range(0, len(texts), batch):
        enc = session.tokenizer(list(texts[i:i + batch]), padding=True, return_tensors="pt").to(session.device)
        with torch.no_grad():
            pred = session.model(**enc).logits.argmax(-1).cpu()
        right += int((pred == torch.tensor(labels[i:i + batch])).sum())
    return right / len(texts)


__all__ = ["keyword_dataset", "keyword_classifier", "saturated_keyword_classifier", "train_classifier", "accuracy",
           "POSITIVE_WORDS", "NEGATIVE_WORDS", "FILLER_WORDS", "KEYWORD_LABELS"]
