"""`llm_widgets.load(..., backend='nnsight')`: a Session whose views run as nnsight traces."""
from __future__ import annotations

from ..errors import LLMWidgetsError
from .nnsight_backend import (NnsightBackend, has_meta_weights, is_envoy, load_remote, refuse_vllm, require_nnsight,
                              wrap)


def load_nnsight(model, *, device=None, dtype=None, task=None, attn_implementation="eager",
                 trust_remote_code=False, layout=None, device_map=None, offload_folder=None, max_memory=None,
                 remote=False, load_native=None):
    """A Session on the nnsight backend.

    model: an nnsight model (TransformersModel, LanguageModel, VLLM, NNsight: used as it is), a
    ``(model, tokenizer)`` pair or a Hugging Face id / local directory (loaded as `load` does, then
    wrapped), or, with remote=True, a Hugging Face id that NDIF serves (built here on the meta
    device: no weights are downloaded; attention runs with 'sdpa' unless attn_implementation says
    otherwise than the default, since the views compute attention weights from the captured queries
    and keys). load_native: llm_widgets.load, which builds the native session first (passed in by
    it: the entry point imports this module, not the other way round)."""
    from ..session import Session

    require_nnsight()
    if is_envoy(model):
        lm = model
        refuse_vllm(lm)
        tok = getattr(lm, "tokenizer", None)
        if tok is None:
            raise LLMWidgetsError(f"This {type(lm).__name__} has no tokenizer: wrap the model with one, e.g. "
                                  "TransformersModel(model, tokenizer=tok), or pass (model, tokenizer).")
        if not remote and has_meta_weights(lm._module) and hasattr(lm, "dispatch"):
            lm.dispatch()  # run here: load the weights now
        backend = NnsightBackend(lm, remote=remote)
        if backend.weights_here and device is None:
            from ..adapter.probe import input_device

            device = input_device(lm._module)
        return Session(lm._module, tok, name=getattr(lm._module.config, "_name_or_path", None), device=device,
                       dtype=dtype, layout=layout, backend=backend)
    if remote is True or (isinstance(remote, str) and remote != "local"):  # served by NDIF (or that host)
        if not isinstance(model, str):
            raise LLMWidgetsError("remote=True runs a model NDIF serves: pass its Hugging Face id "
                                  "(e.g. 'meta-llama/Llama-3.1-8B').")
        impl = "sdpa" if attn_implementation == "eager" else attn_implementation
        lm = load_remote(model, task=task, attn_implementation=impl, dtype=dtype,
                         trust_remote_code=trust_remote_code)
        return load_nnsight(lm, layout=layout, remote=remote)
    if load_native is None:
        raise LLMWidgetsError("load_nnsight builds a native session first: call it through llm_widgets.load(..., "
                              "backend='nnsight').")
    native = load_native(model, device=device, dtype=dtype, task=task, attn_implementation=attn_implementation,
                         trust_remote_code=trust_remote_code, layout=layout, device_map=device_map,
                         offload_folder=offload_folder, max_memory=max_memory)
    lm = wrap(native.model, native.tokenizer)
    return Session(native.model, native.tokenizer, name=native.name, device=native.device, layout=layout,
                   backend=NnsightBackend(lm, remote=remote))
