"""Where a dictionary reads (and, for a transcoder, writes) in the model, in our sites' vocabulary.

Published dictionaries name their site with TransformerLens hook names; they map onto the sites
of the execution layer (llm_widgets.execution.program) on any model the adapter knows:

    blocks.L.hook_resid_pre      -> "resid" of block L-1 (lw.EMBEDDINGS for L = 0): block L's input
    blocks.L.hook_resid_post     -> "resid" of block L
    blocks.L.hook_resid_mid      -> "resid_mid" of block L: the residual between attention and MLP,
                                    read as resid(L-1) + attn(L) (sequential blocks only)
    blocks.L.hook_attn_out       -> "attn" of block L
    blocks.L.hook_mlp_out, blocks.L.mlp.hook_out -> "mlp" of block L
    blocks.L.attn.hook_z         -> "heads" of block L ([heads * d_head], head-major as SAELens flattens)
    blocks.L.ln2.hook_normalized, blocks.L.mlp.hook_in -> "mlp_in" of block L (the MLP's normalized
                                    input: the input of the MLP module, Adapter.mlp_input)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import DoesNotApplyError, LLMWidgetsError
from ..layers import EMBEDDINGS

SITES = ("resid", "attn", "mlp", "heads", "resid_mid", "mlp_in")
_HOOKS = {
    "hook_resid_post": "resid", "hook_resid_pre": "resid_pre", "hook_resid_mid": "resid_mid",
    "hook_attn_out": "attn", "hook_mlp_out": "mlp", "mlp.hook_out": "mlp", "attn.hook_z": "heads",
    "ln2.hook_normalized": "mlp_in", "mlp.hook_in": "mlp_in",
}
_PATTERN = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Site:
    """A site of the model: `site` (one of SITES) at `layer` (a block index, or EMBEDDINGS with
    "resid"); `hook` is the name the dictionary gave it (for messages)."""

    site: str
    layer: Any
    hook: str = ""

    def __str__(self) -> str:
        where = f"{self.site}[{self.layer}]"
        return f"{where} ({self.hook})" if self.hook and self.hook != where else where


def from_hook_name(name: str) -> Site:
    """The Site of a TransformerLens hook name (see the module docstring)."""
    m = _PATTERN.match(str(name))
    if not m or m.group(2) not in _HOOKS:
        raise LLMWidgetsError(f"unknown hook name {name!r}: a dictionary's site must be one of "
                              f"blocks.L.{{{', '.join(_HOOKS)}}}; or pass site=('resid', L) "
                              f"(sites: {SITES}) to lw.load_dictionary")
    layer, kind = int(m.group(1)), _HOOKS[m.group(2)]
    if kind == "resid_pre":
        return Site("resid", EMBEDDINGS if layer == 0 else layer - 1, name)
    return Site(kind, layer, name)


def as_site(value, hook: str = "") -> Site:
    """A Site from what a user passes as site=: a Site, a hook name, or (site, layer)."""
    if isinstance(value, Site):
        return value
    if isinstance(value, str):
        return from_hook_name(value)
    try:
        site, layer = value
    except (TypeError, ValueError):
        raise LLMWidgetsError(f"site must be a hook name such as 'blocks.3.hook_resid_post' or a (site, layer) "
                              f"pair such as ('resid', 3), got {value!r}") from None
    if site not in SITES:
        raise LLMWidgetsError(f"unknown site {site!r}; use one of {SITES}")
    if layer != EMBEDDINGS and not isinstance(layer, int):
        raise LLMWidgetsError(f"the layer of a site is a block index (or lw.EMBEDDINGS), got {layer!r}")
    return Site(site, layer, hook)


def width(session, site: Site) -> int:
    """The width of the activation at `site` in the session's model; raises saying why where the
    model has no such site (a block without attention, parallel blocks for resid_mid, ...)."""
    ad = session.adapter
    if site.layer == EMBEDDINGS:
        if site.site != "resid":
            raise LLMWidgetsError(f"{site}: only 'resid' has the embeddings layer")
        return ad.d_model
    layer = ad.check_layer(site.layer)
    if site.site == "resid_mid":
        if ad.parallel:
            raise DoesNotApplyError(f"{site}: this model's blocks are parallel (attention and MLP read the same "
                                    f"input), so there is no residual stream between them")
        ad.site("attn", layer)
        return ad.d_model
    ad.site(site.site, layer)  # says why, where the block has no such site
    if site.site == "heads":
        n, dh = ad.head_layout(layer)
        return n * dh
    return ad.d_model


def writable(site: Site) -> bool:
    """Whether an edit can be written at `site` through the execution layer's sites."""
    return site.site in ("resid", "attn", "mlp", "heads", "mlp_in")
