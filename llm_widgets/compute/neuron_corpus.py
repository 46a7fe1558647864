"""Max-activating examples of MLP neurons over a corpus: every neuron of every block in one pass
(one forward per text), its `k` strongest tokens kept (compute.corpus_top, the machinery dictionary
features use too), cached on disk keyed by the model's weights, the texts and k.

    nc = neuron_corpus(s, texts, k=8, report=print_progress)
    nc.examples(layer=2, neuron=17)       # [{text, position, activation, tokens, at}], strongest first
    neuron_top_examples(s, 2, 17, texts)  # the same, for one neuron
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from ..checks import integer
from ..errors import DoesNotApplyError, LLMWidgetsError
from ..teaching.train import cache_dir
from .activations import check_texts
from .corpus_top import RunningTop, contexts
from .neurons import neuron_activations
from .progress import Report, no_progress
from .tuned_lens_train import weights_key


@dataclass
class NeuronCorpus:
    """Per block and neuron over the corpus, the `k` strongest tokens: `top_text`, `top_pos`,
    `top_value` [n_layers, n_neurons, k] (text -1 where fewer tokens fired: only positive activations
    count), `max` [n_layers, n_neurons] the largest activation (NaN: no such neuron), `widths` the
    neurons of each block (0: none), `tokens` of each text, `n_tokens` in all."""

    top_text: np.ndarray
    top_pos: np.ndarray
    top_value: np.ndarray
    max: np.ndarray
    widths: list
    tokens: list
    n_tokens: int

    def examples(self, layer: int, neuron: int, context: int = 8) -> list[dict]:
        """Neuron `neuron` of block `layer`'s strongest tokens, strongest first: {text (index into the
        corpus), position, activation, tokens (`context` either side), at (its index in them)}."""
        layer = integer(layer, "layer")
        if not -len(self.widths) <= layer < len(self.widths):
            raise LLMWidgetsError(f"layer {layer} is outside the model's {len(self.widths)} blocks")
        n = self.widths[layer]
        if not n:
            raise DoesNotApplyError(f"block {layer} has no MLP neurons")
        neuron = integer(neuron, "neuron", low=0)
        if neuron >= n:
            raise LLMWidgetsError(f"block {layer} has {n} neurons: neuron must be 0..{n - 1}, got {neuron}")
        return contexts(self.tokens, self.top_text[layer, neuron], self.top_pos[layer, neuron],
                        self.top_value[layer, neuron], integer(context, "context", low=0))


def _key(session, texts: list[str], k: int) -> str:
    h = hashlib.sha256(json.dumps({"v": 1, "model": weights_key(session.model), "texts": texts, "k": k}).encode())
    return h.hexdigest()[:20]


def neuron_corpus(session, texts, *, k: int = 8, cache: bool = True, report: Report = no_progress) -> NeuronCorpus:
    """The `k` strongest tokens of every MLP neuron over `texts` (a list of strings; each one
    truncated to the model's length), read one text at a time; cached under
    lw.teaching.cache_dir() unless cache=False. Long corpora: pass `report` (the views do; raising
    in it cancels)."""
    texts = check_texts(texts)
    k = integer(k, "k", low=1)
    if not isinstance(cache, bool):
        raise LLMWidgetsError(f"cache is True or False, got {cache!r}")
    session.adapter.require("neurons")
    path = cache_dir() / f"neurons-{_key(session, texts, k)}.npz"
    if cache and path.exists():
        z = np.load(path, allow_pickle=False)
        return NeuronCorpus(top_text=z["top_text"], top_pos=z["top_pos"], top_value=z["top_value"], max=z["max"],
                            widths=z["widths"].tolist(), tokens=json.loads(str(z["tokens"])),
                            n_tokens=int(z["n_tokens"]))
    tops, mx, tokens, n_tokens, widths = None, None, [], 0, None
    for i, text in enumerate(texts):
        report(i / len(texts), f"neurons over the corpus: text {i + 1}/{len(texts)}")
        r = neuron_activations(session, text, truncate=True)
        a = r.activations  # [L, T, N], NaN where a block has fewer neurons
        if tops is None:
            widths = r.widths
            tops = [RunningTop(a.shape[2], k) for _ in range(a.shape[0])]
            mx = np.full(a.shape[::2], -np.inf)
        for layer, top in enumerate(tops):
            if widths[layer]:
                top.add(torch.from_numpy(a[layer]), i)
        mx = np.fmax(mx, np.nanmax(np.where(np.isnan(a), -np.inf, a), axis=1))
        tokens.append(r.tokens)
        n_tokens += len(r.tokens)
    parts = [t.result() for t in tops]
    mx[np.isinf(mx)] = np.nan
    nc = NeuronCorpus(top_text=np.stack([p[0] for p in parts]), top_pos=np.stack([p[1] for p in parts]),
                      top_value=np.stack([p[2] for p in parts]), max=mx, widths=list(widths), tokens=tokens,
                      n_tokens=n_tokens)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, top_text=nc.top_text, top_pos=nc.top_pos, top_value=nc.top_value, max=nc.max,
                 widths=np.asarray(nc.widths), tokens=json.dumps(tokens), n_tokens=n_tokens)
        tmp.replace(path)
    report(1.0, "neurons over the corpus: done")
    return nc


def neuron_top_examples(session, layer: int, neuron: int, texts, *, k: int = 8, context: int = 8,
                        cache: bool = True, report: Report = no_progress) -> list[dict]:
    """Neuron `neuron` of block `layer`: its `k` max-activating tokens over `texts`, strongest first,
    each {text, position, activation, tokens (`context` either side), at}. Scans every neuron once
    (`neuron_corpus`, cached), so asking for another neuron of the same corpus is instant."""
    session.adapter.check_layer(layer)
    return neuron_corpus(session, texts, k=k, cache=cache, report=report).examples(layer, neuron, context)
