"""Training a tuned lens (llm_widgets/compute/tuned_lens.py) on a model's own hidden states.

The model is frozen, so its residual streams on the training texts are computed once (batched,
padded, attention-masked forwards) and kept: [layers + 1, tokens, d_model] float32. Training then
only runs the readout (final norm + unembedding, the model's own: `Adapter.readout`) on minibatches
of tokens: for each translator l, KL(final || readout(h_l + A_l h_l + b_l)), summed over the layers
(the tuned-lens package's objective, with its default of matching the current token's final
distribution). The loop is the teaching models' seeded one (AdamW on seeded shuffles:
llm_widgets/teaching/train.py), and the trained lens is cached on disk keyed by the model's weights,
the texts and the settings, in the tuned-lens package's folder format.

    lens = lw.train_tuned_lens(s, texts)            # minutes on CPU for small models, then cached
    lw.LogitLensView(s, text, lens="tuned", tuned_lens=lens)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..checks import integer, number
from ..errors import NonFiniteError
from ..teaching.train import cache_dir, fit_epochs, frozen
from .activations import _encode_all, batch_plan, check_texts, padded_batch
from .distill import small_model_threads
from .progress import Report, no_progress
from .tuned_lens import CONFIG, PARAMS, TunedLens, check_fits, for_session, lens_states, load_tuned_lens, require_local


@dataclass(frozen=True)
class TunedLensSettings:
    """How a tuned lens is trained: `epochs` passes over the training tokens, `batch` tokens a step,
    AdamW at learning rate `lr` (no weight decay), shuffles seeded by `seed`; `bias`: translators
    with a bias b (the package's default)."""

    epochs: int = 30
    batch: int = 256
    lr: float = 1e-3
    seed: int = 0
    bias: bool = True


def weights_key(model) -> str:
    """sha256 of a model's state dict (names, shapes, dtypes and bytes): the cache key of anything
    trained on its outputs."""
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(f"{name}|{tuple(p.shape)}|{p.dtype}|".encode())
        if p.device.type != "meta":
            h.update(p.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def collect_states(session, texts: list[str], *, batch_size: int = 32, truncate: bool = False,
                   report: Report = no_progress) -> torch.Tensor:
    """[layers + 1, N, D] float32 residual streams (embeddings, then after each block) of every real
    (not padding) token of `texts`, from padded batches, on the session's device."""
    encs = _encode_all(session, texts, truncate)
    keys, chunks = batch_plan(encs, batch_size)
    parts, done = [], 0
    for chunk in chunks:
        batch, _ = padded_batch(session, encs, chunk, keys)
        states = lens_states(session, batch).float()  # [L+1, B, W, D]
        parts.append(states[:, batch["attention_mask"].bool().to(states.device)])
        done += len(chunk)
        report(done / len(texts), f"hidden states {done}/{len(texts)} texts")
    states = torch.cat(parts, 1)
    if not torch.isfinite(states).all():
        raise NonFiniteError("The model produced NaN/inf hidden states; with float16 try dtype='float32' "
                             "(or 'bfloat16').")
    return states


def _kl_rows(session, lens: TunedLens, states: torch.Tensor) -> torch.Tensor:
    """[L] KL(final || tuned lens row l) of the tokens `states` [L+1, B, D], averaged over them."""
    ad = session.adapter
    dtype = next(session.model.parameters()).dtype
    with torch.no_grad():
        final = torch.log_softmax(ad.readout(states[-1].to(dtype)).float(), -1)
    kls = []
    for r in range(lens.n_layers):
        q = torch.log_softmax(ad.readout(lens.transform(states[r], r).to(dtype)).float(), -1)
        kls.append((final.exp() * (final - q)).sum(-1).mean())
    return torch.stack(kls)


def mean_kl(session, texts, lens: TunedLens | None = None, *, batch_size: int = 32,
            truncate: bool = False) -> np.ndarray:
    """[layers + 1] KL(final || lens row) in nats, averaged over every token of `texts`: for the
    tuned lens `lens`, or for the logit lens when `lens` is None. Row 0 reads the embeddings, row
    l + 1 the residual after block l; the last row is 0. For comparing lenses on held-out texts."""
    require_local(session, "mean_kl")
    texts = check_texts(texts)
    lens = for_session(session) if lens is None else lens
    check_fits(lens, session)
    states = collect_states(session, texts, batch_size=batch_size, truncate=truncate)
    total, n = torch.zeros(lens.n_layers, dtype=torch.float64), states.shape[1]
    for s in range(0, n, 256):
        part = states[:, s:s + 256]
        with torch.no_grad():
            total += _kl_rows(session, lens, part).double().cpu() * part.shape[1]
    return np.append((total / n).numpy(), 0.0)


def _cache_path(session, texts: list[str], st: TunedLensSettings, truncate: bool) -> Path:
    blob = json.dumps({"v": 1, "weights": weights_key(session.model), "texts": texts, "settings": asdict(st),
                       "truncate": truncate}, sort_keys=True)
    return cache_dir() / f"tuned-lens-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _save_atomically(lens: TunedLens, path: Path) -> None:
    """Write the lens folder under a temporary name, then rename it: parallel runs never read half of it."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    lens.save(tmp)
    try:
        tmp.replace(path)
    except OSError:  # another run wrote it first
        shutil.rmtree(tmp, ignore_errors=True)


def train_tuned_lens(session, texts, *, epochs: int = TunedLensSettings.epochs, batch: int = TunedLensSettings.batch,
                     lr: float = TunedLensSettings.lr, seed: int = TunedLensSettings.seed,
                     bias: bool = TunedLensSettings.bias, truncate: bool = False, cache: bool = True,
                     report: Report = no_progress) -> TunedLens:
    """A tuned lens for `session`'s model, trained on the tokens of `texts` (a list of strings)
    to match the model's final next-token distribution in KL at every layer (Belrose et al. 2023).

    Translators start at identity (the logit lens). Training is seeded (same texts and settings:
    the same lens) and cached under lw.teaching.cache_dir() keyed by a hash of the model's weights,
    the texts and the settings (cache=False: always train, save nothing). report(fraction, label)
    gets progress; an exception raised from it (a view's cancel) stops the work. Needs a local model
    with a language-model head."""
    require_local(session, "train_tuned_lens")
    session.adapter.require("logit_lens")
    texts = check_texts(texts)
    st = TunedLensSettings(epochs=integer(epochs, "epochs", low=1), batch=integer(batch, "batch", low=1),
                           lr=number(lr, "lr", low=0.0), seed=integer(seed, "seed"), bias=bool(bias))
    path = _cache_path(session, texts, st, truncate) if cache else None
    if path is not None and (path / CONFIG).is_file() and (path / PARAMS).is_file():
        report(1.0, "tuned lens loaded from the cache")
        return load_tuned_lens(path, session)
    states = collect_states(session, texts, truncate=truncate,
                            report=lambda f, label: report(0.1 * f, label))
    lens = for_session(session, bias=st.bias).float()
    n, steps = states.shape[1], st.epochs * -(-states.shape[1] // st.batch)

    def loss(idx):
        return _kl_rows(session, lens, states[:, idx.to(states.device)]).sum()

    lens.requires_grad_(True)
    with ExitStack() as stack:  # gradients reach the translators only, never the model's weights
        for p in session.model.parameters():
            if p.requires_grad:
                stack.enter_context(frozen(p))
        stack.enter_context(small_model_threads(session.model))
        fit_epochs(lens, loss, n, epochs=st.epochs, batch=st.batch, lr=st.lr, seed=st.seed,
                   progress=lambda f: report(0.1 + 0.9 * f, f"training the tuned lens: step {round(f * steps)}"
                                                            f"/{steps}"))
    lens.requires_grad_(False)
    if not all(torch.isfinite(p).all() for p in lens.parameters()):
        raise NonFiniteError("Training the tuned lens diverged (NaN/inf translators); try a smaller lr.")
    if path is not None:
        _save_atomically(lens, path)
    return lens


__all__ = ["TunedLensSettings", "collect_states", "mean_kl", "train_tuned_lens", "weights_key"]
