"""The token ids the memorization tests score, and what they refuse.

- ids: the tokenizer's output with the special tokens it adds at the end (EOS/SEP) dropped and
  those it adds at the start (BOS/CLS) counted; tokens of the text itself stay, special or not (an
  unknown word's <unk> is part of the string).
- length: a canary (or one of its candidates) longer than the model's positions is an
  InputTooLongError, truncate or not: its secret may be in the part cut off.
- canary candidates: every way to write the canary's digits, each digit in the canary's own
  script (an Arabic-Indic canary gets Arabic-Indic candidates). Candidates that tokenize alike are
  one candidate (the model cannot tell them apart); a canary whose own tokens are shared with
  another candidate is refused: its secret does not survive tokenization.
"""
from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

from ...errors import InputTooLongError, LLMWidgetsError


def token_ids(session, texts: list[str]) -> list[tuple[list[int], int]]:
    """(ids without the special tokens added at the end, how many special tokens were added at the
    start) per text."""
    enc = session.tokenizer(list(texts), return_special_tokens_mask=True)
    out = []
    for ids, added in zip(enc["input_ids"], enc["special_tokens_mask"]):
        ids, added = list(ids), list(added)
        while len(ids) > 1 and added[-1]:
            ids.pop()
            added.pop()
        lead = next((i for i, a in enumerate(added) if not a), len(added))
        out.append((ids, lead))
    return out


@dataclass
class Candidates:
    """The distinct token sequences of a canary's candidate secrets."""

    seqs: list[list[int]]  # one per distinct tokenization
    leads: list[int]  # special tokens the tokenizer put first, per sequence
    mine: int  # the canary's own sequence
    written: int  # candidate strings (10^digits), before merging those that tokenize alike


def candidates(canary: str) -> list[str]:
    """Every string that differs from `canary` only in its digits, digits in the canary's own
    script (Unicode decimal digits come in runs 0..9). The canary itself is among them."""
    spots = [m.start() for m in re.finditer(r"\d", canary)]
    zeros = [ord(canary[p]) - unicodedata.decimal(canary[p]) for p in spots]
    out = []
    for digits in itertools.product(range(10), repeat=len(spots)):
        chars = list(canary)
        for p, z, d in zip(spots, zeros, digits):
            chars[p] = chr(z + d)
        out.append("".join(chars))
    return out


def canary_candidates(session, canary: str) -> Candidates:
    """The canary's candidates as distinct token sequences; an error when the canary's secret does
    not survive tokenization or a candidate is longer than the model takes."""
    cands = candidates(canary)
    tokenized = token_ids(session, cands)
    mine = tuple(tokenized[cands.index(canary)][0])
    alike = [c for c, (ids, _) in zip(cands, tokenized) if tuple(ids) == mine]
    if len(alike) > 1:
        tokens = session.tokenizer.convert_ids_to_tokens(list(mine))
        raise LLMWidgetsError(
            f"Canary {canary!r}: its secret does not survive tokenization. {len(alike)} of its {len(cands)} "
            f"candidate secrets (e.g. {alike[0]!r} and {alike[1]!r}) tokenize exactly as it does, to {tokens}, "
            "so no model can tell them apart and its exposure would measure nothing. Write the digits so the "
            "tokenizer keeps each one (e.g. ASCII digits as separate words: 'my PIN is 4 8 1 7').")
    distinct = dict((tuple(ids), lead) for ids, lead in tokenized)
    n, limit = max(map(len, distinct)), session.max_length
    if limit is not None and n > limit:
        raise InputTooLongError(f"Canary {_short(canary)} (its longest candidate) is {n} tokens long; {session.name} "
                                f"accepts at most {limit}. Shorten it (canaries are never truncated: the cut "
                                "could drop their secret).")
    return Candidates(seqs=[list(s) for s in distinct], leads=list(distinct.values()),
                      mine=list(distinct).index(mine), written=len(cands))


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
