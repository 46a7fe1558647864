"""Feature edits: while inside `edit_features(...)`, the dictionary's site becomes the dictionary's
output plus its error term, with chosen features ablated, clamped or boosted. A transcoder's output
site (the MLP output) becomes its output, computed from its input site (the MLP input) read earlier
in the same forward, plus its error term.

    with lw.edit_features(s, sae, ablate=[12], clamp={40: 5.0}, add={7: 2.0}):
        out = s.forward(**enc)       # every forward of this thread (and views computed in it)

With no edit the model is unchanged: the site is x + decode(a') - decode(a) with a' = a.
"""
from __future__ import annotations

import operator
import uuid
from contextlib import contextmanager
from dataclasses import fields, replace

import numpy as np
import torch

from ..checks import number
from ..errors import LLMWidgetsError
from ..execution import Write, intervene
from ..layers import EMBEDDINGS
from .activations import reads_of
from .coding import Splice, Stash
from .sites import writable


def feature_id(f, n: int, what: str) -> int:
    """`f` checked as a feature id of a dictionary of `n` features (`what`: for the message)."""
    if isinstance(f, (bool, np.bool_)):
        raise LLMWidgetsError(f"{what}: feature ids are integers, got {f!r}")
    try:
        i = operator.index(f)
    except TypeError:
        raise LLMWidgetsError(f"{what}: feature ids are integers, got {f!r}") from None
    if not 0 <= i < n:
        raise LLMWidgetsError(f"{what}: feature {i} is out of range: the dictionary has features 0..{n - 1}")
    return i


def splice_op(dictionary, ablate=(), clamp=None, add=None, positions=None, keep_error: bool = True) -> Splice:
    """The checked Splice op (llm_widgets.dictionaries.coding) of an edit."""
    n = dictionary.n_features
    if isinstance(ablate, (str, bytes)) or not hasattr(ablate, "__iter__"):
        raise LLMWidgetsError(f"ablate must be a list of feature ids, got {ablate!r}")
    for name, d in (("clamp", clamp), ("add", add)):
        if d is not None and not isinstance(d, dict):
            raise LLMWidgetsError(f"{name} must be a dict {{feature: value}}, got {d!r}")
    ab = [feature_id(f, n, "ablate") for f in ablate]
    cl = {feature_id(f, n, "clamp"): number(v, f"clamp[{f}]") for f, v in (clamp or {}).items()}
    ad = {feature_id(f, n, "add"): number(v, f"add[{f}]") for f, v in (add or {}).items()}
    both = set(ab) & set(cl)
    if both:
        raise LLMWidgetsError(f"features {sorted(both)} are both ablated and clamped: choose one")
    if positions is not None:
        positions = torch.as_tensor(positions, dtype=torch.long).reshape(-1)
    return Splice(dictionary.weights, ablate=torch.tensor(ab, dtype=torch.long),
                  clamp_ids=torch.tensor(list(cl), dtype=torch.long), clamp_values=torch.tensor(list(cl.values())),
                  add_ids=torch.tensor(list(ad), dtype=torch.long), add_values=torch.tensor(list(ad.values())),
                  positions=positions, keep_error=keep_error)


def site_writes(session, dictionary, op, rows=None) -> list[Write]:
    """The writes that put `op` (a Splice or FeaturePatch of `dictionary`) into the forward, checked:
    for an SAE, one write at its site; for a transcoder, a `Stash` of its input where the forward
    reads it (the "mlp_in" site, or the two reads of "resid_mid") and `op` at its output site,
    reading the stash (its `inputs`)."""
    dictionary.check(session)
    out = dictionary.out_site if dictionary.transcoder else dictionary.site
    if not writable(out):
        raise LLMWidgetsError(f"{out}: the execution layer cannot write there yet (it writes 'resid', 'attn', "
                              f"'mlp', 'heads' and 'mlp_in'); reading this dictionary's features works")
    op = _placed(op, _device(session, out))
    if not dictionary.transcoder:
        return [Write(out.site, out.layer, op, rows)]
    layer_in, layer_out = dictionary.site.layer, out.layer
    if layer_in != EMBEDDINGS and (layer_out == EMBEDDINGS or layer_in > layer_out):
        raise LLMWidgetsError(f"{dictionary!r} reads {dictionary.site} after the site it writes, {out}: the forward "
                              f"reaches its output before its input")
    tag = uuid.uuid4().hex[:12]  # one splice's stash keys (several transcoders can stand at once)
    reads = reads_of(dictionary.site)
    keys = tuple(f"{tag}:{r.site}:{r.layer}" for r in reads)
    return ([Write(r.site, r.layer, Stash(k)) for r, k in zip(reads, keys)]
            + [Write(out.site, out.layer, replace(op, inputs=keys), rows)])


def _device(session, site) -> torch.device | None:
    """The device of the module where `site` is written (a model dispatched over devices: that layer's),
    or None where the weights are not here (meta tensors standing in for a server's)."""
    ad = session.adapter
    ref = ad.blocks[0] if site.layer == EMBEDDINGS else ad.site(site.site, site.layer)
    p = next(ref.module.parameters(), None)
    device = p.device if p is not None else torch.device(session.device)
    return None if device.type == "meta" else device


def _placed(op, device):
    """`op` with its dictionary's tensors on `device` (the activations' device: no copy per forward)."""
    w = op.weights
    if device is None or w.W_enc.device == device:
        return op
    moved = {f.name: getattr(w, f.name).to(device) for f in fields(w) if torch.is_tensor(getattr(w, f.name))}
    return replace(op, weights=replace(w, **moved))


def splice_writes(session, dictionary, rows=None, **edits) -> list[Write]:
    """The writes that splice `dictionary` (with `edits`: see splice_op) into the forward, checked:
    an SAE at its site; a transcoder at its output site, encoding its input (see site_writes)."""
    return site_writes(session, dictionary, splice_op(dictionary, **edits), rows)


def splice_write(session, dictionary, rows=None, **edits) -> Write:
    """The one Write that splices an SAE (with `edits`) in at its site (a transcoder needs two:
    `splice_writes`)."""
    if dictionary.transcoder:
        raise LLMWidgetsError(f"{dictionary!r} is a transcoder: splicing it takes two writes (its input read, its "
                              f"output replaced): use splice_writes")
    return splice_writes(session, dictionary, rows, **edits)[0]


@contextmanager
def edit_features(session, dictionary, ablate=(), clamp=None, add=None, positions=None):
    """While inside, the dictionary's site is its output plus its error term, with the features in
    `ablate` set to 0, those in `clamp` ({feature: value}) set to the value and those in `add`
    ({feature: alpha}) raised by alpha (adding alpha * W_dec[feature] to the site), at `positions`
    (None: every position). A transcoder: the site it writes (the MLP output) is edited, its features
    encoded from the site it reads (the MLP input) of the same forward. Acts like `ablate()`: on
    this thread's forwards, composes with other edits, and runs on every executor
    (llm_widgets.execution.intervene)."""
    session.adapter.require("interventions")
    writes = splice_writes(session, dictionary, ablate=ablate, clamp=clamp, add=add, positions=positions)
    with intervene(session, writes):
        yield
