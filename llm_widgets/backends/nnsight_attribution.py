"""Attribution on the nnsight backend: the objective f(E) whose model runs only inside requests
(the first block's input replaced by E inside the trace), its gradients (one request per batch:
K copies of the batch, one backward pass on the server), and what a method would cost remotely.
Requests: 1 for the input embeddings, 1 for the baseline's, 1 for f(x) and f(baseline), then 1 per
batch of IG steps / perturbations. The targets, checks and names are those of the native objective
(llm_widgets.compute.attribution.objective)."""
from __future__ import annotations

import torch

from ..compute.attribution.objective import Objective as _Objective
from ..compute.attribution.objective import (class_names, class_targets, custom_names, custom_target_name,
                                             decoder_names, decoder_targets)
from ..compute.attribution.runner import Runner as _Runner
from ..errors import BackendUnsupportedError, LLMWidgetsError
from . import nnsight_requests as rq
from .cost import Cost
from .nnsight_discovery import envoy_path
from .nnsight_views import _backend, _keeps_logits

GRADIENT_METHODS = ("ig", "grad_x_input", "saliency")
FORWARD_METHODS = ("occlusion", "shapley", "lime", "permutation", "shap")


class Runner(_Runner):
    """Runner whose gradients come from one request per batch: K copies of the batch (one per
    target) and one backward pass on the server."""

    def grads(self, E: torch.Tensor) -> torch.Tensor:
        f = self.f
        k = f.num_targets
        b = E.shape[0]
        got = f.session.backend.request("attribution gradients", rq.gradients, f.inputs(b), f.block_path,
                                        E.to(f.dtype), f.suffix, f.spec, f.head_cut if k > 1 else None, grad=True)
        from ..compute.attribution.runner import check_finite

        check_finite(got["values"], "target outputs")
        return got["grads"]


class Objective(_Objective):
    """f(E) through nnsight: the first block's input replaced by E inside the trace, the targets
    computed from the model output there (`nnsight_requests._targets`, from `spec`)."""

    runner = Runner

    def __init__(self, session, enc, spec, names_, ids, output, suffix_ids=None, contrast=None, forward=None):
        self.spec = spec
        self.forward_kwargs = dict(forward or {})
        self.block_path = envoy_path(session.adapter.blocks[0].path)
        self.head_cut = None  # (head path, target positions): two-stage gradients, as Runner._split_grads
        super().__init__(session, enc, None, names_, ids, output, suffix_ids=suffix_ids, contrast=contrast)

    def inputs(self, b: int, **over) -> dict:
        return {**self._kwargs(b, **over), **self.forward_kwargs}

    def capture(self, **inputs) -> torch.Tensor:
        return self.session.backend.request("attribution: embeddings", rq.first_input, self._kwargs(1, **inputs),
                                            self.block_path)

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        path = envoy_path(_module_path(self.session.model, self.session.model.get_input_embeddings()))
        return self.session.backend.request("attribution: word embeddings", rq.first_output,
                                            self._kwargs(ids.shape[0], input_ids=ids), path)

    def __call__(self, E, cut=None, *, extra=None, watch=()):
        if cut is not None or extra or watch:
            raise BackendUnsupportedError("this attribution method reads activations or attention weights with "
                                          "torch hooks; through the nnsight backend use one of "
                                          f"{GRADIENT_METHODS + FORWARD_METHODS}.")
        out = self.session.backend.request("attribution: f(E)", rq.targets, self.inputs(E.shape[0]),
                                           self.block_path, E.to(self.dtype), self.suffix, self.spec)
        return out.float()


def _module_path(model, module) -> str:
    for name, mod in model.named_modules():
        if mod is module:
            return name
    raise LLMWidgetsError("could not find the input embeddings in the model's module tree")


def _next_tokens(session, input_ids, k: int) -> list[int]:
    """objective.greedy_generate through nnsight: one request per generated token."""
    ids, out = input_ids, []
    limit = session.max_length
    kept = _keeps_logits(session)
    for step in range(k):
        if limit is not None and ids.shape[1] >= limit:
            break
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), **({"logits_to_keep": 1} if kept else {})}
        lg = session.backend.request("generate", rq.output_logits, inputs, -1, kept, step=(step, k))
        nxt = int(lg[0].argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]], device=ids.device)], dim=1)
    return out


def build_objective(session, enc, target=None, *, contrast=None, generate=None, output=None):
    """compute.attribution.objective.build_objective through nnsight (the same targets, checks and
    names; the model runs only inside requests)."""
    kind = session.kind
    name = custom_target_name(session, target)
    if name is not None:
        spec = {"kind": "custom", "fn": target}
        f = Objective(session, enc, spec, [name], [-1], "custom")
        try:
            probe = f(f.x)
        except BackendUnsupportedError:
            raise
        except Exception as e:
            raise LLMWidgetsError("A callable target must return a tensor [batch] or [batch, K] computed "
                                  f"from the model output (with gradients); it raised {type(e).__name__}: {e}") from e
        k = probe.shape[-1]
        f.names, f.ids = custom_names(name, k), [-1] * k
        return f

    if kind == "decoder":
        tgt, output, other = decoder_targets(session, enc, target, contrast, generate, output, _next_tokens)
        k = len(tgt)
        T = enc["input_ids"].shape[1]
        tgt_t = torch.tensor(tgt)
        kept = _keeps_logits(session)
        spec = {"kind": "decoder", "kept": kept, "positions": torch.arange(T - 1, T - 1 + k), "output": output,
                "ids": tgt_t, "other": other}
        labels, cname = decoder_names(session, tgt, other)
        f = Objective(session, enc, spec, labels, tgt, output, suffix_ids=tgt_t[:-1].to(session.device),
                      contrast=cname, forward={"logits_to_keep": k} if kept else {})
        head = session.model.get_output_embeddings()
        if head is not None and other is None:
            f.head_cut = (envoy_path(_module_path(session.model, head)),
                          list(range(k)) if kept else [T - 1 + j for j in range(k)])
        return f

    def predicted() -> int:
        lg = session.backend.request("attribution: prediction", rq.output_logits, dict(enc), None, False)
        return int(lg[0].argmax())

    labels, classes, other, output = class_targets(session, target, contrast, generate, output, predicted)
    spec = {"kind": "classes", "output": output, "ids": classes, "other": other}
    return Objective(session, enc, spec, class_names(labels, classes, other), classes, output,
                     contrast=labels[other] if other is not None else None)


def attribution_cost(session, n_tokens: int, method, *, n_targets: int = 1, steps: int = 50, n_samples=None,
                     n_features: int | None = None, batch: int = 64, faithfulness: bool = True) -> Cost:
    """Requests, rows forward / backward and bytes returned of one attribution (first IG pass)."""
    ad = session.adapter
    n = n_features if n_features is not None else n_tokens
    fwd, back, back_bytes = 3, 0, 0
    if method.key == "ig":
        back = steps * n_targets
        back_bytes = back * n_tokens * ad.d_model * 4
    elif method.key in ("grad_x_input", "saliency"):
        back = n_targets
        back_bytes = back * n_tokens * ad.d_model * 4
    elif method.key == "occlusion":
        fwd += n
    elif method.key == "shapley":
        fwd += (n_samples or 25) * (n + 1)
    elif method.key == "lime":
        fwd += (n_samples or 200) * n_targets
    elif method.key == "permutation":
        fwd += n * min(n_samples or 8, max(1, n - 1))
    elif method.key == "shap":
        fwd += 2 ** min(n, 12)
    if faithfulness:
        fwd += 2 * n + 2
    reqs = 3 + -(-(fwd - 3) // max(1, batch)) + (-(-back // max(1, batch)) if back else 0)
    return Cost(requests=reqs, forward_rows=fwd + back, backward_rows=back, tokens=n_tokens,
                bytes_returned=back_bytes + fwd * n_targets * 4 + 2 * n_tokens * ad.d_model * 4,
                parameters=_backend(session).parameters())


def check_method(session, method, *, n_tokens: int, n_targets: int, steps: int, n_samples, n_words: int) -> None:
    """Refuse attribution methods the backend does not express as traces, and remote runs whose
    estimated cost is above REMOTE_LIMITS, with the estimate."""
    if method.key not in GRADIENT_METHODS + FORWARD_METHODS:
        cost = attribution_cost(session, n_tokens, method, n_targets=n_targets, steps=steps)
        why = {"lrp": "AttnLRP replaces the backward rules of every norm and attention module (torch hooks and "
                      "patched forwards)",
               "gradcam": "Grad-CAM reads a block's activations and their gradients with torch hooks",
               "attention_gradcam": "attention Grad-CAM needs eager attention weights of every layer and their "
                                    "gradients ([L, H, T, T] twice)"}.get(method.key, "it runs the model directly")
        raise BackendUnsupportedError(
            f"method={method.key!r} does not run through the nnsight backend: {why}. It would take at least "
            f"{n_targets} backward pass(es) with {session.n_layers} x [{session.n_heads}, {n_tokens}, {n_tokens}] "
            f"attention weights kept ({cost}). Use one of {GRADIENT_METHODS + FORWARD_METHODS}, or "
            f"backend='native' on a local model.")
    if method.key == "shap" and n_words > 12:
        raise BackendUnsupportedError("method='shap' on more than 12 words uses the shap library's Partition "
                                      "explainer, which calls the model itself; through the nnsight backend use "
                                      "method='shapley' (sampling) or a text of at most 12 words.")
    be = _backend(session)
    be.check_cost(f"method={method.key!r}", attribution_cost(session, n_tokens, method, n_targets=n_targets,
                                                             steps=steps, n_samples=n_samples))
