"""The nnsight backend: every forward pass a view needs, as an nnsight trace over the adapter's modules.

    s = lw.load(model_or_name, backend="nnsight")                  # runs here, through nnsight
    s = lw.load("meta-llama/Llama-3.1-70B", backend="nnsight", remote=True)   # on NDIF
    s = lw.load(nnsight_model)                                     # a TransformersModel / LanguageModel

One entry point, `NnsightBackend.request`, opens every trace (`with model.trace(..., remote=...)`):
the request bodies are the functions of `llm_widgets.execution.remote` with the ops they run (torch
only, shipped by value to a server: the nnsight executor, llm_widgets.execution.nnsight, builds
them from compute's Programs), so the same request runs here (remote=False), in nnsight's local simulation of a remote
run (remote='local': serialized and deserialized with llm_widgets hidden, as a server would see
it) or on NDIF (remote=True). (nnsight's `VLLM` is refused with the reason: vLLM's flattened token
layout does not fit these requests yet.) Only what a body appends to its box comes back; every
request is logged (`log`: label, rows, seconds, bytes sent and returned) and reported to the view's
progress callback.

A session on this backend refuses the native torch-hook path (a direct forward of the model raises
`BackendUnsupportedError`), so a computation that is not a Program (or needs a capability the
nnsight executor lacks) says so at once instead of silently running here, or failing deep inside
on a model whose weights are elsewhere.

Model facts (the adapter) come from the module tree: discovered on the model itself when its
weights are here, else (remote: nnsight builds the model on the meta device) on a small random
replica of the same architecture built from its config, with the counts (layers, heads, widths)
read from the real config and module shapes (`nnsight_discovery`).
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import BackendUnsupportedError, LLMWidgetsError
from ..guards import GUARD_MARK
from ..adapter import readout
from ..execution import ops
from ..execution import remote as remote_body
from ..execution.nnsight import Nnsight
from . import nnsight_trace
from ..execution.cost import Cost

# Remote runs refuse requests estimated above these (change them here to allow more): backward
# passes x tokens x parameters (~ the FLOPs of the backward passes / 4) and bytes sent back.
REMOTE_LIMITS = {"backward_token_params": 2e15, "bytes_returned": 4 << 30}


@dataclass
class Request:
    """One trace (one round trip when remote)."""

    label: str
    rows: int  # batch rows of the forward pass
    seconds: float
    bytes_sent: int  # tensors in the request (inputs and arguments)
    bytes_returned: int  # tensors in what came back
    grad: bool = False
    remote: Any = False


def tensor_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) result."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def is_envoy(obj) -> bool:
    """An nnsight model (NNsight, TransformersModel, LanguageModel, VLLM: an Envoy)."""
    try:
        from nnsight.intervention.envoy import Envoy
    except ImportError:
        return False
    return isinstance(obj, Envoy)


def is_vllm(lm) -> bool:
    """nnsight's VLLM wrapper (importable without vLLM itself: nnsight imports vLLM when it loads one)."""
    try:
        from nnsight.modeling.vllm import VLLM
    except ImportError:
        return False
    return isinstance(lm, VLLM)


def refuse_vllm(lm) -> None:
    if is_vllm(lm):
        raise BackendUnsupportedError(
            "vLLM-served models (nnsight's VLLM) are not supported by the nnsight backend: vLLM runs its own "
            "module tree (fused query/key/value projections; Llama-style decoder layers return (hidden, "
            "residual) and add the residual inside the next layer's norm, so a block's output is not the "
            "residual stream), hands each request's activations as a flat [tokens, d] slab, computes no "
            "gradients and returns logits only where it samples; the views' requests read transformers' "
            "modules as [batch, tokens, d] rows. Use a TransformersModel (here, or remote=True on NDIF).")


def require_nnsight():
    try:
        import nnsight
    except ImportError:
        raise LLMWidgetsError("backend='nnsight' needs nnsight: pip install 'llm-widgets[nnsight]' "
                              "(nnsight>=0.8,<0.9).") from None
    major_minor = tuple(int(x) for x in nnsight.__version__.split(".")[:2])
    if major_minor != (0, 8):
        import warnings

        warnings.warn(f"llm-widgets is tested with nnsight 0.8.x; this is nnsight {nnsight.__version__}.",
                      stacklevel=3)
    return nnsight


def has_meta_weights(module) -> bool:
    return any(p.device.type == "meta" for p in module.parameters())


# -- wrapping a model ------------------------------------------------------------------------------
def wrap(model: torch.nn.Module, tokenizer):
    """An nnsight model over a local torch model: a TransformersModel (which can also run remotely
    and in nnsight's local simulation of a remote run) where nnsight can tell the model's task, else
    a plain NNsight envoy (local execution only). The tokenizer is copied: TransformersModel sets
    its padding side, and the session keeps the caller's as it is."""
    require_nnsight()
    from nnsight import NNsight

    import warnings

    with warnings.catch_warnings():  # BERT's `output` submodules are mounted as `E_output` (see envoy_path)
        warnings.filterwarnings("ignore", message=".*nnsight already serves on every module.*")
        try:
            from nnsight.modeling.transformers import TransformersModel

            return TransformersModel(model, tokenizer=copy.deepcopy(tokenizer))
        except Exception:  # no pipeline task for this model (a bare encoder): local only
            return NNsight(model)


def load_remote(name: str, *, task: str | None, attn_implementation: str | None, dtype,
                trust_remote_code: bool, **kwargs):
    """A TransformersModel for a Hugging Face id, built on the meta device (no weights here): what
    NDIF (remote=True) runs. Loading its config and tokenizer needs the hub."""
    require_nnsight()
    from nnsight.modeling.transformers import TransformersModel

    tasks = {"causal-lm": "text-generation", "classification": "text-classification", "masked-lm": "fill-mask"}
    if task is not None and task not in tasks:
        raise LLMWidgetsError(f"task={task!r} cannot run through nnsight remotely; use one of {sorted(tasks)}.")
    kw = dict(kwargs)
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    if dtype is not None:
        kw["dtype"] = dtype
    if trust_remote_code:
        kw["trust_remote_code"] = True
    return TransformersModel(name, task=tasks.get(task), **kw)


# -- the backend -------------------------------------------------------------------------------------
class NnsightBackend:
    """Runs a session's views as nnsight traces. `remote`: False (here), 'local' (nnsight's local
    simulation of a remote run: each request serialized and run with llm_widgets hidden), True (NDIF,
    the host in nnsight's CONFIG.API.HOST) or a host URL."""

    name = "nnsight"

    # What compute/ asks of a session's backend instead of running torch hooks (compute never imports
    # this package): the same signatures and results as the native functions they stand for.
    build_trace = staticmethod(nnsight_trace.build_trace)

    def __init__(self, lm, *, remote: bool | str = False, verbose: bool = False):
        require_nnsight()
        refuse_vllm(lm)
        if remote and not hasattr(lm, "_remote_backend"):
            raise LLMWidgetsError(f"remote={remote!r} needs an nnsight model that can run remotely "
                                  f"(TransformersModel / LanguageModel), not {type(lm).__name__}.")
        self.lm = lm
        self.remote = remote
        self._weights_here = not has_meta_weights(lm._module)  # fixed: a lazy dispatch (remote='local') swaps it
        self.verbose = verbose
        self.log: list[Request] = []
        self.listeners: list[Callable[[Request], None]] = []
        self.attention: list | None = None
        self.attention_note = ""
        self.order: dict = {}
        self.session = None
        self.executor = Nnsight(self)  # runs compute's Programs (llm_widgets.execution) as traces here
        self._shipped: set = set()
        if remote:  # the request bodies and the ops they run ship by value: the server has no llm_widgets
            self.ship([ops, readout, remote_body])

    def ship(self, things) -> None:
        """Register with nnsight, to ship by value, the modules of `things` (modules, or ops whose class
        module it is: llm_widgets.execution.ops and any other torch-only module of ops), once each."""
        import sys
        import types

        import nnsight

        for x in things:
            if x is None:
                continue
            module = x if isinstance(x, types.ModuleType) else sys.modules.get(type(x).__module__)
            if module is not None and module.__name__.startswith("llm_widgets") and module not in self._shipped:
                nnsight.register(module)
                self._shipped.add(module)

    # -- facts --------------------------------------------------------------------------------------
    @property
    def module(self) -> torch.nn.Module:
        return self.lm._module

    @property
    def weights_here(self) -> bool:
        """The model's weights are in this process (not meta tensors standing in for a server's)."""
        return self._weights_here

    @property
    def where(self) -> str:
        return {False: "here", None: "here", "local": "local simulation of a remote run", True: "NDIF"}.get(
            self.remote, str(self.remote))

    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def prepare(self, session, layout) -> None:
        """Before the session reads its adapter: a model without its weights gets one from a replica."""
        from ..adapter import discovery
        from .nnsight_discovery import meta_adapter

        self.session = session
        if not self.weights_here and session.model not in discovery._ADAPTERS:
            discovery._ADAPTERS[session.model] = (meta_adapter(session.model, layout), layout)

    def install(self, session) -> None:
        """After discovery: the order of the sites, the attention calls, and the guard that refuses
        direct forward passes of the model (every view goes through `request`)."""
        from .nnsight_discovery import attention_ops, site_order

        if session._adapter_error is not None:
            return
        ad = session.adapter
        if ad.why_not("interventions"):
            raise BackendUnsupportedError(f"{session.name} through nnsight: {ad.why_not('interventions')}.")
        if ad.shared:
            raise BackendUnsupportedError("models with one block shared by every layer (ALBERT) are not "
                                          "supported through the nnsight backend: use backend='native'.")
        small = getattr(ad, "replica", None)
        if small is not None:  # weights elsewhere: the replica's forward says the order
            from ..adapter import adapter_of

            self.order = site_order(small, adapter_of(small))
        else:
            self.order = site_order(session.model, ad)
        self.attention, self.attention_note = attention_ops(self.lm, ad)
        self._guard(session.model)

    def _guard(self, model) -> None:
        import weakref

        lm = self.lm
        guarded = weakref.WeakSet()

        def refuse(module, args, kwargs):
            # copies of the model (deepcopy keeps its hooks) are not this session's: left alone
            if module in guarded and not lm.interleaver.interleaving:
                raise self.refuse("This computation (a direct forward pass of the model)")

        setattr(refuse, GUARD_MARK, True)  # reads nothing, changes nothing: the trace cache ignores it
        targets = [model]
        base = getattr(model, "base_model", None)
        if isinstance(base, torch.nn.Module) and base is not model:
            targets.append(base)
        for m in targets:
            guarded.add(m)
            m.register_forward_pre_hook(refuse, with_kwargs=True)

    def refuse(self, what: str) -> BackendUnsupportedError:
        return BackendUnsupportedError(
            f"{what} runs the model directly with torch hooks, which a session on the nnsight backend "
            f"(model {'here' if self.weights_here else 'served elsewhere'}, executing {self.where}) does not do. "
            f"Through nnsight: {', '.join(SUPPORTED_VIEWS)}. Load the model with backend='native' "
            f"(the default) for the rest.")

    # -- the one trace entry point --------------------------------------------------------------------
    def request(self, label: str, body: Callable, inputs: dict, *args, grad: bool = False,
                report: Callable[[float, str], None] | None = None, step: tuple[int, int] = (0, 1)):
        """Run `body(lm, box, *args)` inside one `with lm.trace(**inputs)` (here, simulated or
        remote by `remote`); returns what the body appended to its box. One request is one trace
        and, remotely, one round trip."""
        i, n = step
        if report is not None:
            report(i / n, f"{label}: request {i + 1}/{n} ({self.where})")
        import nnsight

        lm = self.lm
        kw = {"remote": self.remote} if self.remote else {}
        rows = next((int(v.shape[0]) for v in inputs.values() if isinstance(v, torch.Tensor)), 1)
        sent = tensor_bytes(list(inputs.values())) + tensor_bytes(list(args))
        t0 = time.perf_counter()
        with (contextlib.nullcontext() if grad else torch.no_grad()):
            with lm.trace(**inputs, **kw):
                box = nnsight.save([])
                body(lm, box, *args)
        got = box[0] if box else None
        req = Request(label, rows, time.perf_counter() - t0, sent, tensor_bytes(got), grad, self.remote)
        self.log.append(req)
        for fn in self.listeners:
            fn(req)
        if self.verbose:
            print(f"[nnsight {self.where}] {label}: {rows} rows, {req.seconds:.2f}s, "
                  f"{req.bytes_returned / 2 ** 20:.2f} MiB back")
        if report is not None:
            report((i + 1) / n, f"{label}: request {i + 1}/{n} done")
        return got

    # -- what may run remotely ------------------------------------------------------------------------
    def check_cost(self, what: str, cost: Cost) -> None:
        """Refuse, before sending anything, a remote request estimated above REMOTE_LIMITS."""
        if not self.remote:
            return
        cost.parameters = cost.parameters or self.parameters()
        work = cost.backward_rows * max(1, cost.tokens) * cost.parameters
        over = []
        if work > REMOTE_LIMITS["backward_token_params"]:
            over.append(f"{cost.backward_rows} backward passes over {cost.tokens} tokens of a "
                        f"{cost.parameters / 1e9:.3g}B-parameter model (~{6 * work / 1e15:.3g} PFLOP)")
        if cost.bytes_returned > REMOTE_LIMITS["bytes_returned"]:
            over.append(f"{cost.bytes_returned / 2 ** 30:.2f} GiB to send back")
        if over:
            raise BackendUnsupportedError(
                f"{what} is not run remotely ({self.where}): {' and '.join(over)}. Estimate: {cost}. Lower the "
                f"work (fewer steps / targets, a shorter text), run it on a local model, or raise "
                f"llm_widgets.backends.nnsight_backend.REMOTE_LIMITS.")

    def summary(self) -> dict:
        """Requests so far: count, rows, seconds, bytes returned."""
        return {"requests": len(self.log), "rows": sum(r.rows for r in self.log),
                "seconds": sum(r.seconds for r in self.log),
                "bytes_returned": sum(r.bytes_returned for r in self.log)}


SUPPORTED_VIEWS = ("trace (tokens, hidden states, logits, attention on demand: AttentionView)",
                   "neuron activations (NeuronView)", "ablation_effect (zero, mean, resample)",
                   "activation patching (PatchingView)",
                   "logit lens (LogitLensView)", "probing / concept activations (extract, token_states)",
                   "attribution by ig, grad_x_input, saliency, occlusion, shapley, permutation, lime, "
                   "exact shap (AttributionView)")
