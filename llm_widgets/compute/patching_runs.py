"""One forward pass of patched runs (llm_widgets.compute.patching): the hooks that overwrite each
copy's activation with the clean one, and the model's output read at one position."""
from __future__ import annotations

import torch

from ..errors import LLMWidgetsError, OutOfMemoryError
from .budget import is_oom
from .outputs import final_logits, keeps_logits


def _patch_fn(rows: torch.Tensor, mask: torch.Tensor, clean: torch.Tensor, batch: int):
    """Overwrite x[rows] where mask ([n, T, D] bool) with the clean activation [1, T, D]. The
    forward starts with one copy of the corrupted input; the first patch site reached widens it to
    `batch` copies, so the layers below it run once for the whole chunk."""
    def fn(x):
        x = x.expand(batch, *x.shape[1:]).clone() if x.shape[0] == 1 else x.clone()
        r = rows.to(x.device)  # a dispatched model: the clean activation may be on another device
        sub = x[r]
        x[r] = torch.where(mask.to(x.device), clean.to(x.device, x.dtype).expand_as(sub), sub)
        return x
    return fn


def patch_hooks(chunk, acts: dict, lo: int, hi: int, dh: int, batch: int) -> list:
    """The hooks of one forward over tokens [lo, hi) with `batch` copies: copy b gets patch chunk[b]
    (site, layer, position or head), copies past the chunk none; a position outside [lo, hi) is not
    patched in this forward (another forward of the same runs takes it, or it cannot reach the output)."""
    groups: dict = {}
    for b, (s, l, i) in enumerate(chunk):
        groups.setdefault((s, l), []).append((b, i))
    edits = []
    for (s, l), items in groups.items():
        clean_act = acts[(s, l)][:, lo:hi]
        mask = torch.zeros((len(items),) + tuple(clean_act.shape[1:]), dtype=torch.bool)
        for j, (_, i) in enumerate(items):
            if s == "heads":
                w = dh[l] if isinstance(dh, dict) else dh  # per block: its own head width
                mask[j, :, i * w:(i + 1) * w] = True
            elif lo <= i < hi:
                mask[j, i - lo] = True
        rows = torch.tensor([b for b, _ in items], device=clean_act.device)
        edits.append((s, l, _patch_fn(rows, mask, clean_act, batch)))
    return edits


def output_at(model, inputs: dict, pos: int, *, every: bool = False, **extra):
    """(logits [B, V] at `pos`, or [B, C] for classifiers; the model's output), with no attentions or
    hidden states kept and, where the model allows it and not `every`, the unembedding computed at
    that position only."""
    kwargs = dict(extra)
    if not every and keeps_logits(model):
        # on the CPU for a model dispatched over devices: a CPU index works on the last block's device
        dev = "cpu" if getattr(model, "hf_device_map", None) else inputs["input_ids"].device
        kwargs["logits_to_keep"] = torch.tensor([pos], device=dev)
    with torch.no_grad():
        out = model(**inputs, output_attentions=False, output_hidden_states=False, return_dict=True, **kwargs)
    if getattr(out, "logits", None) is None:
        raise LLMWidgetsError("Patching measures the model's output, but this model has no output head "
                              "(no logits). Load a causal LM or a classifier (task='causal-lm' / 'classification').")
    return (out.logits[:, 0] if "logits_to_keep" in kwargs else final_logits(out, pos)), out


def single_run(session, inputs: dict, pos: int, **extra):
    """output_at for the clean or corrupted input, with the unembedding at every position: the
    clean and corrupted metrics are those of the views' forward pass to the bit, and so is a patched
    run that restores the last residual (an unembedding of one or a few rows alone can round
    differently from a batch's). Running out of memory says what to change."""
    try:
        return output_at(session.model, inputs, pos, every=True, **extra)
    except Exception as e:
        if not is_oom(e):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise OutOfMemoryError(
            f"Out of memory on {session.device} running {inputs['input_ids'].shape[-1]} tokens through "
            f"{session.name}. Use a shorter text, dtype='bfloat16', or device_map='auto' (spread the model over "
            f"devices). Cause: {str(e).splitlines()[0][:200]}") from e
