"""Forward hooks on the raw Hugging Face model: read or overwrite activations, always removed after.

Sites, per layer (where they are in the model comes from its adapter, llm_widgets.adapter):
- "resid": the residual stream after the block (the block's output),
- "attn":  the attention output added to the residual (the attention output projection's output),
- "mlp":   the MLP output added to the residual (the MLP output projection's output; for a
           mixture-of-experts block, the whole block's output),
- "heads": the per-head attention outputs, i.e. the input of the output projection, [.., H * d_head],
- "neurons": the MLP neuron activations, i.e. the input of the MLP output projection.

    with ablate(session, heads=[(1, 3)]):          # zero head 3 of layer 1
        out = session.forward(**enc)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from ..adapter import CallHook, adapter_of
from ..checks import integer
from ..errors import LLMWidgetsError
from ..guards import model_lock

SITES = ("resid", "attn", "mlp")


def check_layer(model, layer: int) -> int:
    return adapter_of(model).check_layer(layer)


def available_sites(model) -> tuple[str, ...]:
    """The SITES this model has in every layer (an attention-only model has no "mlp")."""
    return adapter_of(model).sites


def is_input_site(site: str) -> bool:
    return site in ("heads", "neurons")


Edit = Callable[[torch.Tensor], "torch.Tensor | None"]


@contextmanager
def hooks(model, edits: Iterable[tuple[str, int, Edit]]):
    """Install forward hooks: each (site, layer, fn) calls fn(activation) on every forward; fn may
    return a replacement tensor (or edit in place and return None). Removed on exit, also on error.
    fn always sees [batch, tokens, features], also where a model flattens tokens into the batch
    inside its blocks (OPT's MLP works on [batch * tokens, features])."""
    ad = adapter_of(model)
    seq = [0]

    def length(module, args, kwargs):  # tokens of the current forward, from the first block's input
        x = args[0] if args else kwargs.get("hidden_states")
        seq[0] = x.shape[1] if isinstance(x, torch.Tensor) and x.dim() == 3 else 0

    def shaped(fn):
        def run(x):
            if x.dim() != 2 or not seq[0]:
                return fn(x)
            new = fn(x.view(-1, seq[0], x.shape[-1]))
            return None if new is None else new.reshape(-1, new.shape[-1])
        return run

    with model_lock(model):  # no other thread's forward runs through these hooks
        # on a block, not on the model: another thread waiting at the model's lock would still call a
        # hook registered on the model after it was removed
        handles = [ad.blocks[0].module.register_forward_pre_hook(length, with_kwargs=True)]
        try:
            for site, layer, fn in edits:
                ref = ad.site(site, layer)
                fn = shaped(fn)
                if is_input_site(site):
                    def pre(module, args, fn=fn):
                        new = fn(args[0])
                        return None if new is None else (new,) + tuple(args[1:])
                    handles.append(CallHook(model, ref, pre, pre=True))
                else:
                    def post(module, args, output, fn=fn):
                        first = output[0] if isinstance(output, tuple) else output
                        new = fn(first)
                        if new is None:
                            return None
                        return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
                    handles.append(CallHook(model, ref, post, pre=False))
            yield
        finally:
            for hd in handles:
                hd.remove()


def num_hooks(model) -> int:
    """How many llm-widgets hooks are installed anywhere in the model (0 outside a `hooks` block)."""
    return sum(getattr(fn, "__lw_hook__", False) for m in model.modules()
               for fn in list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values()))


def capture(model, sites: Iterable[tuple[str, int]], run: Callable[[], object]) -> dict:
    """Run `run()` with read-only hooks; returns {(site, layer): activation tensor (detached)}."""
    got: dict = {}

    def saver(key):
        def fn(x):
            got[key] = x.detach().clone()
        return fn

    with hooks(model, [(s, l, saver((s, l))) for s, l in sites]):
        run()
    return got


def _check_units(session, units, what: str, size_of: Callable[[int], int]) -> list[tuple[int, int]]:
    out = []
    for item in units or []:
        try:
            layer, unit = (int(v) for v in item)
        except (TypeError, ValueError):
            raise LLMWidgetsError(f"{what} must be (layer, index) pairs, got {item!r}") from None
        check_layer(session.model, layer)
        n = size_of(layer)
        if not 0 <= unit < n:
            raise LLMWidgetsError(f"{what[:-1]} {unit} is out of range in layer {layer}: valid 0..{n - 1}.")
        out.append((layer, unit))
    return out


def num_neurons(session, layer: int) -> int:
    ad = session.adapter
    ad.site("neurons", layer)  # says why, where there are none
    return ad.n_neurons[layer]


@contextmanager
def ablate(session, heads=(), neurons=(), mode: str = "zero"):
    """Ablate attention heads and/or MLP neurons, given as (layer, index) pairs, while inside.

    mode 'zero' sets their output to 0; 'mean' replaces it with its mean over the positions (and
    batch) of the current input. Heads are cut at the attention output before the output
    projection, so the head's contribution (and only it) is removed.
    """
    if mode not in ("zero", "mean"):
        raise LLMWidgetsError(f"mode must be 'zero' or 'mean', got {mode!r}")
    session.adapter.require("interventions")
    dh = session.adapter.head_dim
    heads = _check_units(session, heads, "heads", lambda l: session.n_heads)
    neurons = _check_units(session, neurons, "neurons", lambda l: num_neurons(session, l))
    by_site: dict = {}
    for layer, hd in heads:
        by_site.setdefault(("heads", layer), []).extend(range(hd * dh, (hd + 1) * dh))
    for layer, n in neurons:
        by_site.setdefault(("neurons", layer), []).append(n)

    def editor(cols):
        idx = torch.tensor(sorted(set(cols)))

        def fn(x):
            x = x.clone()
            i = idx.to(x.device)
            if mode == "zero":
                x[..., i] = 0
            else:
                sel = x[..., i]
                x[..., i] = sel.reshape(-1, sel.shape[-1]).mean(0).expand_as(sel)
            return x
        return fn

    with hooks(session.model, [(site, layer, editor(cols)) for (site, layer), cols in by_site.items()]):
        yield


@dataclass
class AblationEffect:
    """Output probabilities at one position before and after an ablation."""
    outputs: list[str]  # the candidate outputs (tokens or classes) shown, most changed first
    ids: list[int]  # their vocabulary / class indices
    before: np.ndarray  # [k] probabilities without the ablation
    after: np.ndarray  # [k] with it
    position: int
    note: str = ""

    @property
    def change(self) -> np.ndarray:
        return self.after - self.before


def final_logits(out, position: int) -> torch.Tensor:
    """[B, V] logits at `position` for token-level outputs, or [B, C] for sequence classifiers."""
    logits = out.logits
    return logits[:, position] if logits.dim() == 3 else logits


def ablation_effect(session, text: str, heads=(), neurons=(), mode: str = "zero", position: int = -1,
                    k: int = 10) -> AblationEffect:
    """Probabilities of the `k` outputs whose probability changes most when ablating, at `position`
    (default: the last token, i.e. the next-token prediction; the class for classifiers)."""
    session.adapter.require("interventions")
    k = integer(k, "k", low=1)
    enc, _, _ = session.encode(text)
    if getattr(session.forward(**enc), "logits", None) is None:
        raise LLMWidgetsError(f"{session.name} has no output head (no logits): there are no output "
                              f"probabilities to compare. Use a causal LM or a classifier.")
    before = torch.softmax(final_logits(session.forward(**enc), position)[0].float(), -1)
    with ablate(session, heads=heads, neurons=neurons, mode=mode):
        after = torch.softmax(final_logits(session.forward(**enc), position)[0].float(), -1)
    order = torch.argsort((after - before).abs(), descending=True)[:k].tolist()
    return AblationEffect(outputs=output_names(session, order), ids=order, before=before[order].cpu().numpy(),
                          after=after[order].cpu().numpy(),
                          position=position)


def output_names(session, ids: list[int]) -> list[str]:
    classes = session.class_labels
    if classes is not None:
        return [classes[i] for i in ids]
    return session.readable_tokens(session.tokenizer.convert_ids_to_tokens(list(ids)))
