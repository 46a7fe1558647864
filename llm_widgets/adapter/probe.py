"""One recorded forward pass: every module call, its input and output, in order."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .facts import first_output

PROBE_TOKENS = 7


def is_linear(mod) -> bool:
    w = getattr(mod, "weight", None)
    return (isinstance(w, torch.Tensor) and w.dim() == 2 and not isinstance(mod, torch.nn.Embedding)
            and not any(True for _ in mod.children()))


@dataclass
class _Call:
    name: str
    index: int  # which call of this module
    start: int  # event counter at pre-hook
    end: int = -1  # event counter at hook
    inp: torch.Tensor | None = None
    out: torch.Tensor | None = None


def probe_inputs(model) -> dict:
    emb = model.get_input_embeddings()
    vocab = int(getattr(emb, "num_embeddings", 0) or emb.weight.shape[0])
    g = torch.Generator().manual_seed(0)
    low = min(5, vocab - 1)
    ids = torch.randint(low, max(low + 1, min(vocab, 1000)), (1, PROBE_TOKENS), generator=g)
    dev = input_device(model)
    return {"input_ids": ids.to(dev), "attention_mask": torch.ones_like(ids).to(dev)}


def _hook_device(hook) -> torch.device | None:
    """The execution device of an accelerate hook (AlignDevicesHook, or the first in a SequentialHook)."""
    for h in [hook] + list(getattr(hook, "hooks", None) or []):
        dev = getattr(h, "execution_device", None)
        if dev is not None:
            return torch.device(dev if not isinstance(dev, int) else f"cuda:{dev}")
    return None


def execution_device(module) -> torch.device | None:
    """Where a module computes: its accelerate hook's execution device where it has one (its weights
    may be on the meta device between calls), else the device of its first non-meta weight or
    buffer; None if it has neither."""
    dev = _hook_device(getattr(module, "_hf_hook", None))
    if dev is not None:
        return dev
    for t in list(module.parameters()) + list(module.buffers()):
        if t.device.type != "meta":
            return t.device
    return None


def input_device(model) -> torch.device:
    """Where the model's input ids go: the device its input embeddings run on. For a model
    dispatched by accelerate (device_map, cpu/disk offload) that is the embedding's execution
    device (its weights may be on the meta device); else the device of its weights."""
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    for mod in (emb, model):
        dev = execution_device(mod) if mod is not None else None
        if dev is not None:
            return dev
    return torch.device("cpu")


def record(model, inputs: dict, **kwargs):
    """One forward with hooks on every module: returns (output, calls by module name, ordered calls)."""
    names = {mod: name for name, mod in model.named_modules(remove_duplicate=False)}
    calls: dict[str, list[_Call]] = {}
    order: list[_Call] = []
    clock = [0]
    stack: dict[int, list[_Call]] = {}
    handles = []

    def pre(mod, args, kw):
        name = names.get(mod, "?")
        x = args[0] if args and isinstance(args[0], torch.Tensor) else kw.get("hidden_states")
        c = _Call(name, len(calls.get(name, [])), clock[0], inp=x if isinstance(x, torch.Tensor) else None)
        clock[0] += 1
        calls.setdefault(name, []).append(c)
        order.append(c)
        stack.setdefault(id(mod), []).append(c)

    def post(mod, args, kw, out):
        c = stack[id(mod)].pop()
        c.end = clock[0]
        clock[0] += 1
        o = first_output(out)
        c.out = o if isinstance(o, torch.Tensor) else None

    seen = set()
    for mod in model.modules():
        if id(mod) in seen:
            continue
        seen.add(id(mod))
        handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad():
            out = model(**inputs, return_dict=True, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return out, calls, order


def same_tensor(a, b) -> bool:
    return a is not None and b is not None and a.shape == b.shape and torch.equal(a.to(b.device), b)


def is_within(child: str, parent: str) -> bool:
    return parent == "" or child == parent or child.startswith(parent + ".")
