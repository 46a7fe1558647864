"""Baselines and batched evaluation of f on perturbed embeddings (values and gradients)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ...errors import LLMWidgetsError, NonFiniteError
from ..budget import batch_size_for
from .objective import Objective

BASELINES = ("auto", "pad", "unk", "zero", "mask")


def baseline_embeddings(f: Objective, special: np.ndarray, baseline) -> tuple[torch.Tensor, str]:
    """[1, T, D] embedding-layer output of the baseline input: special tokens keep their token,
    every other token becomes the pad / unk / mask token, a given token id, or a zero token vector
    (positions are kept). Returns (embeddings, description)."""
    session = f.session
    tok = session.tokenizer
    input_ids = f.ids_full[:, :f.T]
    keep = torch.zeros(f.ids_full.shape, dtype=torch.bool, device=input_ids.device)
    keep[:, :f.T] = torch.as_tensor(special, device=input_ids.device)
    keep[:, f.T:] = True  # generated tokens stay as they are
    if baseline == "auto":  # the pad token where there is one (GPT-2 has none), else unk, else zero
        baseline = next((b for b in ("pad", "unk") if getattr(tok, f"{b}_token_id", None) is not None), "zero")
    if baseline == "zero":
        words = f.word_embeddings(f.ids_full)
        embeds = torch.where(keep[..., None], words, torch.zeros_like(words))
        return _keep_special(f, f.capture(inputs_embeds=embeds), special), "zero token vector (special tokens kept)"
    if isinstance(baseline, (int, np.integer)) and not isinstance(baseline, bool):
        vocab = session.model.get_input_embeddings().weight.shape[0]
        if not 0 <= baseline < vocab:
            raise LLMWidgetsError(f"baseline token id {baseline} is outside the vocabulary (0..{vocab - 1}).")
        tid, name = int(baseline), tok.convert_ids_to_tokens(int(baseline))
    elif baseline in ("pad", "unk", "mask"):
        tid = getattr(tok, f"{baseline}_token_id", None)
        name = getattr(tok, f"{baseline}_token", None)
        if tid is None:
            have = [b for b in ("pad", "unk", "mask") if getattr(tok, f"{b}_token_id", None) is not None]
            raise LLMWidgetsError(f"This tokenizer has no {baseline} token. Use baseline='zero'"
                                  + (f" or one of {have}" if have else "") + ", or a token id.")
    else:
        raise LLMWidgetsError(f"baseline must be one of {BASELINES} or a token id, got {baseline!r}")
    ids = torch.where(keep, f.ids_full, torch.full_like(f.ids_full, tid))
    return _keep_special(f, f.capture(input_ids=ids), special), f"{name} token (id {tid}) at every non-special position"


def _keep_special(f, base: torch.Tensor, special: np.ndarray) -> torch.Tensor:
    """The baseline's special-token rows are exactly the input's: models that number positions
    by counting non-pad tokens (RoBERTa) would otherwise move [SEP]'s position embedding, and
    f(baseline) would not be the value of the empty coalition."""
    base = base[:, :f.T].clone()
    keep = torch.as_tensor(special, device=base.device)
    base[:, keep] = f.x[:, keep].to(base.dtype)
    return base


def auto_batch_size(session, seq_len: int, num_targets: int, grad: bool, cap: int = 64) -> int:
    """Sequences per forward that fit the memory budget (llm_widgets.compute.budget): IG, gradient
    methods (backward passes, `num_targets` of them batched) and perturbation methods (forward only,
    reading `num_targets` output rows)."""
    return batch_size_for(session, seq_len, grad=grad, outputs=num_targets, targets=num_targets, cap=cap)


def chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def check_finite(t: torch.Tensor, what: str):
    if not torch.isfinite(t).all():
        raise NonFiniteError(f"The model produced non-finite values in the {what}. With float16 "
                             "weights this is overflow: load with dtype='float32' or 'bfloat16'.")


class Runner:
    """Evaluates f on batches of perturbed embeddings, with progress."""

    def __init__(self, f: Objective, base: torch.Tensor, feats: np.ndarray, batch: int,
                 report: Callable[[float, str], None] | None):
        self.f, self.base, self.feats, self.batch = f, base, feats, batch
        self.x = f.x
        self.report = report or (lambda frac, label="": None)

    def embeds(self, masks: np.ndarray) -> torch.Tensor:
        """masks [N, n_feats] bool (True: keep the input token) -> embeddings [N, T, D]."""
        keep = torch.ones((masks.shape[0], self.x.shape[1]), dtype=torch.bool, device=self.x.device)
        keep[:, torch.as_tensor(self.feats, device=self.x.device)] = torch.as_tensor(masks, device=self.x.device)
        return torch.where(keep[..., None], self.x, self.base)

    def eval_embeds(self, E: torch.Tensor, label: str = "") -> np.ndarray:
        """f on embeddings [N, T, D] in batches -> [N, K] float32 numpy."""
        return self._eval(E.shape[0], lambda sl: E[sl], label)

    def eval_masks(self, masks: np.ndarray, label: str = "") -> np.ndarray:
        """f on token-presence masks [N, n_feats] (False: baseline) in batches -> [N, K]."""
        return self._eval(masks.shape[0], lambda sl: self.embeds(masks[sl]), label)

    def _eval(self, n: int, get, label: str) -> np.ndarray:
        outs = []
        with torch.no_grad():
            for sl in chunks(n, self.batch):
                out = self.f(get(sl))
                check_finite(out, "target outputs")
                outs.append(out.cpu().numpy())
                if label:
                    self.report(sl.stop / n, label)
        return np.concatenate(outs) if outs else np.zeros((0, self.f.num_targets), np.float32)

    def grads(self, E: torch.Tensor) -> torch.Tensor:
        """[K, b, T, D] float32 gradient of each target wrt E [b, T, D] (one backward per target,
        batched with vmap when the model allows)."""
        E = E.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            if self.f.head is not None and self.f.num_targets > 1:
                return self._split_grads(E)
            out = self.f(E)
            check_finite(out, "target outputs")
            k = out.shape[1]
            if k == 1:
                return torch.autograd.grad(out[:, 0].sum(), E)[0].float()[None]
            try:
                eye = torch.eye(k, device=out.device, dtype=out.dtype)[:, None, :].expand(k, out.shape[0], k)
                g = torch.autograd.grad(out, E, grad_outputs=eye, is_grads_batched=True, retain_graph=True)[0]
            except RuntimeError:  # an op without a batching rule: one backward per target
                g = torch.stack([torch.autograd.grad(out[:, j].sum(), E, retain_graph=j < k - 1)[0]
                                 for j in range(k)])
        return g.float()

    def _split_grads(self, E: torch.Tensor) -> torch.Tensor:
        """Per-target gradients for a position-wise head (causal LM): ONE backward through the
        head (over the vocabulary) gives dK/dh at each target's own position; then K backward
        passes through the transformer from h, batched with vmap."""
        cut = []
        out = self.f(E, cut=cut)
        check_finite(out, "target outputs")
        (h, leaf), = cut
        g_head = torch.autograd.grad(out.sum(), leaf)[0]  # [B, P, D]; target j lives at head_pos[j]
        pos = torch.as_tensor(self.f.head_pos, device=h.device)
        k = len(self.f.head_pos)
        go = torch.zeros((k,) + tuple(h.shape), dtype=h.dtype, device=h.device)
        go[torch.arange(k, device=h.device), :, pos] = g_head[:, pos].transpose(0, 1)
        try:
            g = torch.autograd.grad(h, E, grad_outputs=go, is_grads_batched=True, retain_graph=True)[0]
        except RuntimeError:  # an op without a batching rule: one backward per target
            g = torch.stack([torch.autograd.grad(h, E, grad_outputs=go[j], retain_graph=j < k - 1)[0]
                             for j in range(k)])
        return g.float()
