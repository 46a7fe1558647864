"""Session.trace on the nnsight backend: one request (`llm_widgets.execution.remote.trace`: hidden
states, logits, and the post-rotary queries / keys of every attention call, read inside
transformers' attention function through nnsight's `.source`, under the thread's standing
interventions), built into the same Trace as the native path (llm_widgets.trace), with any head's
weights computed on demand from the captured calls."""
from __future__ import annotations

from types import SimpleNamespace

import torch

REMOTE_LOGITS_MAX_VALUES = 1 << 22  # [T, V] logits a remote trace sends back (16 MB); views read what they need


def build_trace(session, text: str, truncate: bool = False):
    """Session.trace through nnsight: one request."""
    from ..attention_source import CapturedAttention, _call_of
    from ..trace import _LOGITS_MAX_VALUES, Trace, _to_numpy, word_ids_and_special

    be = session.backend
    enc, truncated, notice = session.encode(text, truncate=truncate)
    max_logits = REMOTE_LOGITS_MAX_VALUES if be.remote else _LOGITS_MAX_VALUES
    got = be.executor.trace(session, enc, max_logits)  # under this thread's standing interventions
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
    hidden = torch.stack(session.adapter.hidden_states(got["hidden"], embeddings=got["embeddings"]))
    trace = Trace(
        text=text, raw_tokens=tokens, tokens=session.readable_tokens(tokens), input_ids=ids.numpy(),
        attentions=None, hidden_states=_to_numpy(hidden, "hidden states"),
        logits=None if got["logits"] is None else _to_numpy(got["logits"], "logits"),
        word_ids=word_ids, special_mask=special, truncated=truncated, notice=notice,
        attention_note="" if source is not None else f"Attention through nnsight: {be.attention_note}.")
    trace.attention = source
    return trace
