"""Memory budgets: how many sequences one batched forward (or forward + backward) may hold.

Patching (`batch_size`) and attribution (`internal_batch_size` of IG, occlusion, Shapley sampling,
...) take their batch size from here when it is not given:

    batch = batch_size_for(session, n_tokens, copies_per_item=1, grad=False)

budget (bytes): on CUDA, BUDGET_FRACTION of what the GPU can still give (free memory plus memory
PyTorch holds cached but unused); on the CPU (and MPS), CPU_BUDGET or a quarter of the available
RAM, whichever is smaller. A model dispatched over several GPUs by accelerate is budgeted on its
input device (the first), which is where the batch starts.

bytes per sequence: an estimate, from the model's shape, not a measurement:
    activations  = s * L * T * d * (RESID_NO_GRAD or RESID_GRAD)
    attention    = s * H * T * T * ATTN_COPIES * (L with gradients, else 1)
    outputs      = 4 * outputs * V * (3 with gradients, else 1)      (float32 logits / log-probs)
    targets      = s * T * (4 * d + H * T) * (targets - 1)            (vmapped backward per target)
with s the dtype's size, L layers, T tokens, d the residual width, H heads and V the vocabulary.
A forward without gradients frees each layer's activations as it goes, but keeps hidden states
and the widest intermediates (MLP ~4d): RESID_NO_GRAD residual-widths per layer and token. With
gradients every layer keeps what its backward needs (norm inputs, q/k/v, MLP input and
intermediates: about RESID_GRAD residual-widths) and its attention probabilities (eager). The
estimate errs large: batches are sized to fit, not to fill the device.

An out-of-memory error inside a batch becomes `llm_widgets.errors.OutOfMemoryError` naming what to
change (`oom_guard`).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import OutOfMemoryError

CPU_BUDGET = 1 << 30  # bytes per batch on the CPU (or a quarter of the available RAM, if less)
BUDGET_FRACTION = 0.7  # of the GPU memory still available (the rest: the allocator's slack, workspaces)
MAX_BATCH = 64  # more copies per forward stop paying off long before memory runs out
RESID_NO_GRAD = 8
RESID_GRAD = 24
ATTN_COPIES = 3  # scores, probabilities, dropout/mask copies of [H, T, T]


def available_bytes(device) -> int:
    """What a batch may use on `device`, before BUDGET_FRACTION / CPU_BUDGET."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(0, cached))
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        try:
            import os

            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except Exception:
            return 4 * CPU_BUDGET


def memory_budget(session) -> int:
    """Bytes one batch may use on the session's (input) device."""
    dev = torch.device(session.device)
    if dev.type == "cuda":
        return int(BUDGET_FRACTION * available_bytes(dev))
    return int(min(CPU_BUDGET, available_bytes(dev) // 4))


def _vocab(session) -> int:
    """Width of one output row: the vocabulary of an LM head, the classes of a classifier."""
    if session.adapter.output == "classes":
        return int(getattr(session.config, "num_labels", 2) or 2)
    out = session.model.get_output_embeddings() if hasattr(session.model, "get_output_embeddings") else None
    w = getattr(out, "weight", None)
    if isinstance(w, torch.Tensor):
        return int(w.shape[0])
    return int(getattr(session.config, "vocab_size", 0) or 2)


def sequence_bytes(session, n_tokens: int, *, grad: bool = False, outputs: int = 1, targets: int = 1) -> int:
    """Estimated bytes of one sequence of `n_tokens` in a batched forward (and backward, `grad`),
    reading `outputs` output rows ([V] logits each) and, with gradients, `targets` backward passes
    batched with vmap. See the module docstring for the formula."""
    ad = session.adapter
    L, d, H = max(1, ad.n_layers), max(1, ad.d_model), max(1, ad.n_heads)
    s = torch.empty((), dtype=session.dtype).element_size()
    T = max(1, int(n_tokens))
    acts = s * L * T * d * (RESID_GRAD if grad else RESID_NO_GRAD)
    attn = s * H * T * T * ATTN_COPIES * (L if grad else 1)
    outs = 4 * max(1, outputs) * _vocab(session) * (3 if grad else 1)
    per_target = s * T * (4 * d + H * T) * (max(1, targets) - 1) if grad else 0
    return int(acts + attn + outs + per_target)


def batch_size_for(session, n_tokens: int, copies_per_item: int = 1, budget: int | None = None, *,
                   grad: bool = False, outputs: int = 1, targets: int = 1, cap: int = MAX_BATCH) -> int:
    """Items per batched forward that fit in `budget` bytes (default: `memory_budget(session)`):
    each item is `copies_per_item` sequences of `n_tokens` tokens (`sequence_bytes`). At least 1,
    at most `cap`."""
    budget = memory_budget(session) if budget is None else int(budget)
    per = max(1, copies_per_item) * sequence_bytes(session, n_tokens, grad=grad, outputs=outputs, targets=targets)
    return int(max(1, min(cap, budget // max(per, 1))))


def is_oom(e: BaseException) -> bool:
    """An allocator's out-of-memory error (CUDA, MPS or CPU), not ours."""
    if isinstance(e, OutOfMemoryError):
        return False
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    msg = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg
                                            or "cannot allocate memory" in msg)


@contextmanager
def oom_guard(session, what: str, knob: str, batch: int, n_tokens: int):
    """Turn an out-of-memory error inside the block into OutOfMemoryError naming what to change:
    `knob` (the batch-size argument), a shorter text, the dtype, device_map."""
    try:
        yield
    except Exception as e:
        if not is_oom(e):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = max(1, batch // 2)
        half = "" if str(session.dtype) in ("torch.float16", "torch.bfloat16") else \
            ", load the model with dtype='bfloat16'"
        raise OutOfMemoryError(
            f"Out of memory on {session.device} during {what}: {batch} sequence(s) of {n_tokens} tokens per "
            f"forward pass. Pass {knob}={smaller} (or lower), use a shorter text{half}, or spread the model "
            f"over devices with llm_widgets.load(..., device_map='auto'). Cause: {str(e).splitlines()[0][:200]}"
        ) from e
