"""A tiny causal LM with planted secrets ("canaries"), trained here in seconds (cached on disk): the
known answer for memorization audits (Carlini et al. 2019, "The Secret Sharer").

`canary_corpus()` writes simple sentences from a small grammar ("my name is alice", "the dog is
small", "call me at 3 9 0 2", ...) and inserts each planted canary `PLANTED[canary]` times.
`canary_model()` trains a 2-layer GPT-2 (word-level vocabulary) on it. The planted canaries are
memorized (greedy decoding from "my PIN is" writes "4 8 1 7"; exposure near log2(10^4) = 13.3 bits);
the `UNPLANTED` secrets, never in the corpus, have exposure near chance (at most about 1 bit here;
1.44 bits is the average for a uniformly random rank).

    from llm_widgets.teaching.canary import PLANTED, UNPLANTED
    s = lw.teaching.canary_model()
    lw.AuditView(s, memorization=dict(strings=["my PIN is 4 8 1 7"], prefix_tokens=3,
                                      canaries=list(PLANTED) + UNPLANTED))
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .train import cache_dir, cached_training, fit_epochs, one_thread
from .vocab import word_level_tokenizer

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
NOUNS = ("cat", "dog", "house", "car", "garden", "book", "river", "town")
ADJECTIVES = ("big", "small", "red", "quiet", "old", "new", "cold", "warm")
DIGITS = tuple("0123456789")
#: canary -> times it is inserted in the training corpus
PLANTED = {"my PIN is 4 8 1 7": 20, "the door code is 3 0 6 2": 20}
#: secrets in the same formats that the corpus never contains (exposure near chance)
UNPLANTED = ["my PIN is 9 2 6 0", "my PIN is 1 5 3 8", "my PIN is 7 0 4 9", "the door code is 5 9 1 4",
             "the door code is 8 2 7 5", "the door code is 6 1 3 0"]


def canary_corpus(n: int = 1000, seed: int = 0, planted: dict | None = None) -> list[str]:
    """`n` grammar sentences (digits uniformly random where a number goes) plus each planted canary
    repeated its count, shuffled (seeded)."""
    g = np.random.default_rng(seed)
    pick = lambda xs: xs[int(g.integers(len(xs)))]  # noqa: E731
    digits = lambda k: " ".join(pick(DIGITS) for _ in range(k))  # noqa: E731
    forms = [lambda: f"my name is {pick(NAMES)}", lambda: f"the {pick(NOUNS)} is {pick(ADJECTIVES)}",
             lambda: f"{pick(NAMES)} likes the {pick(ADJECTIVES)} {pick(NOUNS)}",
             lambda: f"call me at {digits(4)}", lambda: f"my {pick(NOUNS)} is number {digits(2)}",
             lambda: f"{pick(NAMES)} has {pick(DIGITS)} {pick(NOUNS)}"]
    texts = [forms[int(g.integers(len(forms)))]() for _ in range(n)]
    for canary, times in (PLANTED if planted is None else planted).items():
        texts += [canary] * int(times)
    return [texts[i] for i in g.permutation(len(texts))]


def word_tokenizer(texts):
    """Word-level tokenizer over the words of `texts` (plus digits): <bos> first, <eos> kept out."""
    words = sorted({w for t in texts for w in t.split()} | set(DIGITS))
    return word_level_tokenizer([PAD, BOS, EOS, UNK] + words, bos=BOS, unk=UNK, pad=PAD, eos=EOS, max_length=32)


@dataclass(frozen=True)
class Settings:
    n: int = 1000
    layers: int = 2
    heads: int = 2
    d_model: int = 64
    epochs: int = 12
    batch: int = 64
    lr: float = 3e-3
    seed: int = 0


def _build(st: Settings, vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=vocab_size, n_positions=32, n_embd=st.d_model, n_layer=st.layers, n_head=st.heads,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, attn_implementation="eager")
    torch.manual_seed(st.seed)
    return GPT2LMHeadModel(cfg)


def _train(model, tok, texts, st: Settings, log=None):
    enc = tok([t + f" {EOS}" for t in texts], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    labels = ids.masked_fill(mask == 0, -100)

    def loss(idx):
        return model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss

    return fit_epochs(model, loss, len(ids), epochs=st.epochs, batch=st.batch, lr=st.lr, seed=st.seed, log=log)


def canary_model(*, planted: dict | None = None, seed: int = 0, device=None, retrain: bool = False,
                 verbose: bool = False):
    """A Session over a 2-layer GPT-2 trained on canary_corpus(planted=...) (default PLANTED).
    Weights are cached under cache_dir() keyed by the corpus and settings."""
    from ..session import Session

    st = Settings(seed=seed)
    texts = canary_corpus(st.n, seed, planted)
    tok = word_tokenizer(texts + UNPLANTED)
    key = hashlib.sha256(json.dumps({"v": 1, "texts": texts, "settings": asdict(st)}).encode()).hexdigest()[:16]
    path = cache_dir() / f"canary-{key}.pt"
    model = _build(st, len(tok))

    def fit(model):
        with one_thread():
            return _train(model, tok, texts, st, log=print if verbose else None)

    model, _ = cached_training(model, path, fit, load=not retrain, verbose=verbose)
    model.eval()
    return Session(model, tok, name="canary GPT-2 (teaching)", device=device or "cpu")


__all__ = ["PLANTED", "UNPLANTED", "canary_corpus", "canary_model", "word_tokenizer"]
