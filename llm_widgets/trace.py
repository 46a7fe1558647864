"""Trace: what one forward pass over one text gives every view (tokens, hidden states, logits,
attention), and how it is built."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .attention_source import (AttentionSource, CapturedAttention, EagerAttention, attention_by_block,
                                       attention_owners, capture_attention)
from .errors import AttentionUnavailableError, NonFiniteError, UnsupportedModelError
from .guards import model_lock, non_eager_attention, untrusted_attention

# Attention tensors above this many bytes (float32) are kept as float16 in the Trace.
_FLOAT16_ATTENTION_ABOVE = 1 << 30
# Longer inputs never ask for eager [L, H, T, T] weights: attention is computed on demand from the
# captured queries and keys (llm_widgets.attention_source), as it is for models loaded with sdpa.
EAGER_MAX_TOKENS = 1024
_LOGITS_MAX_VALUES = 1 << 26  # a Trace keeps [T, V] logits up to this many values (256 MB float32)




@dataclass
class Trace:
    """The result of one forward pass over one text (batch of one). Arrays are numpy, on the CPU."""

    text: str
    raw_tokens: list[str]  # the tokenizer's own tokens ("Ġcat", "##ing", "[CLS]")
    tokens: list[str]  # the same tokens as a person reads them (" cat", "##ing", "[CLS]")
    input_ids: np.ndarray  # [T] int64
    attentions: np.ndarray | None  # [layers, heads, T, T]; encoder self-attention for enc-dec models
    hidden_states: np.ndarray  # [layers + 1, T, D]; index 0 is the embedding output
    logits: np.ndarray | None  # [T, V] for LMs, [C] for sequence classifiers, None for bare encoders
    word_ids: list[int | None] = field(default_factory=list)  # word index of each token (None: special)
    special_mask: np.ndarray | None = None  # [T] bool, True for special tokens ([CLS], <s>, ...)
    truncated: bool = False
    notice: str = ""  # shown by views, e.g. "Input truncated from 900 to 512 tokens."
    cross_attentions: np.ndarray | None = None  # enc-dec: [layers, heads, T_dec, T]
    decoder_attentions: np.ndarray | None = None  # enc-dec: [layers, heads, T_dec, T_dec]
    decoder_tokens: list[str] | None = None
    attention_note: str = ""  # why `attentions` is None, when the model returned weights we cannot trust
    attention: AttentionSource | None = None  # per (layer, head) weights: eager's, or computed on demand

    def nbytes(self) -> int:
        arrays = (self.attentions, self.hidden_states, self.logits, self.cross_attentions, self.decoder_attentions)
        own = sum(a.nbytes for a in arrays if a is not None)
        captured = self.attention.nbytes() if isinstance(self.attention, CapturedAttention) else 0
        return own + captured

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def require_attention(self) -> AttentionSource:
        """The attention source (eager weights or on demand), or a clear error saying why not."""
        if self.attention is None:
            self.require_attentions()
        return self.attention

    def require_attentions(self) -> np.ndarray:
        """The eager [L, H, T, T] weights (short inputs, eager attention), or a clear error."""
        if self.attentions is None:
            if self.attention_note:
                raise AttentionUnavailableError(self.attention_note)
            raise AttentionUnavailableError(
                "This model returned no attention weights. Load it with "
                "llm_widgets.load(..., attn_implementation='eager') (transformers' default 'sdpa' and "
                "flash attention do not return them), or pass a model that supports output_attentions."
            )
        return self.attentions


def build_trace(session, text: str, truncate: bool = False) -> Trace:
    """One forward pass over `text`: tokens, hidden states, logits and attention. Attention is the
    eager weights for short inputs of eager models, else computed on demand from the captured
    queries and keys (never [L, H, T, T] for long inputs)."""
    if getattr(session, "backend", None) is not None:  # the session's backend runs it (llm_widgets.backends)
        return session.backend.build_trace(session, text, truncate)
    enc, truncated, notice = session.encode(text, truncate=truncate)
    inputs = dict(enc)
    if session.kind == "encoder-decoder":
        start = session.config.decoder_start_token_id
        start = session.config.pad_token_id if start is None else start
        inputs["decoder_input_ids"] = torch.tensor([[start]], device=session.device)
    ids = enc["input_ids"][0].cpu()
    on_demand = session.kind != "encoder-decoder" and bool(session.adapter.attention_blocks) and (
        len(ids) > EAGER_MAX_TOKENS or getattr(session.config, "_attn_implementation", "eager") != "eager")
    source, note = None, ""
    if on_demand:
        with model_lock(session.model):
            try:
                with capture_attention(session.model, session.adapter.blocks) as cap:
                    out = session.forward(attentions=False, **inputs)
                source = cap.source()
            except (UnsupportedModelError, ValueError) as e:
                if len(ids) > EAGER_MAX_TOKENS:
                    raise UnsupportedModelError(f"{len(ids)} tokens: too long for eager attention weights, "
                                                f"and {e}") from e
                on_demand = False  # short input: the eager weights below
    is_ed = session.kind == "encoder-decoder"
    if not on_demand:  # eager weights, each traced to the block that returned it
        ad = session.adapter
        with attention_owners(session.model, [] if is_ed else ad.blocks, ad.shared) as owners:
            out = session.forward(**inputs)
    tokens = session.tokenizer.convert_ids_to_tokens(ids.tolist())
    word_ids, special = word_ids_and_special(session, text, ids, truncated)

    attn = out.encoder_attentions if is_ed else getattr(out, "attentions", None)  # a state-space model: none
    by_block = None
    if on_demand:
        attn = None
    elif is_ed:
        note = untrusted_attention(session.model, attn, False)
        attn = None if note else attn
    elif attn and all(a is not None for a in attn):
        note = non_eager_attention(session.model)
        weights, have, missing, sink, note = (None, [], {}, None, note) if note else attention_by_block(
            attn, owners, ad.blocks, len(ids), session.is_causal, ad.sinks)
        attn = tuple(w[None] for w in weights) if weights is not None and not missing else None  # every block
        if weights is not None:
            by_block = (weights, have, missing, sink, note)
            note = note if missing else ""
    if attn is None and not note and not is_ed:  # a state-space stack: no block has attention to return
        note = session.adapter.why_not("attention")
    # in the one convention: the embedding output first (a model may omit it: Mamba; the adapter adds it)
    hidden = out.encoder_hidden_states if is_ed else session.adapter.hidden_states(out.hidden_states, enc["input_ids"])
    trace = Trace(
        text=text,
        raw_tokens=tokens,
        tokens=session.readable_tokens(tokens),
        input_ids=ids.numpy(),
        attentions=_stack_attention(attn),
        hidden_states=_to_numpy(torch.stack([h[0] for h in hidden]), "hidden states"),
        logits=_logits(out),
        word_ids=word_ids,
        special_mask=special,
        truncated=truncated,
        notice=notice,
        attention_note=note,
    )
    if by_block is not None:  # by block index; in a hybrid stack only the blocks with attention hold weights
        w, have, missing, sink, bnote = by_block
        trace.attention = EagerAttention(
            trace.attentions if not missing else _to_numpy(w, "attention weights"), blocks=have if missing else None,
            n_blocks=len(ad.blocks), missing=missing, sink_column=_sink(sink), note=bnote)
    else:
        trace.attention = source if source is not None else (
            EagerAttention(trace.attentions) if trace.attentions is not None else None)
    if is_ed:
        trace.cross_attentions = _stack_attention(out.cross_attentions)
        trace.decoder_attentions = _stack_attention(out.decoder_attentions)
        trace.decoder_tokens = session.tokenizer.convert_ids_to_tokens(inputs["decoder_input_ids"][0].tolist())
    return trace


def word_ids_and_special(session, text: str, ids: torch.Tensor, truncated: bool) -> tuple[list, np.ndarray]:
    """The word index of each of the token ids [T] of `text` (None: a special token; all None where
    the tokenizer cannot tell words), and the [T] mask of special tokens ([CLS], <s>, ...)."""
    try:
        word_ids = session.tokenizer(text, truncation=truncated,
                                     max_length=session.max_length if truncated else None).word_ids(0)
    except Exception:
        word_ids = [None] * len(ids)
    if getattr(text, "word_ids", None) is not None:  # a Chat (llm_widgets.chat) knows its own
        word_ids = list(text.word_ids[:len(ids)])
    specials = set(session.tokenizer.all_special_ids)
    return list(word_ids), np.array([i in specials for i in ids.tolist()])


def _to_numpy(t: torch.Tensor, what: str, dtype=np.float32) -> np.ndarray:
    arr = t.detach().float().cpu().numpy().astype(dtype, copy=False)
    if not np.isfinite(arr).all():
        raise NonFiniteError(
            f"The model produced non-finite values (NaN/inf) in its {what}. This often means "
            f"float16 overflow: load with dtype='float32' (or 'bfloat16')."
        )
    return arr


def _stack_attention(attn) -> np.ndarray | None:
    if attn is None or len(attn) == 0 or any(a is None for a in attn):
        return None
    stacked = torch.stack([a[0] for a in attn])  # [L, H, T, S]
    big = stacked.numel() * 4 > _FLOAT16_ATTENTION_ABOVE
    return _to_numpy(stacked, "attention weights", np.float16 if big else np.float32)


def _sink(sink) -> np.ndarray | None:
    return None if sink is None else _to_numpy(sink, "attention sinks")


def _logits(out) -> np.ndarray | None:
    """[T, V] logits (or [C] for classifiers); None without an output head or, for long inputs with
    large vocabularies, above _LOGITS_MAX_VALUES (views read the logits they need themselves)."""
    logits = getattr(out, "logits", None)
    if logits is None or logits[0].numel() > _LOGITS_MAX_VALUES:
        return None
    return _to_numpy(logits[0], "logits")
