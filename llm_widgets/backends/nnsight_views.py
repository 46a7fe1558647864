"""The views' computations on the nnsight backend: each builds its requests (`nnsight_requests`),
sends them through `NnsightBackend.request`, and builds the same result objects as the native path
(llm_widgets.compute.*), with the same checks and the same arithmetic on the same tensors.

Round trips per view (a request is one trace):
- trace: 1 (hidden states, logits, and the post-rotary queries / keys of every attention call,
  read inside transformers' attention function through nnsight's `.source`),
- neuron activations: 1; ablation_effect: 1 (the intact and ablated runs are two rows of one batch),
- logit lens: 1 (the readout runs on the server; top-k come back, not [L, T, V] logits),
- probing: 1 per `batch_size` texts (pooled on the server).
Activation patching: `nnsight_patching`; attribution: `nnsight_attribution`.
"""
from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np
import torch

from ..checks import integer
from ..errors import LLMWidgetsError
from . import nnsight_requests as rq
from .nnsight_discovery import envoy_path


def _backend(session):
    return session.backend


def _keeps_logits(session) -> bool:
    """The model's forward takes `logits_to_keep` (read from its class: nnsight replaces the
    instance's forward)."""
    try:
        return "logits_to_keep" in inspect.signature(type(session.model).forward).parameters
    except (TypeError, ValueError):
        return False


def _path(ref) -> str:
    return envoy_path(ref.path)


# -- trace --------------------------------------------------------------------------------------------
REMOTE_LOGITS_MAX_VALUES = 1 << 22  # [T, V] logits a remote trace sends back (16 MB); views read what they need
def build_trace(session, text: str, truncate: bool = False):
    """Session.trace through nnsight: one request."""
    from ..compute.attention_source import CapturedAttention, _call_of
    from ..trace import _LOGITS_MAX_VALUES, Trace, _to_numpy, word_ids_and_special

    be = _backend(session)
    enc, truncated, notice = session.encode(text, truncate=truncate)
    max_logits = REMOTE_LOGITS_MAX_VALUES if be.remote else _LOGITS_MAX_VALUES
    got = be.request("trace", rq.trace, {**enc, "output_hidden_states": True}, be.attention, max_logits)
    ids = enc["input_ids"][0].cpu()
    tokens = session.tokenizer.convert_ids_to_tokens(ids.tolist())
    word_ids, special = word_ids_and_special(session, text, ids, truncated)
    source = None
    if got["attention"] is not None:
        calls = []
        for c in got["attention"]:
            a = {"query": c["query"][None], "key": c["key"][None],
                 "attention_mask": None if c["mask"] is None else c["mask"][None], "is_causal": c["is_causal"],
                 "position_bias": None if c["bias"] is None else c["bias"][None], "scaling": c["scaling"],
                 "kwargs": {"softcap": c["softcap"], "s_aux": c["sinks"]}}
            calls.append(_call_of(SimpleNamespace(is_causal=c["is_causal"]), a))
        source = CapturedAttention(calls)
    trace = Trace(
        text=text, raw_tokens=tokens, tokens=session.readable_tokens(tokens), input_ids=ids.numpy(),
        attentions=None, hidden_states=_to_numpy(got["hidden"], "hidden states"),
        logits=None if got["logits"] is None else _to_numpy(got["logits"], "logits"),
        word_ids=word_ids, special_mask=special, truncated=truncated, notice=notice,
        attention_note="" if source is not None else f"Attention through nnsight: {be.attention_note}.")
    trace.attention = source
    return trace


# -- neurons ------------------------------------------------------------------------------------------
def neuron_activations(session, text: str, *, truncate: bool = False):
    from ..compute.neurons import NeuronResult

    ad = session.adapter
    ad.require("neurons")
    enc, _, _ = session.encode(text, truncate=truncate)
    T = enc["input_ids"].shape[1]
    paths = [_path(ad.site("neurons", layer)) for layer in range(ad.n_layers)]
    got = _backend(session).request("neurons", rq.inputs_of, enc, paths, T)
    stacked = np.stack([a[0].float().cpu().numpy() for a in got])
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return NeuronResult(tokens=tokens, activations=stacked)


# -- ablation -----------------------------------------------------------------------------------------
def ablation_effect(session, text: str, heads=(), neurons=(), mode: str = "zero", position: int = -1, k: int = 10,
                    donor=None):
    """Two requests for mode='resample' (the units' inputs on the donor, then the ablated run), one
    otherwise: row 0 of the batch runs as it is, row 1 with the units ablated."""
    from ..compute.ablation import AblationEffect, check_mode, donor_mismatch, unit_columns
    from ..compute.hooks import output_names
    from ..compute.inputs import batch_inputs
    from ..compute.patching import output_position

    session.adapter.require("interventions")
    k = integer(k, "k", low=1)
    check_mode(mode, donor)
    if session.adapter.output is None:
        raise LLMWidgetsError(f"{session.name} has no output head (no logits): there are no output "
                              f"probabilities to compare. Use a causal LM or a classifier.")
    ad = session.adapter
    by_site = unit_columns(session, heads, neurons)
    order = _backend(session).order
    edits = [(_path(ad.site(s, l)), torch.tensor(sorted(set(cols))), mode)
             for (s, l), cols in sorted(by_site.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 0)))]
    enc, _, _ = session.encode(text)
    T = enc["input_ids"].shape[1]
    output_position(position, T)
    if mode == "resample":  # the units' values on the donor, from the clean model: a request of its own
        given = batch_inputs(session, donor, "donor")
        if tuple(given["input_ids"].shape) != tuple(enc["input_ids"].shape):
            raise donor_mismatch(given["input_ids"].shape, enc["input_ids"].shape)
        acts = _backend(session).request("donor", rq.inputs_of, given, [p for p, _, _ in edits], T)
        edits = [(p, cols, "set", a[..., cols.to(a.device)]) for (p, cols, _), a in zip(edits, acts)]
    two = {key: v.expand(2, *v.shape[1:]) for key, v in enc.items()}
    lg = _backend(session).request("ablation", rq.ablation, two, edits, position, False)
    before, after = torch.softmax(lg[0], -1), torch.softmax(lg[1], -1)
    order_ = torch.argsort((after - before).abs(), descending=True)[:k].tolist()
    return AblationEffect(outputs=output_names(session, order_), ids=order_, before=before[order_].cpu().numpy(),
                          after=after[order_].cpu().numpy(), position=position)


# -- logit lens ---------------------------------------------------------------------------------------
def _lens(session, text, truncate, k, full):
    ad = session.adapter
    ad.require("logit_lens")
    enc, _, _ = session.encode(text, truncate=truncate)
    blocks = [_path(b) for b in ad.blocks]
    norms = [envoy_path(p) for p in ad.final_norm]
    got = _backend(session).request("logit lens", rq.logit_lens, enc, blocks, norms, envoy_path(ad.head),
                                    float(ad.logit_scale), ad.softcap, enc["input_ids"][0].cpu(), k, full)
    return enc, got


def lens_logits(session, text: str, *, truncate: bool = False) -> torch.Tensor:
    return _lens(session, text, truncate, 1, True)[1]


def logit_lens(session, text: str, *, k: int = 5, truncate: bool = False):
    from ..compute.hooks import output_names
    from ..compute.logit_lens import LogitLensResult

    k = integer(k, "k", low=1)
    enc, got = _lens(session, text, truncate, k, False)
    top_i = got["top_i"]
    vocab_ids = sorted(set(top_i.flatten().tolist()))
    where = {v: j for j, v in enumerate(vocab_ids)}
    index = np.vectorize(where.__getitem__, otypes=[np.int32])(top_i.cpu().numpy())
    n = top_i.shape[0] - 1
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return LogitLensResult(tokens=tokens, layer_names=["embeddings"] + [f"layer {l}" for l in range(n)],
                           top_tokens=output_names(session, vocab_ids), top_index=index,
                           top_probs=got["top_p"].cpu().numpy(), next_prob=got["next"].numpy())


# -- probing activations ------------------------------------------------------------------------------
def _base_path(session) -> str:
    model = session.model
    base = getattr(model, "base_model", model)
    if base is model:
        return ""
    for name, mod in model.named_modules():
        if mod is base:
            return envoy_path(name)
    return ""


def _states(session, batch, how, select, step, report):
    inputs = {**batch, "output_hidden_states": True}
    return _backend(session).request("hidden states", rq.hidden_states, inputs, _base_path(session), how, select,
                                     report=report, step=step)


def token_states(session, texts, *, batch_size: int = 32, truncate: bool = False):
    from ..compute.activations import _encode_all, batch_plan, check_texts, padded_batch, text_states

    texts = check_texts(texts)
    encs = _encode_all(session, texts, truncate)
    keys, chunks = batch_plan(encs, batch_size)
    out: list = [None] * len(texts)
    for j, chunk in enumerate(chunks):
        batch, _ = padded_batch(session, encs, chunk, keys)
        hs = _states(session, batch, "all", None, (j, len(chunks)), None)
        for i, pair in text_states(encs, chunk, hs):
            out[i] = pair
    return out


def extract(session, texts, labels=None, *, level: str = "sentence", pooling: str = "mean", batch_size: int = 32,
            truncate: bool = False, report=None):
    """compute.activations.extract through nnsight: one request per batch, pooled (sentence level) or
    the labelled tokens' rows picked (token level) on the server."""
    from ..compute.activations import (activations_of, batch_plan, extraction_plan, padded_batch, pooling_mask,
                                       token_rows)
    from ..compute.progress import no_progress

    report = report or no_progress
    texts, encs, rows, rows_of = extraction_plan(session, texts, labels, level, pooling, batch_size, truncate)
    keys, chunks = batch_plan(encs, batch_size)
    states = None
    done = 0
    for step, chunk in enumerate(chunks):
        batch, width = padded_batch(session, encs, chunk, keys)
        if level == "sentence":
            mask = pooling_mask(encs, chunk, width, pooling)
            got = _states(session, batch, "pool", mask, (step, len(chunks)), None)
            r_idx = list(chunk)
        else:
            b_idx, t_idx, r_idx = token_rows(chunk, rows_of)
            if not r_idx:
                continue
            got = _states(session, batch, "rows", (torch.tensor(b_idx), torch.tensor(t_idx)),
                          (step, len(chunks)), None)
        if states is None:
            states = np.zeros((got.shape[0], len(rows[0]), got.shape[-1]), dtype=np.float32)
        states[:, r_idx] = got.cpu().numpy()
        done += len(chunk)
        report(done / len(texts), f"hidden states {done}/{len(texts)} texts ({step + 1}/{len(chunks)} requests)")
    return activations_of(states, level, texts, rows)
