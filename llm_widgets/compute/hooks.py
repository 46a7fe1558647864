"""Forward hooks on the raw Hugging Face model: read or overwrite activations, always removed after.

Sites, per layer (module paths come from a small per-architecture table, ARCHS):
- "resid": the residual stream after the block (the block's output),
- "attn":  the attention output added to the residual (the attention output projection's output),
- "mlp":   the MLP output added to the residual (the MLP output projection's output),
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

from ..errors import LLMWidgetsError
from ..session import model_lock

SITES = ("resid", "attn", "mlp")


@dataclass(frozen=True)
class Arch:
    layers: tuple[str, ...]  # candidate paths of the list of blocks, first found wins
    attn_out: str  # in a block: the attention output projection (input: heads concatenated)
    mlp_out: str  # in a block: the MLP output projection (input: neuron activations)
    final_norm: str | None = None  # from the model root, for the logit lens
    unembed: str | None = None


ARCHS = {
    "gpt2": Arch(layers=("transformer.h",), attn_out="attn.c_proj", mlp_out="mlp.c_proj",
                 final_norm="transformer.ln_f", unembed="lm_head"),
    "llama": Arch(layers=("model.layers",), attn_out="self_attn.o_proj", mlp_out="mlp.down_proj",
                  final_norm="model.norm", unembed="lm_head"),
    "bert": Arch(layers=("bert.encoder.layer", "encoder.layer"), attn_out="attention.output.dense",
                 mlp_out="output.dense"),
}


def _get(root, path: str):
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def arch_of(model) -> Arch:
    kind = getattr(model.config, "model_type", None)
    if kind not in ARCHS:
        raise LLMWidgetsError(
            f"Interventions do not know the module layout of model_type={kind!r} yet; supported: "
            f"{sorted(ARCHS)}. Add an entry to llm_widgets.compute.hooks.ARCHS (paths of the blocks, "
            f"attention and MLP output projections)."
        )
    return ARCHS[kind]


def blocks(model) -> list:
    arch = arch_of(model)
    for path in arch.layers:
        found = _get(model, path)
        if found is not None:
            return list(found)
    raise LLMWidgetsError(f"Could not find the transformer blocks of {type(model).__name__} at any of "
                          f"{arch.layers}.")


def check_layer(model, layer: int) -> int:
    n = len(blocks(model))
    if not isinstance(layer, (int, np.integer)) or not 0 <= layer < n:
        raise LLMWidgetsError(f"layer {layer!r} is out of range: this model has layers 0..{n - 1}.")
    return int(layer)


def module_at(model, site: str, layer: int):
    """The module whose output (resid/attn/mlp) or input (heads/neurons) is the site at `layer`."""
    layer = check_layer(model, layer)
    block = blocks(model)[layer]
    arch = arch_of(model)
    if site == "resid":
        return block
    path = {"attn": arch.attn_out, "heads": arch.attn_out, "mlp": arch.mlp_out, "neurons": arch.mlp_out}.get(site)
    if path is None:
        raise LLMWidgetsError(f"unknown site {site!r}; use one of {SITES + ('heads', 'neurons')}")
    mod = _get(block, path)
    if mod is None:
        what = "MLP" if site in ("mlp", "neurons") else "attention output projection"
        raise LLMWidgetsError(f"Layer {layer} of this model has no {what} (no module at {path!r}); "
                              f"it cannot be read or patched at site {site!r}.")
    return mod


def available_sites(model) -> tuple[str, ...]:
    """The SITES this model has in every layer (an attention-only model has no "mlp")."""
    def has(site):
        try:
            return all(module_at(model, site, layer) is not None for layer in range(len(blocks(model))))
        except LLMWidgetsError:
            return False
    return tuple(s for s in SITES if has(s))


def is_input_site(site: str) -> bool:
    return site in ("heads", "neurons")


Edit = Callable[[torch.Tensor], "torch.Tensor | None"]


@contextmanager
def hooks(model, edits: Iterable[tuple[str, int, Edit]]):
    """Install forward hooks: each (site, layer, fn) calls fn(activation) on every forward; fn may
    return a replacement tensor (or edit in place and return None). Removed on exit, also on error."""
    with model_lock(model):  # no other thread's forward runs through these hooks
        handles = []
        try:
            for site, layer, fn in edits:
                mod = module_at(model, site, layer)
                if is_input_site(site):
                    def pre(module, args, fn=fn):
                        new = fn(args[0])
                        return None if new is None else (new,) + tuple(args[1:])
                    pre.__lw_hook__ = True
                    handles.append(mod.register_forward_pre_hook(pre))
                else:
                    def post(module, args, output, fn=fn):
                        first = output[0] if isinstance(output, tuple) else output
                        new = fn(first)
                        if new is None:
                            return None
                        return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
                    post.__lw_hook__ = True
                    handles.append(mod.register_forward_hook(post))
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


def head_dim(session) -> int:
    c = session.config
    d = getattr(c, "hidden_size", None) or getattr(c, "n_embd")
    return int(d) // session.num_heads


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
    mod = module_at(session.model, "neurons", layer)
    w = getattr(mod, "weight")
    # nn.Linear: weight [out, in]; GPT-2 Conv1D: weight [in, out]
    return int(w.shape[0] if type(mod).__name__ == "Conv1D" else w.shape[1])


@contextmanager
def ablate(session, heads=(), neurons=(), mode: str = "zero"):
    """Ablate attention heads and/or MLP neurons, given as (layer, index) pairs, while inside.

    mode 'zero' sets their output to 0; 'mean' replaces it with its mean over the positions (and
    batch) of the current input. Heads are cut at the attention output before the output
    projection, so the head's contribution (and only it) is removed.
    """
    if mode not in ("zero", "mean"):
        raise LLMWidgetsError(f"mode must be 'zero' or 'mean', got {mode!r}")
    dh = head_dim(session)
    heads = _check_units(session, heads, "heads", lambda l: session.num_heads)
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
    labels: list[str]  # the candidate outputs (tokens or classes) shown, most changed first
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
    enc, _, _ = session.encode(text)
    if getattr(session.forward(**enc), "logits", None) is None:
        raise LLMWidgetsError(f"{session.name} has no output head (no logits): there are no output "
                              f"probabilities to compare. Use a causal LM or a classifier.")
    before = torch.softmax(final_logits(session.forward(**enc), position)[0].float(), -1)
    with ablate(session, heads=heads, neurons=neurons, mode=mode):
        after = torch.softmax(final_logits(session.forward(**enc), position)[0].float(), -1)
    order = torch.argsort((after - before).abs(), descending=True)[:k].tolist()
    labels = output_labels(session, order)
    return AblationEffect(labels=labels, ids=order, before=before[order].cpu().numpy(), after=after[order].cpu().numpy(),
                          position=position)


def output_labels(session, ids: list[int]) -> list[str]:
    classes = session.class_labels
    if classes is not None:
        return [classes[i] for i in ids]
    return session.token_labels(session.tokenizer.convert_ids_to_tokens(list(ids)))
