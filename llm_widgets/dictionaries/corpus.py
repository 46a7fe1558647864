"""Every feature over a corpus in one pass: how often it fires (dead features fire never), its top
activating contexts and a histogram of its activations; cached on disk keyed by the model's
weights, the dictionary's weights and the corpus.

    st = corpus_stats(s, sae, texts, report=print_progress)
    st.top[f]          # [n_top] (text, position, activation) of feature f's strongest tokens
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from ..compute.activations import check_texts
from ..compute.budget import memory_budget
from ..compute.corpus_top import RunningTop
from ..compute.progress import Report, no_progress
from ..compute.tuned_lens_train import weights_key
from ..teaching.train import cache_dir
from .activations import site_activations

EDGES = np.logspace(-3, 3, 25)  # histogram bins of positive activations (log-spaced), clamped at the ends


@dataclass
class CorpusStats:
    """Per feature over the corpus: `fires` [F] tokens where it is active, `max` [F], the `n_top`
    strongest tokens as `top_text`, `top_pos`, `top_value` [F, n_top] (text -1: fewer active),
    `hist` [F, 24] counts of its positive activations in the bins `EDGES`; `n_tokens` in all and
    the corpus's `tokens` per text (for showing contexts)."""

    fires: np.ndarray
    max: np.ndarray
    top_text: np.ndarray
    top_pos: np.ndarray
    top_value: np.ndarray
    hist: np.ndarray
    n_tokens: int
    tokens: list

    @property
    def dead(self) -> np.ndarray:
        """Indices of the features that never fire on the corpus."""
        return np.flatnonzero(self.fires == 0)


def _key(session, dictionary, texts, n_top) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": 1, "model": weights_key(session.model), "texts": texts, "n_top": n_top,
                         "site": str(dictionary.site)}).encode())
    w = dictionary.weights
    for t in (w.W_enc, w.b_enc, w.W_dec, w.b_dec, w.threshold, w.b_gate, w.r_mag):
        if t is not None:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(f"{w.activation}|{w.k}|{w.normalize}|{w.b_in is not None}".encode())
    return h.hexdigest()[:20]


def corpus_stats(session, dictionary, texts, *, n_top: int = 8, cache: bool = True,
                 report: Report = no_progress) -> CorpusStats:
    """Feature statistics over `texts` (one text at a time through the model, features in chunks
    under the memory budget), cached under lw.teaching.cache_dir() unless cache=False."""
    texts = check_texts(texts)
    path = cache_dir() / f"features-{_key(session, dictionary, texts, n_top)}.npz"
    if cache and path.exists():
        z = np.load(path, allow_pickle=False)
        toks = json.loads(str(z["tokens"]))
        return CorpusStats(fires=z["fires"], max=z["max"], top_text=z["top_text"], top_pos=z["top_pos"],
                           top_value=z["top_value"], hist=z["hist"], n_tokens=int(z["n_tokens"]), tokens=toks)
    dictionary.check(session)
    F = dictionary.n_features
    fires = torch.zeros(F, dtype=torch.long)
    mx = torch.zeros(F)
    top = RunningTop(F, n_top)
    hist = torch.zeros(F, len(EDGES) - 1, dtype=torch.long)
    edges = torch.tensor(EDGES[1:-1], dtype=torch.float32)
    budget = memory_budget(session)
    n_tokens, tokens = 0, []
    for i, text in enumerate(texts):
        report(i / len(texts), f"features over the corpus: text {i + 1}/{len(texts)}")
        enc, _, _ = session.encode(text, truncate=True)
        tokens.append(session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())))
        x = site_activations(session, dictionary, enc)[0]
        T = x.shape[0]
        n_tokens += T
        tc, fc = dictionary.plan(T, budget)
        for t0 in range(0, T, tc):
            xs = x[t0:t0 + tc]
            if dictionary.weights.activation == "topk":
                chunks = [(0, F, dictionary.encode(xs).float().cpu())]
            else:
                xn, _, _ = dictionary._in(xs)
                chunks = ((f0, min(F, f0 + fc), None) for f0 in range(0, F, fc))
            for f0, f1, a in chunks:
                if a is None:
                    with torch.no_grad():
                        a = dictionary.weights.encode(xn, f0, f1).float().cpu()
                on = a > 0
                fires[f0:f1] += on.sum(0)
                mx[f0:f1] = torch.maximum(mx[f0:f1], a.max(0).values)
                b = torch.bucketize(a, edges)
                hist[f0:f1].scatter_add_(1, b.T, on.T.long())
                top.add(a, i, t0=t0, f0=f0)
    top_t, top_p, top_v = top.result()
    st = CorpusStats(fires=fires.numpy(), max=mx.numpy(), top_text=top_t, top_pos=top_p,
                     top_value=top_v, hist=hist.numpy(), n_tokens=n_tokens, tokens=tokens)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, fires=st.fires, max=st.max, top_text=st.top_text, top_pos=st.top_pos, top_value=st.top_value,
                 hist=st.hist, n_tokens=n_tokens, tokens=json.dumps(tokens))
        tmp.replace(path)
    report(1.0, "features over the corpus: done")
    return st
