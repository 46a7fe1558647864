"""Hidden states of every layer for many texts: batched, padded, attention-masked forward passes,
pooled per sentence or kept per token, with word labels aligned to tokens. Used by probing and
concepts (pure torch/numpy).

- level 'sentence': one row per text, the mean of the hidden states of its non-special tokens
  (pooling='mean'; pooling='first' takes the first token, e.g. [CLS]).
- level 'token': one row per real (non-special) token. Word labels (one per whitespace-separated
  word) are aligned to tokens through the tokenizer's character offsets: every sub-word token of a
  word gets the word's label; a word labelled None is skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import EmptyInputError, LLMWidgetsError, NonFiniteError
from ..execution import Program, ops, run
from .progress import Report, no_progress

LEVELS = ("sentence", "token")


@dataclass
class Activations:
    """Hidden states of every layer for the rows of a probing/concept data set."""

    states: np.ndarray  # [L+1, N, D] float32; layer 0 is the embedding output
    level: str
    texts: list[str]
    tokens: list[list[str]]  # display labels of each text's tokens
    text_index: np.ndarray  # [N] text each row comes from
    token_index: np.ndarray  # [N] token position of each row in its text (-1: sentence rows)
    types: list[str]  # [N] the type of each row: lowercased word (token) / normalised text (sentence)
    labels: list | None = None  # [N] row labels (strings) when labels were given

    @property
    def n_layers(self) -> int:
        """Blocks (`states` has one more row: the embeddings, row 0)."""
        return self.states.shape[0] - 1

    def __len__(self) -> int:
        return self.states.shape[1]


def normalise_text(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string: wrap it as [text]")
    texts = list(texts)
    if not texts:
        raise EmptyInputError("No texts given: pass a list of strings.")
    for i, tx in enumerate(texts):
        if not isinstance(tx, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(tx).__name__}")
        if not tx.strip():
            raise EmptyInputError(f"texts[{i}] is empty: remove it or give it some words.")
    return texts


def check_labels(texts: Sequence[str], labels, level: str) -> list | None:
    """Validate labels against texts (length, per-text word counts for level 'token')."""
    if level not in LEVELS:
        raise LLMWidgetsError(f"level must be 'sentence' or 'token', got {level!r}")
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) != len(texts):
        raise LLMWidgetsError(f"Got {len(labels)} labels for {len(texts)} texts: give exactly one "
                              f"{'label' if level == 'sentence' else 'list of word labels'} per text.")
    if level == "token":
        for i, (tx, lab) in enumerate(zip(texts, labels)):
            if isinstance(lab, str) or not hasattr(lab, "__len__"):
                raise LLMWidgetsError(f"labels[{i}] must be a list with one label per word for "
                                      f"level='token' (got {type(lab).__name__}).")
            n = len(_words(tx))
            if len(lab) != n:
                raise LLMWidgetsError(f"Text {i} has {n} whitespace-separated words but {len(lab)} "
                                      f"labels: {tx[:60]!r}. Give one label per word (None to skip).")
    return labels


def _encode_all(session, texts: list[str], truncate: bool):
    tok = session.tokenizer
    limit = session.max_length
    out = []
    for tx in texts:
        try:
            out.append(tok(tx, return_offsets_mapping=True, return_special_tokens_mask=True))
        except NotImplementedError:  # slow tokenizers have no offsets
            out.append(tok(tx, return_special_tokens_mask=True))
    if session.check_lengths([len(enc["input_ids"]) for enc in out], truncate=truncate, what="texts"):
        out = [{k: list(v)[:limit] for k, v in enc.items()} if len(enc["input_ids"]) > limit else enc for enc in out]
    for i, enc in enumerate(out):
        if not enc["input_ids"]:
            raise EmptyInputError(f"texts[{i}] produced no tokens.")
    return out


def _row_plan(session, texts, encs, labels, level):
    """Which (text, token) pairs become rows, their labels and types."""
    text_index, token_index, types, row_labels, tokens = [], [], [], [], []
    for i, (tx, enc) in enumerate(zip(texts, encs)):
        ids = list(enc["input_ids"])
        tokens.append(session.readable_tokens(session.tokenizer.convert_ids_to_tokens(ids)))
        special = list(enc.get("special_tokens_mask") or [0] * len(ids))
        if level == "sentence":
            text_index.append(i)
            token_index.append(-1)
            types.append(normalise_text(tx))
            if labels is not None:
                row_labels.append(labels[i])
            continue
        spans = _words(tx)
        offsets = enc.get("offset_mapping")
        for j in range(len(ids)):
            if special[j]:
                continue
            w = None
            if offsets is not None:
                s, e = offsets[j]
                if e <= s:
                    continue
                w = next((k for k, (a, b) in enumerate(spans) if a <= s < b), None)
            if w is None:
                continue
            lab = labels[i][w] if labels is not None else None
            if labels is not None and lab is None:
                continue
            text_index.append(i)
            token_index.append(j)
            types.append(tx[spans[w][0]:spans[w][1]].lower())
            row_labels.append(lab)
        if offsets is None:
            raise LLMWidgetsError("level='token' needs a fast tokenizer (character offsets) to align "
                                  "word labels with tokens; load the model with its fast tokenizer.")
    return (np.array(text_index, dtype=np.int64), np.array(token_index, dtype=np.int64), types,
            (row_labels if labels is not None else None), tokens)


def batch_plan(encs, batch_size: int) -> tuple[list[str], list[list[int]]]:
    """(the encoding keys a batch carries, the batches: lists of text indices), the texts sorted by
    length (little padding)."""
    keys = [k for k in ("input_ids", "attention_mask") if k in encs[0]]
    if any(any(e.get("token_type_ids") or []) for e in encs):  # several segments (else: see model_inputs)
        keys.append("token_type_ids")
    order = sorted(range(len(encs)), key=lambda i: len(encs[i]["input_ids"]))
    return keys, [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def padded_batch(session, encs, chunk: list[int], keys: list[str]) -> tuple[dict, int]:
    """(the texts `chunk` padded to one width, with an attention mask, on the session's device; the width)."""
    width = max(len(encs[i]["input_ids"]) for i in chunk)
    pad_id = session.tokenizer.pad_token_id or 0
    batch = {}
    for k in keys:
        fill = pad_id if k == "input_ids" else 0
        batch[k] = torch.tensor([list(encs[i][k]) + [fill] * (width - len(encs[i][k])) for i in chunk],
                                device=session.device)
    if "attention_mask" not in batch:
        batch["attention_mask"] = torch.tensor(
            [[1] * len(encs[i]["input_ids"]) + [0] * (width - len(encs[i]["input_ids"])) for i in chunk],
            device=session.device)
    return batch, width


def pooling_mask(encs, chunk: list[int], width: int, pooling: str, device=None) -> torch.Tensor:
    """[B, width] weights of the tokens of the texts `chunk` in their sentence rows: the non-special
    tokens (pooling 'mean') or the first token ('first'); a text of special tokens only uses them all."""
    mask = torch.zeros(len(chunk), width, device=device)
    for b, i in enumerate(chunk):
        special = list(encs[i].get("special_tokens_mask") or [0] * len(encs[i]["input_ids"]))
        keep = [1.0 - s for s in special] if pooling == "mean" else [1.0] + [0.0] * (len(special) - 1)
        if sum(keep) == 0:  # only special tokens: use them all
            keep = [1.0] * len(special)
        mask[b, :len(keep)] = torch.tensor(keep)
    return mask


def token_rows(chunk: list[int], rows_of: dict) -> tuple[list[int], list[int], list[int]]:
    """(batch rows, token positions, output rows) of the labelled tokens of the texts `chunk`
    (rows_of: {text: [(output row, token position)]}, from `extraction_plan`)."""
    b_idx, t_idx, r_idx = [], [], []
    for b, i in enumerate(chunk):
        for r, j in rows_of.get(i, []):
            b_idx.append(b)
            t_idx.append(j)
            r_idx.append(r)
    return b_idx, t_idx, r_idx


def text_states(encs, chunk: list[int], hs):
    """Yield (text index, (its hidden states [L+1, T, D], its special-token mask [T])) of the texts
    `chunk`, from the batch's hidden states [L+1, B, width, D]."""
    for b, i in enumerate(chunk):
        n = len(encs[i]["input_ids"])
        special = np.asarray(list(encs[i].get("special_tokens_mask") or [0] * n), dtype=bool)
        yield i, (hs[:, b, :n].cpu().numpy(), special)


def extraction_plan(session, texts, labels, level: str, pooling: str, batch_size: int, truncate: bool):
    """The checked texts, their encodings, the rows (`_row_plan`: text index, token index, types, row
    labels, tokens) and {text: [(row, token position)]} of an extraction. Shared by the native
    extract."""
    texts = check_texts(texts)
    labels = check_labels(texts, labels, level)
    if pooling not in ("mean", "first"):
        raise LLMWidgetsError(f"pooling must be 'mean' or 'first', got {pooling!r}")
    if batch_size < 1:
        raise LLMWidgetsError(f"batch_size must be >= 1, got {batch_size}")
    encs = _encode_all(session, texts, truncate)
    rows = _row_plan(session, texts, encs, labels, level)
    if level == "token" and len(rows[0]) == 0:
        raise LLMWidgetsError("No labelled tokens: every word label is None.")
    rows_of = {}
    for r, (i, j) in enumerate(zip(rows[0], rows[1])):
        rows_of.setdefault(int(i), []).append((r, int(j)))
    return texts, encs, rows, rows_of


def activations_of(states: np.ndarray, level: str, texts: list[str], rows) -> Activations:
    """The Activations of an extraction's hidden states [L+1, N, D] and rows (`extraction_plan`),
    refusing non-finite states."""
    if not np.isfinite(states).all():
        raise NonFiniteError("The model produced NaN/inf hidden states; with float16 try "
                             "dtype='float32' (or 'bfloat16').")
    text_index, token_index, types, row_labels, tokens = rows
    return Activations(states, level, texts, tokens, text_index, token_index, types, row_labels)


def _states(session, batch: dict, reduce=None, label: str = "hidden states") -> torch.Tensor:
    """Hidden states of every layer [L+1, B, T, D] (float32) of one padded batch from the base model
    (no output head), reduced per layer where the model runs by `reduce` (ops.Pool, ops.Pick)."""
    res = run(session, Program(batch, hidden=True, hidden_reduce=reduce, base_only=True, stop=True, label=label))
    return res.hidden.float()


def token_states(session, texts, *, batch_size: int = 32,
                 truncate: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per text: (hidden states of every layer and token [L+1, T, D], special-token mask [T]), from
    batched passes (the same numbers as Session.trace(text).hidden_states)."""
    texts = check_texts(texts)
    encs = _encode_all(session, texts, truncate)
    keys, chunks = batch_plan(encs, batch_size)
    out: list = [None] * len(texts)
    for chunk in chunks:
        batch, _ = padded_batch(session, encs, chunk, keys)
        hs = _states(session, batch)
        for i, pair in text_states(encs, chunk, hs):
            out[i] = pair
    return out


def extract(session, texts, labels=None, *, level: str = "sentence", pooling: str = "mean",
            batch_size: int = 32, truncate: bool = False, report: Report = no_progress) -> Activations:
    """Hidden states of all layers for many texts: one batched forward pass per `batch_size` texts
    (texts sorted by length, padded, attention-masked), pooled (sentence level) or the labelled
    tokens' rows picked (token level) where the model runs."""
    texts, encs, rows, rows_of = extraction_plan(session, texts, labels, level, pooling, batch_size, truncate)
    keys, chunks = batch_plan(encs, batch_size)
    states = None
    done = 0
    for step, chunk in enumerate(chunks):
        batch, width = padded_batch(session, encs, chunk, keys)
        if level == "sentence":
            got = _states(session, batch, ops.Pool(pooling_mask(encs, chunk, width, pooling)))
            r_idx = list(chunk)
        else:
            b_idx, t_idx, r_idx = token_rows(chunk, rows_of)
            if not r_idx:
                continue
            got = _states(session, batch, ops.Pick(torch.tensor(b_idx), torch.tensor(t_idx)))
        if states is None:
            states = np.zeros((got.shape[0], len(rows[0]), got.shape[-1]), dtype=np.float32)
        states[:, r_idx] = got.cpu().numpy()
        done += len(chunk)
        report(done / len(texts), f"hidden states {done}/{len(texts)} texts ({step + 1}/{len(chunks)} runs)")
    return activations_of(states, level, texts, rows)


# -- probes ------------------------------------------------------------------------------------
