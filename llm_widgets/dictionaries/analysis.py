"""What FeatureView shows, as compute functions returning numbers: each token's top features
(sparse), reconstruction quality (error norm, FVU, L0, loss recovered), one feature's activation
over a text and its direct effect on the logits.

    r = feature_activations(s, "The cat sat", sae, k=16)     # r.ids / r.values [T, k]
    loss_recovered(s, "The cat sat", sae)                    # {'original', 'spliced', 'zero', 'recovered'}
    logit_effect(s, sae, 7, k=10)                            # promoted / suppressed tokens of feature 7
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..checks import integer
from ..compute.budget import memory_budget
from ..errors import LLMWidgetsError
from ..execution import Program, Write, ops, run
from .activations import site_activations
from .edit import splice_writes
from .sites import writable


@dataclass
class FeatureActivations:
    """Each token's `k` most active features (`ids`, `values` [T, k], largest first; values 0 where
    fewer are active), the reconstruction's error norm and the target's norm per token (the input of
    an SAE; a transcoder's output site), L0 per token (active features), and FVU (fraction of
    variance unexplained over the text's tokens)."""

    tokens: list[str]
    ids: np.ndarray  # [T, k] int32
    values: np.ndarray  # [T, k] float32
    error_norm: np.ndarray  # [T]
    x_norm: np.ndarray  # [T]
    l0: np.ndarray  # [T] int32
    fvu: float
    site: str
    n_features: int


def _check_feature(dictionary, f) -> int:
    f = integer(f, "feature", low=0)
    if f >= dictionary.n_features:
        raise LLMWidgetsError(f"feature {f} is out of range: the dictionary has features "
                              f"0..{dictionary.n_features - 1}")
    return f


def feature_activations(session, text: str, dictionary, k: int = 16, budget: Optional[int] = None,
                        truncate: bool = False) -> FeatureActivations:
    """Top-k features per token of `text` at the dictionary's site (chunked under `budget` bytes,
    default the session's memory budget: never a dense [T, F]), with reconstruction quality."""
    k = integer(k, "k", low=1)
    dictionary.check(session)
    enc, _, _ = session.encode(text, truncate=truncate)
    x = site_activations(session, dictionary, enc)[0]
    budget = memory_budget(session) if budget is None else budget
    ids, vals = dictionary.top_features(x, k, budget=budget)
    # what the dictionary reconstructs: its input (an SAE), or the output site's activation (a transcoder)
    y = site_activations(session, dictionary, enc, site=dictionary.out_site)[0] if dictionary.transcoder else x
    l0 = torch.zeros(x.shape[0], dtype=torch.long)
    err = torch.zeros(x.shape[0], dtype=torch.float64)
    tc, _ = dictionary.plan(x.shape[0], budget)
    for t0 in range(0, x.shape[0], max(1, tc)):  # exact L0 and error: one chunk of tokens at a time
        xs = x[t0:t0 + tc]
        a = dictionary.encode(xs)
        l0[t0:t0 + tc] = (a > 0).sum(-1)
        err[t0:t0 + tc] = (dictionary.decode(a, xs) - y[t0:t0 + tc]).double().norm(dim=-1)
    yd = y.double()
    var = (yd - yd.mean(0)).pow(2).sum()
    fvu = float(err.pow(2).sum() / var) if float(var) > 0 else float("nan")
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return FeatureActivations(tokens=tokens, ids=ids.numpy().astype(np.int32), values=vals.float().numpy(),
                              error_norm=err.float().numpy(), x_norm=yd.norm(dim=-1).float().numpy(),
                              l0=l0.numpy().astype(np.int32), fvu=fvu, site=str(dictionary.site),
                              n_features=dictionary.n_features)


def feature_over_text(session, text: str, dictionary, feature: int, truncate: bool = False) -> np.ndarray:
    """[T] the activation of `feature` at every token of `text` (exact: TopK dictionaries encode
    every feature of each token, in chunks of tokens)."""
    f = _check_feature(dictionary, feature)
    enc, _, _ = session.encode(text, truncate=truncate)
    x = site_activations(session, dictionary, enc)[0]
    return column(dictionary, x, f, memory_budget(session))


def column(dictionary, x: torch.Tensor, f: int, budget: int) -> np.ndarray:
    """[T] feature f's activation on activations x [T, d_in]."""
    with torch.no_grad():
        if dictionary.weights.activation != "topk":
            xn, _, _ = dictionary._in(x)
            return dictionary.weights.encode(xn, f, f + 1)[:, 0].float().cpu().numpy()
        tc, _ = dictionary.plan(x.shape[0], budget)
        return np.concatenate([dictionary.encode(x[t:t + tc])[:, f].float().cpu().numpy()
                               for t in range(0, x.shape[0], tc)])


def logit_effect(session, dictionary, feature: int, k: int = 10) -> dict:
    """The direct effect of `feature` on the logits: its decoder row, carried to the residual stream
    (through the attention output projection for a 'heads' site, without its bias) and through the
    unembedding without the final norm (the convention of Neuronpedia's "top logits"):
    {'promoted': [(token, value)], 'suppressed': [(token, value)]} the k largest and smallest."""
    f = _check_feature(dictionary, feature)
    k = integer(k, "k", low=1)
    ad = session.adapter
    ad.require("logit_lens")
    from ..adapter import get_module

    site = dictionary.out_site if dictionary.transcoder else dictionary.site
    v = dictionary.weights.W_dec[f].float()
    with torch.no_grad():
        if site.site == "heads":
            proj = ad.site("heads", site.layer).module
            p = next(proj.parameters())
            vv = v.to(p.device, p.dtype)[None]
            v = (proj(vv) - proj(torch.zeros_like(vv)))[0]
        head = get_module(session.model, ad.head)
        p = next(head.parameters())
        vv = v.to(p.device, p.dtype)[None]
        lg = (head(vv) - head(torch.zeros_like(vv)))[0].float() * ad.logit_scale
    top = lg.topk(min(k, lg.shape[0]))
    bot = (-lg).topk(min(k, lg.shape[0]))
    names = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(top.indices.tolist()
                                                                             + bot.indices.tolist()))
    n = len(top.indices)
    return {"promoted": [(names[i], float(top.values[i])) for i in range(n)],
            "suppressed": [(names[n + i], float(-bot.values[i])) for i in range(n)]}


def loss_recovered(session, text: str, dictionary, truncate: bool = False) -> dict:
    """Next-token loss (mean cross-entropy over the text) of the model as it is ('original'), with the
    site replaced by the dictionary's reconstruction ('spliced', no error term) and by zeros ('zero');
    'recovered' = (zero - spliced) / (zero - original): 1 when the reconstruction loses nothing.
    Causal LMs only, at sites the execution layer writes."""
    ad = session.adapter
    if ad.output != "lm" or not ad.causal:
        raise LLMWidgetsError(f"loss recovered needs a causal language model; {session.name} is not one")
    out = dictionary.out_site if dictionary.transcoder else dictionary.site
    if not writable(out):
        raise LLMWidgetsError(f"loss recovered writes the reconstruction at {out}, which the execution "
                              f"layer cannot write yet")
    enc, _, _ = session.encode(text, truncate=truncate)
    ids = enc["input_ids"][0]
    if ids.shape[0] < 2:
        raise LLMWidgetsError("loss recovered needs a text of at least 2 tokens")
    spliced = splice_writes(session, dictionary, keep_error=False)
    zero = Write(out.site, out.layer, ops.Columns(torch.arange(dictionary.d_out), "zero"))

    def loss(writes) -> float:
        lg = run(session, Program(enc, writes=writes, logits="all", label="loss recovered")).logits[0].float()
        return float(torch.nn.functional.cross_entropy(lg[:-1], ids[1:].to(lg.device)))

    o, s, z = loss([]), loss(spliced), loss([zero])
    return {"original": o, "spliced": s, "zero": z, "recovered": (z - s) / (z - o) if z != o else float("nan")}


def edit_effect(session, text: str, dictionary, *, position: int = -1, k: int = 10, truncate: bool = False,
                **edits) -> dict:
    """Next-token probabilities at `position` before and after a feature edit (`edits`: ablate=,
    clamp=, add=, positions= as in edit_features): the `k` outputs whose probability changes most.
    One run of two rows, row 1 edited. {'outputs', 'ids', 'before', 'after', 'position'}."""
    from ..compute.outputs import output_names

    k = integer(k, "k", low=1)
    position = int(integer(position, "position"))
    if session.adapter.output is None:
        raise LLMWidgetsError(f"{session.name} has no output head: there are no output probabilities to compare")
    enc, _, _ = session.encode(text, truncate=truncate)
    T = enc["input_ids"].shape[1]
    if not -T <= position < T:
        raise LLMWidgetsError(f"position must be in -{T}..{T - 1} (the {T} tokens), got {position}")
    two = {key: v.expand(2, *v.shape[1:]) for key, v in enc.items()}
    writes = splice_writes(session, dictionary, rows=(1,), **edits)
    lg = run(session, Program(two, writes=writes, logits=[position], label="feature edit")).logits
    lg = lg[:, 0] if lg.dim() == 3 else lg
    before, after = torch.softmax(lg[0].float(), -1), torch.softmax(lg[1].float(), -1)
    order = torch.argsort((after - before).abs(), descending=True)[:k].tolist()
    return {"outputs": output_names(session, order), "ids": order, "before": before[order].tolist(),
            "after": after[order].tolist(), "position": position % T}
