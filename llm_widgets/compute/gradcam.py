"""Grad-CAM for transformers, on the attribution objective f(E) (see attribution.Objective).

- `layer_gradcam`: captum's LayerGradCam on one block's output h [T, D]: the gradient averaged over
  the features, times the activation, per token: score[t] = mean_d(df/dh[t]) * sum_d h[t, d]
  (captum's attribution with attr_dim_summation=False, summed over features; signed, like captum's
  default relu_attributions=False).
- `attention_gradcam`: gradient-weighted attention relevance (Chefer, Gur & Wolf 2021, "Generic
  Attention-model Explainability"): per layer A_bar = mean over heads of ReLU(dA * A); R starts as
  the identity and R = R + A_bar R layer after layer (the identity stands for the residual); the
  score of input token j is R[row, j], where row is the position the output is read from.
"""
from __future__ import annotations

import torch

from ..adapter.facts import first_output
from ..errors import LLMWidgetsError
from ..guards import model_lock


def layer_gradcam(f, x: torch.Tensor, layer: int) -> torch.Tensor:
    """[K, T] Grad-CAM of every target of f at the output of block `layer`, for the input x [1, T, D]."""
    ad = f.session.adapter
    ref = ad.blocks[ad.check_layer(layer)]
    box = []
    with torch.enable_grad():
        out = f(x, watch=((ref, lambda m, a, o: box.append(first_output(o))),))
        h = box[0]
        scores = []
        for k in range(out.shape[1]):
            g = torch.autograd.grad(out[0, k], h, retain_graph=k < out.shape[1] - 1)[0]
            scores.append((g.float().mean(-1) * h.detach().float().sum(-1))[0, : f.T])
    return torch.stack(scores)


def read_rows(f, x: torch.Tensor) -> list[int]:
    """For each target, the position whose last hidden state the output reads: a causal LM reads
    target k at the position before it; otherwise the position where the output's gradient with
    respect to the last block's output is largest (the [CLS] token for BERT-style classifiers)."""
    if f.head_pos is not None:
        return [f.T - 1 + k for k in range(f.num_targets)]
    ad = f.session.adapter
    box = []
    with torch.enable_grad():
        out = f(x, watch=((ad.blocks[-1], lambda m, a, o: box.append(first_output(o))),))
        rows = []
        for k in range(out.shape[1]):
            g = torch.autograd.grad(out[0, k], box[0], retain_graph=k < out.shape[1] - 1)[0]
            rows.append(int(g[0].float().norm(dim=-1).argmax()))
    return rows


def attention_gradcam(f, x: torch.Tensor) -> torch.Tensor:
    """[K, T] gradient-weighted attention rollout (Chefer et al. 2021) of every target of f."""
    rows = read_rows(f, x)
    box = {}

    def grab(mod, args, out):
        box["attentions"] = getattr(out, "attentions", None)

    with torch.enable_grad(), model_lock(f.model):  # no other thread's forward passes `grab`
        hook = f.model.register_forward_hook(grab)  # a post-hook: a waiting thread snapshots none
        try:
            out = f(x, extra={"output_attentions": True})
        finally:
            hook.remove()
        att = box.get("attentions")
        if not att or any(a is None for a in att):
            raise LLMWidgetsError("Attention Grad-CAM needs the model's attention weights (eager attention); "
                                  "load it with attn_implementation='eager'.")
        scores = []
        for k in range(out.shape[1]):
            grads = torch.autograd.grad(out[0, k], att, retain_graph=k < out.shape[1] - 1, allow_unused=True)
            n = att[0].shape[-1]
            R = torch.eye(n, dtype=torch.float32, device=x.device)
            for a, g in zip(att, grads):
                if g is None:
                    continue
                cam = (g.float() * a.detach().float()).clamp(min=0).mean(1)[0]  # [T, T]
                R = R + cam @ R
            scores.append(R[rows[k], : f.T])
    return torch.stack(scores)
