"""The activations a dictionary reads, from the model through the execution layer (any executor):

    x = site_activations(session, dictionary, enc)     # [B, T, d_in] at the dictionary's site
"""
from __future__ import annotations

import torch

from ..errors import LLMWidgetsError
from ..execution import Program, Read, run
from ..layers import EMBEDDINGS
from .sites import Site, width


def reads_of(site: Site) -> list[Read]:
    """The execution layer's reads whose sum is the activation at `site` (resid_mid of block L:
    the residual before it plus its attention output; sequential blocks only, see sites.width)."""
    if site.site == "resid_mid":
        layer = site.layer
        before = EMBEDDINGS if layer == 0 else layer - 1
        return [Read("resid", before, name="before"), Read("attn", layer, name="attn")]
    return [Read(site.site, site.layer, name="x")]


def site_activations(session, dictionary, inputs: dict, *, site: Site | None = None) -> torch.Tensor:
    """[B, T, d_in] activations at the dictionary's input site (or `site`) for the tokenized
    `inputs`, as float32 (float64 for a float64 dictionary)."""
    site = dictionary.site if site is None else site
    if site is None:
        raise LLMWidgetsError(f"{dictionary!r} names no site; pass site= to lw.load_dictionary")
    width(session, site)
    res = run(session, Program(inputs, reads=reads_of(site), stop=True, label="dictionary input"))
    x = sum(res.reads.values()) if site.site == "resid_mid" else res.reads["x"]
    return x.to(torch.float64 if dictionary.weights.W_enc.dtype == torch.float64 else torch.float32)


def collect_activations(session, texts, site, truncate: bool = True) -> torch.Tensor:
    """[N, d] the activations at `site` (a Site, hook name or (site, layer)) of every token of
    `texts`, one text per forward: the data to train a dictionary on (dictionaries.train.train_sae)."""
    from ..compute.activations import check_texts
    from .sites import as_site

    site = as_site(site)
    width(session, site)
    out = []
    for text in check_texts(texts):
        enc, _, _ = session.encode(text, truncate=truncate)
        res = run(session, Program(enc, reads=reads_of(site), stop=True, label="dictionary input"))
        out.append((sum(res.reads.values()) if site.site == "resid_mid" else res.reads["x"])[0].float())
    return torch.cat(out)
