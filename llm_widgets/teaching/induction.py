"""A transformer with known induction heads, trained here in seconds (and cached on disk).

`induction_model()` trains a 2-layer attention-only transformer (Llama blocks, rotary positions, the
MLPs removed) on random letter sequences in which a segment is repeated at a RANDOM offset. The only way to
predict the repeated tokens is an induction circuit: a layer-0 "previous token" head writes "the
token before me" into each position, and a layer-1 head attends from the current token to the
token *after* its earlier occurrence and copies it. A fixed offset would let a 1-layer model cheat
by position; with random offsets a 1-layer model (`layers=1`, the control) cannot do it.

    s = lw.teaching.induction_model()           # Session; a few seconds the first time, then cached
    s.trace("K q B w x y K q B w x y")
"""
from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .train import cache_dir, cached_training, fit_steps, one_thread
from .vocab import word_level_tokenizer

VOCAB = list(string.ascii_uppercase + string.ascii_lowercase)  # 52 "words", one letter each
BOS, UNK = "<bos>", "<unk>"


def letter_tokenizer():
    """Word-level tokenizer over VOCAB: 'K q B' -> <bos> K q B (whitespace-separated letters)."""
    return word_level_tokenizer([BOS, UNK] + VOCAB, bos=BOS, unk=UNK, max_length=256)


class NoMLP(nn.Module):
    """Stands in for a block's MLP: adds nothing to the residual stream (attention-only)."""

    def forward(self, x):
        return torch.zeros_like(x)


@dataclass(frozen=True)
class Settings:
    layers: int = 2
    heads: int = 4
    d_model: int = 64
    seq_len: int = 32
    steps: int = 450
    batch: int = 64
    lr: float = 3e-3
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps({"v": 2, **self.__dict__}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build(st: Settings):
    """A Llama-style decoder (rotary positions, so "the previous token" is easy to attend to) with
    the MLPs removed and the unembedding tied to the embedding."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(VOCAB) + 2, hidden_size=st.d_model, intermediate_size=st.d_model,
                      num_hidden_layers=st.layers, num_attention_heads=st.heads, num_key_value_heads=st.heads,
                      max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0,
                      pad_token_id=0, attn_implementation="eager")
    torch.manual_seed(st.seed)
    model = LlamaForCausalLM(cfg)
    for block in model.model.layers:
        block.mlp = NoMLP()
    return model


def induction_dataset(n: int = 256, seq_len: int = 32, *, min_repeat: int = 4, max_repeat: int = 10,
                      max_gap: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences of token ids ([n, seq_len], position 0 is <bos>) of random letters in which one
    segment of random length (min_repeat..max_repeat) appears twice: at a random place, then again
    after a random gap (0..max_gap), so the distance back to the earlier copy differs from sequence
    to sequence. Returns (ids, mask): mask[i, t] is True when token t is predictable from context
    (inside the second copy, after its first token)."""
    if seq_len < 2 * max_repeat + max_gap + 1:
        raise ValueError(f"seq_len {seq_len} is too short for two copies of {max_repeat} tokens "
                         f"and a gap of {max_gap}")
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, len(VOCAB) + 2, (n, seq_len), generator=g)
    ids[:, 0] = 0
    mask = torch.zeros(n, seq_len, dtype=torch.bool)
    length = torch.randint(min_repeat, max_repeat + 1, (n,), generator=g)
    gap = torch.randint(0, max_gap + 1, (n,), generator=g)
    room = seq_len - 1 - (2 * length + gap)  # free slots around the two copies
    start = 1 + (torch.rand(n, generator=g) * (room + 1)).long()
    for i in range(n):
        a, k = int(start[i]), int(length[i])
        b = a + k + int(gap[i])
        ids[i, b:b + k] = ids[i, a:a + k]
        mask[i, b + 1:b + k] = True
    return ids, mask


def _repeated_nll(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    return nll[mask[:, 1:]].mean()


def repeated_token_loss(model, ids: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean next-token cross-entropy (nats) over the predictable (repeated) tokens."""
    with torch.no_grad():
        return float(_repeated_nll(model, ids, mask))


def train(st: Settings, log=None):
    """Train a fresh model with settings `st` (seeded, CPU, seconds). Returns the model.

    The loss is taken on the predictable tokens only (the others are uniform noise), which makes
    the induction circuit form within a few hundred steps. One CPU thread: for a model this small
    that is as fast as several, and much faster when the CPU is shared."""
    model = _build(st)

    def loss(step):
        return _repeated_nll(model, *induction_dataset(st.batch, st.seq_len, seed=st.seed * 100003 + step + 1))

    with one_thread():
        return fit_steps(model, loss, st.steps, lr=st.lr, log=log, what="repeated-token loss")


def induction_model(*, layers: int = 2, heads: int = 4, d_model: int = 64, steps: int = 450,
                    seed: int = 0, device=None, retrain: bool = False, verbose: bool = False):
    """A Session over an attention-only transformer trained to copy repeated segments.

    layers=1 gives the control model, which cannot form induction heads. Weights are cached under
    cache_dir() keyed by a hash of the training settings, so later calls load in milliseconds.
    """
    from ..session import Session

    if layers < 1:
        raise ValueError("layers must be at least 1")
    st = Settings(layers=layers, heads=heads, d_model=d_model, steps=steps, seed=seed)
    path = cache_dir() / f"induction-{st.key()}.pt"
    model = _build(st)
    model, _ = cached_training(model, path, lambda _: train(st, log=print if verbose else None),
                               load=not retrain, verbose=verbose)
    model.eval()
    name = f"induction-{layers}L{heads}H (attention-only, teaching)"
    return Session(model, letter_tokenizer(), name=name, device=device or "cpu")


def repeated_prompt(period: int = 12, seed: int = 1) -> str:
    """A text of `period` random letters written twice: the standard probe for induction heads."""
    g = np.random.default_rng(seed)
    letters = [VOCAB[i] for i in g.choice(len(VOCAB), size=period, replace=False)]
    return " ".join(letters + letters)


def induction_scores(session, period: int = 12, seed: int = 1) -> np.ndarray:
    """[layers, heads] induction score on `repeated_prompt(period)` (<bos>, then `period` distinct
    letters twice): for each query in the second copy, the attention it pays to the token one
    after the earlier occurrence of its own token, averaged. 1 = a perfect induction head."""
    attn = session.trace(repeated_prompt(period, seed)).require_attentions()
    queries = np.arange(period + 1, 2 * period + 1)
    return attn[:, :, queries, queries - period + 1].mean(-1)


__all__ = ["induction_model", "induction_dataset", "induction_scores", "repeated_prompt",
           "repeated_token_loss", "letter_tokenizer", "cache_dir"]
