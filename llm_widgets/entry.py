"""`llm_widgets.load`: the entry point that wires a model to its executor. The model is loaded here
(llm_widgets.loading) and run with torch hooks, or wrapped for nnsight (llm_widgets.backends) when
a backend or an nnsight model says so; one printed line then names the views that do not apply."""
from __future__ import annotations

from .compute.capabilities import capabilities
from .errors import LLMWidgetsError
from .loading import load as load_native
from .session import Session


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
                            offload_folder=offload_folder, max_memory=max_memory, remote=remote, load_native=load)
    if backend not in (None, "native", "nnsight"):
        raise LLMWidgetsError(f"backend must be 'native' or 'nnsight', got {backend!r}")
    if backend == "native" and remote:
        raise LLMWidgetsError("remote= runs the model through nnsight: pass backend='nnsight'.")
    kwargs = dict(device=device, dtype=dtype, task=task, attn_implementation=attn_implementation,
                  trust_remote_code=trust_remote_code, layout=layout, device_map=device_map,
                  offload_folder=offload_folder, max_memory=max_memory)
    if backend == "nnsight" or remote or _is_envoy(model):
        from .backends.nnsight_session import load_nnsight

        return _told(load_nnsight(model, remote=remote, load_native=load_native, **kwargs))
    return _told(load_native(model, **kwargs))


def _told(session: Session) -> Session:
    """The session, after one printed line (shown under the notebook cell, every load) naming the views
    that do not apply to its model; `lw.capabilities(session)` says why. Nothing where all apply, or where
    the model's layout could not be discovered (the views say why when used)."""
    try:
        line = capabilities(session).summary()
    except LLMWidgetsError:
        return session
    if line:
        print(line)
    return session


def _is_envoy(model) -> bool:
    """An nnsight model (its Envoy), without importing nnsight unless it is loaded already."""
    import sys

    nnsight = sys.modules.get("nnsight")
    return nnsight is not None and isinstance(model, getattr(nnsight, "Envoy", ()))


