"""Memorization and privacy leakage of causal LMs.

For strings a model should not have learnt by heart (a secret, a line of its training data):
- exact continuation: from the first `prefix_tokens` tokens, greedy decoding of as many tokens as
  the rest has; the string is extracted when the decoded tokens are exactly the rest's.
- log-likelihood percentile: log p(rest | prefix) against look-alikes with the same prefix and a
  rest of the same length: the rest's own tokens shuffled ('shuffle', default) or tokens drawn
  uniformly from the vocabulary ('sample'). Percentile = share of look-alikes less likely than the
  string (ties count half): near 1 for a memorized string, spread around 0.5 for an unseen one
  under 'shuffle' ('sample' draws are rarely fluent, so any fluent string scores high there).
- exposure of canaries (Carlini et al. 2019, "The Secret Sharer"): every digit of a canary is its
  secret; the candidate secrets R are every way to write those digits (10^k for k digits) that
  tokenizes differently (candidates that tokenize alike count once; a canary that tokenizes like
  another candidate is refused: tokens.py), ranked by the model's log-likelihood of the whole string.
  exposure = log2 |R| - log2 rank, rank = how many candidates are at least as likely as the canary
  (1: the most likely; a tie ranks the canary last among the tied). A planted canary the model
  memorized reaches log2 |R|; a secret it never saw averages about 1.44 bits (E[log2 |R|/rank] for
  a uniform rank).
- length: strings longer than the model's positions follow Session.check_lengths (an
  InputTooLongError naming them; truncate=True tests their first tokens and `notice` says so).
  Canaries longer than that are always an error: a cut could drop their secret.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ...checks import integer, names
from ...errors import DoesNotApplyError, LLMWidgetsError
from ..progress import Report, no_progress
from .robustness import wilson
from .tokens import canary_candidates, token_ids
from ...execution import Program, run

DEFAULT_MEMORIZATION = {"strings": None, "prefix_tokens": 4, "lookalikes": 100, "lookalike": "shuffle",
                        "canaries": None, "seed": 0}
MAX_CANDIDATES = 100_000  # exposure enumerates every candidate secret: at most 5 digits
BATCH = 512


@dataclass
class MemorizationResult:
    strings: list[str]
    prefix_tokens: int
    exact: np.ndarray  # [S] bool: greedy decoding from the prefix reproduces the rest
    matched: np.ndarray  # [S] int: leading tokens of the rest reproduced
    rest_tokens: np.ndarray  # [S] int
    continuation: list[str]  # [S] what greedy decoding wrote
    loglik: np.ndarray  # [S] log p(rest | prefix), nats
    percentile: np.ndarray  # [S] share of look-alikes less likely (ties half)
    lookalike: str
    n_lookalikes: int
    canaries: list[dict] = field(default_factory=list)  # exposure(): canary, secret, candidates, merged, rank, ...
    summary: dict = field(default_factory=dict)
    notice: str = ""  # strings cut to the model's positions (truncate=True)

    def table(self) -> list[dict]:
        return [{"string": s, "exact": bool(self.exact[i]), "matched": int(self.matched[i]),
                 "rest_tokens": int(self.rest_tokens[i]), "continuation": self.continuation[i],
                 "loglik": float(self.loglik[i]), "percentile": float(self.percentile[i])}
                for i, s in enumerate(self.strings)]


def check_memorization(spec) -> dict:
    if not isinstance(spec, dict):
        raise LLMWidgetsError("memorization must be a dict, e.g. dict(strings=[...], prefix_tokens=4, "
                              "canaries=['my PIN is 4 8 1 7']).")
    unknown = set(spec) - set(DEFAULT_MEMORIZATION)
    if unknown:
        raise LLMWidgetsError(f"Unknown memorization settings {sorted(unknown)}; known: "
                              f"{sorted(DEFAULT_MEMORIZATION)}.")
    st = {**DEFAULT_MEMORIZATION, **spec}
    st["strings"] = names(st["strings"], "memorization['strings']") if st["strings"] is not None else []
    st["canaries"] = names(st["canaries"], "memorization['canaries']") if st["canaries"] is not None else []
    if not st["strings"] and not st["canaries"]:
        raise LLMWidgetsError("memorization needs strings=[...] (exact continuation, likelihood percentile) "
                              "and/or canaries=[...] (exposure).")
    for s in st["strings"] + st["canaries"]:
        if not isinstance(s, str) or not s.strip():
            raise LLMWidgetsError(f"memorization strings and canaries must be non-empty strings, got {s!r}")
    st["prefix_tokens"] = integer(st["prefix_tokens"], "memorization['prefix_tokens']", low=0)
    st["lookalikes"] = integer(st["lookalikes"], "memorization['lookalikes']", low=10)
    st["seed"] = integer(st["seed"], "memorization['seed']", low=0)
    if st["lookalike"] not in ("shuffle", "sample"):
        raise LLMWidgetsError(f"memorization['lookalike'] must be 'shuffle' or 'sample', got {st['lookalike']!r}")
    for c in st["canaries"]:
        k = len(re.findall(r"\d", c))
        if k == 0:
            raise LLMWidgetsError(f"Canary {c!r} has no digit: its digits are the secret whose exposure is measured.")
        if 10 ** k > MAX_CANDIDATES:
            raise LLMWidgetsError(f"Canary {c!r} has {k} digits: 10^{k} candidate secrets to rank; use at most "
                                  f"{int(math.log10(MAX_CANDIDATES))} digits.")
    return st


def _ids(session, text: str) -> tuple[list[int], int]:
    """Token ids without the special tokens the tokenizer appends, and how many it puts first (BOS)."""
    return token_ids(session, [text])[0]


def string_ids(session, strings: list[str], prefix_tokens: int,
               truncate: bool) -> tuple[list[tuple[list[int], int]], str]:
    """Each memorization string's ids (cut to the model's positions with truncate) and where its
    prefix ends, and the notice of what was cut; an error where a string is too long (without
    truncate) or no token is left to test."""
    got = [_ids(session, text) for text in strings]
    notice = session.check_lengths([len(ids) for ids, _ in got], truncate=truncate, what="memorization['strings']")
    limit = session.max_length
    out = []
    for text, (ids, lead) in zip(strings, got):
        ids, cut = ids[:limit] if limit else ids, lead + prefix_tokens
        if cut < 1:
            raise LLMWidgetsError(f"{text!r}: this tokenizer adds no start token, so the first token has no "
                                  "context; use prefix_tokens >= 1.")
        if len(ids) <= cut:
            raise LLMWidgetsError(f"{text!r} has {len(ids) - lead} tokens: nothing is left after "
                                  f"prefix_tokens={prefix_tokens}. Use longer strings or a shorter prefix.")
        out.append((ids, cut))
    return out, notice


def check_texts(session, spec, truncate: bool = False) -> None:
    """The checks that need the tokenizer, before any forward: every string has tokens after its
    prefix and fits the model (or truncate), every canary's secret survives tokenization and fits."""
    st = check_memorization(spec)
    string_ids(session, st["strings"], st["prefix_tokens"], truncate)
    for c in st["canaries"]:
        canary_candidates(session, c)


def _forward(session, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For right-padded sequences: (log-prob of each next token [B, T-1], the next-token log-probs
    after the last token [B, V], mask [B, T]), float32 on the CPU."""
    pad = session.tokenizer.pad_token_id if session.tokenizer.pad_token_id is not None else 0
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    dev = session.device
    with torch.no_grad():
        logits = run(session, Program({"input_ids": ids.to(dev), "attention_mask": mask.to(dev)}, logits="all",
                                      label="memorization: log-probs")).logits
        logp = torch.log_softmax(logits.float(), -1)
        tok_lp = logp[:, :-1].gather(2, ids[:, 1:, None].to(dev))[..., 0]
        last = logp[torch.arange(len(seqs), device=dev), mask.sum(1).to(dev) - 1]
    return tok_lp.cpu(), last.cpu(), mask


def _batch(session, T: int) -> int:
    """Sequences per forward: at most BATCH, and about 64M log-prob values ([B, T, vocab] float32)."""
    vocab = len(session.tokenizer)
    return int(max(1, min(BATCH, 64_000_000 // max(1, T * vocab))))


def sequence_logliks(session, seqs: list[list[int]], start, report: Report = no_progress) -> np.ndarray:
    """log p(seq[start:] | seq[:start]) per sequence (nats), in padded batches. start: one int or
    one per sequence, in 1..len(seq) - 1 (the first token has no prediction).

    Sequences that differ only in their last token share one forward: the log-likelihood of the
    shared part plus the log-prob of each last token at the final position (for canaries whose
    secret ends the string this is 10x fewer forwards)."""
    starts = [start] * len(seqs) if isinstance(start, int) else list(start)
    if any(st < 1 or st > len(s) - 1 for st, s in zip(starts, seqs)):
        raise LLMWidgetsError("every start must be in 1..len(sequence) - 1: at least one token to score, "
                              "and the first token has no prediction")
    groups: dict[tuple, list[int]] = {}
    for i, (s, st) in enumerate(zip(seqs, starts)):
        groups.setdefault((tuple(s[:-1]), st), []).append(i)
    keys = sorted(groups, key=lambda k: len(k[0]))  # similar lengths share a batch: little padding
    out = np.empty(len(seqs))
    b = 0
    while b < len(keys):
        chunk = keys[b:b + _batch(session, len(keys[min(b + BATCH, len(keys)) - 1][0]))]
        tok_lp, last, mask = _forward(session, [list(k[0]) for k in chunk])
        keep = mask[:, 1:].clone().float()
        for r, (_, st) in enumerate(chunk):
            keep[r, : max(0, st - 1)] = 0  # token t is predicted at position t - 1
        head_ll = (tok_lp * keep).sum(1).double()
        for r, key in enumerate(chunk):  # + the last token, read off the distribution after the shared part
            for i in groups[key]:
                out[i] = float(head_ll[r]) + float(last[r, seqs[i][-1]])
        b += len(chunk)
        report(b / len(keys), "")
    if not np.isfinite(out).all():
        from ...errors import NonFiniteError

        raise NonFiniteError("The model returned non-finite log-probabilities; load it with dtype='float32'.")
    return out


def greedy(session, prefix: list[int], n: int) -> list[int]:
    """n tokens greedily decoded after `prefix`: one full forward per token (no KV cache, whose API
    differs between transformers versions; no generation config, whose end-of-text rules would
    change what greedy means)."""
    ids = list(prefix)
    for _ in range(n):
        logits = run(session, Program({"input_ids": torch.tensor([ids], device=session.device)}, logits=[-1],
                                      extra={"use_cache": False}, label="memorization: greedy")).logits
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prefix):]


def _lookalikes(rest: list[int], kind: str, n: int, vocab: list[int], rng, text: str) -> list[list[int]]:
    if kind == "sample":
        return [list(rng.choice(vocab, size=len(rest))) for _ in range(n)]
    if len(set(rest)) < 2:
        raise LLMWidgetsError(f"{text!r}: the tokens after the prefix cannot be shuffled into a different "
                              "order (fewer than two distinct tokens). Use a shorter prefix_tokens, a longer "
                              "string, or lookalike='sample'.")
    out = []
    while len(out) < n:
        p = list(np.asarray(rest)[rng.permutation(len(rest))])
        if p != rest:
            out.append(p)
    return out


def exposure(session, canary: str, report: Report = no_progress) -> dict:
    """Exposure of `canary` among every string that differs from it only in its digits and tokenizes
    differently (see the module docstring): {canary, secret, candidates (distinct tokenizations),
    merged (candidate strings that tokenize like another), rank, exposure, max_exposure}."""
    c = canary_candidates(session, canary)
    if c.leads[c.mine] == 0 and re.match(r"\s*\d", canary):
        raise LLMWidgetsError(f"Canary {canary!r} starts with its secret and this tokenizer adds no start token: "
                              "the first token has no prediction. Put words before the secret.")
    ll = sequence_logliks(session, c.seqs, [max(1, lead) for lead in c.leads], report)
    rank = int((ll >= ll[c.mine]).sum())  # a tie ranks the canary last among the tied
    n = len(c.seqs)
    return {"canary": canary, "secret": "".join(re.findall(r"\d", canary)), "candidates": n,
            "merged": c.written - n, "rank": rank, "exposure": math.log2(n) - math.log2(rank),
            "max_exposure": math.log2(n)}


def run_memorization(session, spec, report: Report = no_progress, lo: float = 0.0, hi: float = 1.0, *,
                     truncate: bool = False) -> MemorizationResult:
    """Exact continuation, likelihood percentile and canary exposure (see the module docstring).
    truncate: test strings longer than the model's positions on their first tokens (else an error)."""
    from ..distill import small_model_threads

    st = check_memorization(spec)
    if session is None or session.kind != "decoder":
        raise DoesNotApplyError("Memorization tests need a causal LM Session (greedy decoding and "
                                "next-token likelihoods).")
    rng = np.random.default_rng(st["seed"])
    tok = session.tokenizer
    special = set(tok.all_special_ids)
    vocab = [i for i in range(len(tok)) if i not in special] if st["lookalike"] == "sample" else []
    strings, P = st["strings"], st["prefix_tokens"]
    n_all = len(strings) + len(st["canaries"])
    exact, matched, rest_n, cont, ll, pct = [], [], [], [], [], []
    tested, notice = string_ids(session, strings, P, truncate)
    with small_model_threads(session.model):
        for k, (text, (ids, cut)) in enumerate(zip(strings, tested)):
            prefix, rest = ids[:cut], ids[cut:]
            gen = greedy(session, prefix, len(rest))
            same = [a == b for a, b in zip(gen, rest)]
            exact.append(all(same))
            matched.append(next((i for i, s in enumerate(same) if not s), len(rest)))
            rest_n.append(len(rest))
            cont.append(tok.decode(gen))
            looks = _lookalikes(rest, st["lookalike"], st["lookalikes"], vocab, rng, text)
            vals = sequence_logliks(session, [ids] + [prefix + r for r in looks], cut)
            ll.append(vals[0])
            pct.append(float(((vals[1:] < vals[0]).sum() + 0.5 * (vals[1:] == vals[0]).sum()) / len(looks)))
            report(lo + (hi - lo) * (k + 1) / n_all, f"memorization: {k + 1}/{len(strings)} strings")
        canaries = []
        for k, c in enumerate(st["canaries"]):
            a = lo + (hi - lo) * (len(strings) + k) / n_all
            b = lo + (hi - lo) * (len(strings) + k + 1) / n_all
            step = lambda f, s="": report(a + (b - a) * f, f"exposure of canary {k + 1}")  # noqa: E731
            canaries.append(exposure(session, c, step))
    res = MemorizationResult(strings=strings, prefix_tokens=P, exact=np.array(exact, bool),
                             matched=np.array(matched, np.int64), rest_tokens=np.array(rest_n, np.int64),
                             continuation=cont, loglik=np.array(ll), percentile=np.array(pct),
                             lookalike=st["lookalike"], n_lookalikes=st["lookalikes"], canaries=canaries,
                             notice=notice)
    if strings:
        k = int(res.exact.sum())
        lo_, hi_ = wilson(k, len(strings))
        res.summary = {"strings": len(strings), "extracted": k, "exact_rate": k / len(strings), "exact_rate_lo": lo_,
                       "exact_rate_hi": hi_, "mean_percentile": float(res.percentile.mean())}
    return res
