"""AttnLRP (Achtibat et al., ICML 2024) for any model the adapter resolves, in the Gradient x Input
framework (as the `lxt` package implements it): inside `attn_lrp_rules(model)` a backward pass
propagates relevance instead of plain gradients, and relevance = input x gradient.

The rules, applied to what the model computes (not to a per-family copy of its code):
- linear layers: the epsilon rule, which in this framework is the plain gradient (weights and
  biases are constants: parameters take no gradient);
- normalisation (LayerNorm, RMSNorm): the identity rule, by stopping the gradient through the
  variance (`sqrt` / `rsqrt` of an activation, and layer_norm's standard deviation);
- element-wise non-linearities (activation modules, and tanh / sigmoid / GELU / SiLU ... called as
  functions, e.g. soft-capping): the identity rule, gradient x f(x) / x;
- a product of two activations (attention's Q K^T and A V, gated MLPs, routing weights): the
  uniform rule, half of the relevance to each factor (lxt: queries and keys / 4, values / 2,
  which is the same thing);
- softmax: its ordinary gradient (the paper's rule for it, with the bias term dropped).
Relevance is conserved up to what biases and the epsilon absorb: `conservation` reports it.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import LLMWidgetsError
from ..guards import model_lock

EPS = 1e-10
_MATMUL = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm,
           torch.einsum, torch.baddbmm, torch.Tensor.baddbmm}
_MUL = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__}
_ROOTS = {torch.rsqrt, torch.Tensor.rsqrt, torch.sqrt, torch.Tensor.sqrt}
_ACTS = {F.gelu, F.silu, F.relu, F.mish, F.softplus, F.elu, F.leaky_relu, F.relu6, F.hardswish,
         torch.tanh, torch.Tensor.tanh, torch.sigmoid, torch.Tensor.sigmoid, torch.relu}


class _Identity(torch.autograd.Function):
    """y = f(x) computed outside; backward: gradient x f(x) / x (the identity rule)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(y / (x + EPS))
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        (ratio,) = ctx.saved_tensors
        return grad * ratio, None


class _Half(torch.autograd.Function):
    """Identity forward; backward halves the gradient (the uniform rule over two factors)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad / 2


def _grad_tensors(args, kwargs) -> int:
    n = 0
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor) and a.requires_grad:
            n += 1
        elif isinstance(a, (list, tuple)):
            n += sum(isinstance(x, torch.Tensor) and x.requires_grad for x in a)
    return n


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    y = (x - mean) / (var + eps).sqrt().detach()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class _Rules(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.inside_activation = 0  # > 0 while an activation module (handled as a whole) runs

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.inside_activation:
            return func(*args, **kwargs)
        if func is F.layer_norm:
            return _layer_norm(*args, **kwargs)
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            return out
        n = _grad_tensors(args, kwargs)
        if func in _ROOTS and n:
            return out.detach()
        if func in _ACTS and n and isinstance(args[0], torch.Tensor):
            return _Identity.apply(args[0], out.detach())
        if (func in _MATMUL or func in _MUL) and n >= 2:
            return _Half.apply(out)
        return out


def _is_activation(m: torch.nn.Module) -> bool:
    """An element-wise activation module (transformers.activations or torch.nn's)."""
    if any(True for _ in m.children()) or any(True for _ in m.parameters(recurse=False)):
        return False
    if isinstance(m, (torch.nn.Softmax, torch.nn.LogSoftmax, torch.nn.Softmin, torch.nn.MultiheadAttention)):
        return False
    return type(m).__module__ in ("transformers.activations", "torch.nn.modules.activation")


@contextmanager
def attn_lrp_rules(model):
    """While inside, backward passes through `model` propagate AttnLRP relevance."""
    impls = {getattr(m.config, "_attn_implementation", None) for m in model.modules() if hasattr(m, "config")}
    if impls - {None, "eager"}:
        raise LLMWidgetsError(f"AttnLRP needs eager attention (the matmuls must be visible); this model runs "
                              f"{sorted(i for i in impls if i)}. Load it with attn_implementation='eager'.")
    rules = _Rules()
    handles, inputs = [], {}

    def pre(mod, args):
        inputs[id(mod)] = args[0]
        rules.inside_activation += 1

    def post(mod, args, out):
        rules.inside_activation -= 1
        x = inputs.pop(id(mod))
        if isinstance(out, torch.Tensor) and isinstance(x, torch.Tensor) and x.requires_grad \
                and out.shape == x.shape:
            return _Identity.apply(x, out.detach())
        return None

    # the hooks and frozen parameters are global: no other thread's forward runs while they are on
    with model_lock(model):
        frozen = [p for p in model.parameters() if p.requires_grad]
        try:
            for m in model.modules():
                if _is_activation(m):
                    handles.append(m.register_forward_pre_hook(pre))
                    handles.append(m.register_forward_hook(post, always_call=True))
            for p in frozen:
                p.requires_grad_(False)
            with rules:
                yield
        finally:
            for p in frozen:
                p.requires_grad_(True)
            for h in handles:
                h.remove()
