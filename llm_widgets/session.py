"""Session: one model + tokenizer on one device; `trace(text)` runs one forward pass, cached by text.

Every view takes a Session, so several views over the same text share one forward pass.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch

from .chat import Chat, chat, check_same_tokenizer, check_single_prefix
from .errors import EmptyInputError, InputTooLongError, OutOfMemoryError, UnsupportedModelError
from .guards import intervening, model_lock, model_state
from .token_text import readable
from .placement import check_device, check_dtype, default_device, dispatched_device, is_dispatched, parse_dtype
from .trace import Trace, build_trace  # noqa: F401

CACHE_BYTES = 2 << 30  # traces kept per session, by size (oldest dropped first; the newest always kept)


class Session:
    """A model and its tokenizer, ready to trace texts. Build one with `llm_widgets.load`."""

    def __init__(self, model, tokenizer, *, name: str | None = None, device=None, dtype=None,
                 layout=None, backend=None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        # None: torch hooks on the model (native, the reference); an NnsightBackend: nnsight traces
        # (llm_widgets.backends.nnsight_backend), run here, in a local simulation of a remote run, or remotely
        self.backend = backend
        dtype = parse_dtype(dtype)
        check_dtype(dtype)
        elsewhere = backend is not None and not backend.weights_here  # meta tensors; the weights on a server
        self.dispatched = not elsewhere and is_dispatched(model)
        if elsewhere:  # inputs are built on the CPU; the server places them
            device = torch.device("cpu")
        elif self.dispatched:  # placed by accelerate (device_map / offload): left where it is
            device = dispatched_device(model, device, dtype)
        else:
            device = check_device(device or default_device())
            if dtype is not None:
                model.to(dtype)
            model.to(device)
        model.eval()
        model_lock(model)  # background work and the kernel thread take turns on the model
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        self.layout = layout
        self._cache: OrderedDict[tuple, Trace] = OrderedDict()
        self._adapter_error: Exception | None = None
        if backend is not None:
            backend.prepare(self, layout)
        try:  # now, before any user hook can see the probe forward
            _ = self.adapter
        except UnsupportedModelError as e:  # raised again where the adapter is needed
            self._adapter_error = e
        if backend is not None:
            backend.install(self)

    # -- model facts ---------------------------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def adapter(self):
        """Model facts found from the module tree (blocks, heads, readout; see llm_widgets.adapter),
        discovered and checked on first use."""
        from .adapter import adapter_of

        if self._adapter_error is not None:
            raise self._adapter_error
        return adapter_of(self.model, self.layout)

    @property
    def kind(self) -> str:
        """'encoder', 'decoder' (causal LM) or 'encoder-decoder'."""
        return self.adapter.kind

    @property
    def is_causal(self) -> bool:
        """True when no position sees later ones (checked on the model, not read from its name)."""
        return self.adapter.causal

    @property
    def n_layers(self) -> int:
        return self.adapter.n_layers

    @property
    def n_heads(self) -> int:
        return self.adapter.n_heads

    @property
    def max_length(self) -> int | None:
        """Most tokens the model accepts (position embeddings / tokenizer limit); None if unbounded."""
        c = self.config
        limits = [getattr(c, k, None) for k in ("max_position_embeddings", "n_positions")]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max is not None and tok_max < 1_000_000:
            limits.append(tok_max)
        limits = [int(x) for x in limits if isinstance(x, int) and x > 0]
        return min(limits) if limits else None

    @property
    def class_labels(self) -> list[str] | None:
        """Class names of a sequence classifier, in index order; None for other models."""
        if self.adapter.output != "classes":
            return None
        id2label = getattr(self.config, "id2label", None) or {}
        return [str(id2label.get(i, f"LABEL_{i}")) for i in range(self.config.num_labels)]

    def __repr__(self) -> str:
        on = "" if self.backend is None else f", backend=nnsight ({self.backend.where})"
        return (f"Session({self.name!r}, kind={self.kind}, layers={self.n_layers}, "
                f"heads={self.n_heads}, device={self.device}, dtype={self.dtype}{on})")

    # -- input ---------------------------------------------------------------------------------
    def encode(self, text: str, *, truncate: bool = False) -> tuple[dict, bool, str]:
        """Tokenize one text for the model. Returns (tensors on device, truncated, notice). A `Chat`
        (Session.chat(messages)) gives its own ids, exactly as the chat template made them; a plain
        text that already starts with what the tokenizer adds (a rendered chat template's BOS) is an
        error rather than a double BOS."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if isinstance(text, Chat):
            check_same_tokenizer(self.tokenizer, text)
            enc = {k: torch.tensor([v]) for k, v in text.encoding.items()}
        else:
            if not text.strip():
                raise EmptyInputError("The text is empty: type some words to look at.")
            enc = self.tokenizer(text, return_tensors="pt", verbose=False)  # our own length check speaks (below)
            check_single_prefix(self.tokenizer, enc["input_ids"][0].tolist())
        n = enc["input_ids"].shape[1]
        notice = self.check_lengths([n], truncate=truncate, what=None)
        truncated = bool(notice)
        if truncated and isinstance(text, Chat):  # the first max_length tokens of the conversation
            enc = {k: v[:, :self.max_length] for k, v in enc.items()}
        elif truncated:
            enc = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_length)
        if n == 0 or enc["input_ids"].shape[1] == 0:
            raise EmptyInputError("The text produced no tokens.")
        return {k: v.to(self.device) for k, v in model_inputs(enc).items()}, truncated, notice

    def chat(self, messages, *, chat_template: str | None = None) -> Chat:
        """A conversation as input for any view or `trace`: the tokenizer's chat template applied to
        `messages` ([{'role': ..., 'content': ...}, ...]) with the generation prompt (a reply is to
        come), with the role of every token (llm_widgets.chat). chat_template: a Jinja template to
        use instead of the tokenizer's own (needed where it has none)."""
        return chat(self.tokenizer, messages, chat_template=chat_template)

    def check_lengths(self, lengths, *, truncate: bool, what: str | None = "texts") -> str:
        """The rule for inputs longer than the model accepts, shared by everything that feeds texts to
        the model: without `truncate`, InputTooLongError naming them; with it, the notice saying what
        is cut to the first `max_length` tokens ('' when nothing is). lengths: tokens of each text;
        what: the argument holding them (named as what[i]), None for one text."""
        limit = self.max_length
        over = [] if limit is None else [i for i, n in enumerate(lengths) if n > limit]
        if not over:
            return ""
        if what is None:
            if not truncate:
                raise InputTooLongError(f"The text is {lengths[0]} tokens long; {self.name} accepts at most {limit}. "
                                        f"Shorten it, or pass truncate=True to keep the first {limit} tokens.")
            return f"Input truncated from {lengths[0]} to {limit} tokens (the model's maximum)."
        named = ", ".join(f"{what}[{i}] is {lengths[i]} tokens long" for i in over[:3])
        more = f" (and {len(over) - 3} more)" if len(over) > 3 else ""
        if not truncate:
            raise InputTooLongError(f"{named}{more}; {self.name} accepts at most {limit}. Shorten "
                                    f"{'it' if len(over) == 1 else 'them'} or pass truncate=True (keeps the first "
                                    f"{limit} tokens).")
        which = ", ".join(f"{what}[{i}]" for i in over[:3]) + (f" and {len(over) - 3} more" if len(over) > 3 else "")
        return (f"{len(over)} of {len(lengths)} {what} truncated to their first {limit} tokens (the model's "
                f"maximum): {which}.")

    def readable_tokens(self, tokens: list[str]) -> list[str]:
        """Readable form of each token: byte-level BPE markers decoded, bytes that are not whole
        characters as escapes, newlines/tabs made visible (llm_widgets.token_text)."""
        out = []
        for t in tokens:
            try:
                s = self.tokenizer.convert_tokens_to_string([t])
            except Exception:  # some tokenizers reject single special tokens
                s = t
            out.append(readable(t, s if s else t))
        return out

    # -- forward -------------------------------------------------------------------------------
    def forward(self, *, attentions: bool = True, hidden: bool = True, grad: bool = False, base_only: bool = False,
                **inputs):
        """model(**inputs) with hidden states (unless hidden=False) and eager attention weights (unless
        attentions=False), under no_grad unless `grad`; `base_only`: the base model (the encoder of an
        encoder-decoder) without its output head. OOM becomes a clear error."""
        if self.backend is not None:
            raise self.backend.refuse("This view")
        model = self.model
        if base_only:
            model = model.get_encoder() if self.kind == "encoder-decoder" else getattr(model, "base_model", model)
        try:
            with contextlib.nullcontext() if grad else torch.no_grad():
                out = model(**inputs, output_attentions=attentions, output_hidden_states=hidden, return_dict=True)
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            n = inputs["input_ids"].shape[-1] if "input_ids" in inputs else "?"
            raise OutOfMemoryError(
                f"Out of GPU memory on {n} tokens with {self.name}. Use a shorter text "
                f"(truncate=True), dtype='bfloat16', device_map='auto' (spread the model over GPUs and "
                f"CPU), or device='cpu'."
            ) from e
        if self.dispatched:  # blocks on several devices: per-layer outputs gathered on the input device
            for key in ("hidden_states", "attentions", "encoder_hidden_states", "encoder_attentions"):
                got = getattr(out, key, None)
                if isinstance(got, tuple) and all(isinstance(x, torch.Tensor) for x in got):
                    out[key] = tuple(x.to(self.device) for x in got)
        return out

    def trace(self, text: str, *, truncate: bool = False) -> Trace:
        """One forward pass over `text` (cached: views on the same text share it)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        state = None if intervening() else model_state(self.model)  # an intervention of this thread: not cached
        key = (text, truncate, state)
        if state is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        trace = build_trace(self, text, truncate)
        if state is None:  # computed under hooks: never served again
            return trace
        self._cache[key] = trace
        total = sum(t.nbytes() for t in self._cache.values())
        while len(self._cache) > 1 and total > CACHE_BYTES:  # oldest first
            total -= self._cache.popitem(last=False)[1].nbytes()
        return trace


def model_inputs(enc) -> dict:
    """The tokenizer's tensors the model should see. All-zero token_type_ids (one segment) are
    dropped: a model with segment embeddings reads a missing one as zeros anyway, and a model
    without them (GPT-2 paired with a BERT tokenizer) would add wte(0) to every position."""
    out = dict(enc)
    tt = out.get("token_type_ids")
    if tt is not None and not bool(torch.as_tensor(tt).any()):
        out.pop("token_type_ids")
    return out

