"""Attribution to features: how much each active feature at each token contributes, to first order,
to one output logit: activation x gradient, a_f(t) * (W_dec[f] . d logit / d site(t)) (the site
where the dictionary writes: its own for an SAE, the output site for a transcoder; the error term
does not depend on a_f, so the gradient through the decoder is exact).

    r = feature_attribution(s, "The cat sat on the", sae, target=" mat")   # r.ids / r.values [T, k]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import integer, one_token
from ..errors import LLMWidgetsError
from ..execution import Program, Read, run
from ..execution import executor_of
from .activations import reads_of
from .coding import normalize_in


@dataclass
class FeatureAttribution:
    """Per token, the `k` features with the largest |attribution| (`ids`, `values` [T, k]) to the
    logit of `target` at `position`; `total` [T] the sum over every active feature of the token."""

    tokens: list[str]
    ids: np.ndarray
    values: np.ndarray
    total: np.ndarray
    target: int
    position: int


def feature_attribution(session, text: str, dictionary, target, *, position: int = -1, k: int = 8,
                        truncate: bool = False) -> FeatureAttribution:
    """Activation x gradient of the logit of `target` (a token string or id) at `position` for every
    feature of `dictionary` at every token of `text`. Needs gradients (the native executor) and a
    site whose gradient one read gives (not resid_mid as an output site). Encodes the text's tokens
    densely ([T, F] for this one text)."""
    k = integer(k, "k", low=1)
    position = integer(position, "position")
    dictionary.check(session)
    ex = executor_of(session)
    if not ex.has("graphs"):  # the gradient is taken here, from the reads' graph
        raise ex.lacks("graphs", "Feature attribution")
    out_site = dictionary.out_site if dictionary.transcoder else dictionary.site
    if out_site.site == "resid_mid":
        raise LLMWidgetsError(f"{out_site}: its gradient is not one read of the execution layer (it needs a "
                              f"'resid_mid' site); attribution works at resid, attn, mlp and heads")
    tid = target if isinstance(target, (int, np.integer)) and not isinstance(target, bool) else \
        one_token(session, str(target), "target")
    enc, _, _ = session.encode(text, truncate=truncate)
    T = enc["input_ids"].shape[1]
    if not -T <= position < T:
        raise LLMWidgetsError(f"position must be in -{T}..{T - 1} (the {T} tokens), got {position}")
    reads = reads_of(dictionary.site) + [Read(out_site.site, out_site.layer, name="out")]
    res = run(session, Program(enc, reads=reads, logits=[position], grad=True, label="feature attribution"))
    logit = res.logits[0, 0, int(tid)] if res.logits.dim() == 3 else res.logits[0, int(tid)]
    g = torch.autograd.grad(logit, res.reads["out"])[0][0].detach().to(dictionary.weights.W_dec.dtype)
    xr = sum(v for key, v in res.reads.items() if key != "out") if dictionary.site.site == "resid_mid" \
        else (res.reads["out"] if not dictionary.transcoder else res.reads["x"])
    x = xr[0].detach().to(dictionary.weights.W_enc.dtype)
    with torch.no_grad():
        acts = dictionary.encode(x)  # [T, F]: tokens x features once, for this one text
        _, scale, _ = normalize_in(x, dictionary.weights.normalize, dictionary.d_in)
        direction = (g * (scale if torch.is_tensor(scale) else torch.tensor(scale))) @ dictionary.weights.W_dec.T
        attr = acts * direction  # [T, F]
        top = attr.abs().topk(min(k, attr.shape[1]), dim=-1).indices
        vals = attr.gather(1, top)
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return FeatureAttribution(tokens=tokens, ids=top.numpy().astype(np.int32), values=vals.float().numpy(),
                              total=attr.sum(-1).float().numpy(), target=int(tid), position=position % T)
