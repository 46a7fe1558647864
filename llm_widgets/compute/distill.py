"""Knowledge distillation: small student transformers trained on a teacher's soft labels.

`teacher_logits(session, texts)` reads a sequence classifier's logits; `distill(session, texts,
logits, layers=...)` trains a BertForSequenceClassification built from a config (the teaching
classifier's recipe: llm_widgets.teaching.classifier, frozen seeded word vectors, the teacher's own
tokenizer) to match softmax(teacher / T) with the usual T^2-scaled KL loss (Hinton et al. 2015).
Seeded, CPU-friendly (seconds for a few hundred short texts), cached on disk keyed by the texts, the
teacher's logits and the settings, so a second call loads in milliseconds.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..checks import integer, number
from ..errors import LLMWidgetsError
from ..teaching.train import cache_dir, cached_training, fit_epochs, frozen, one_thread
from .progress import Report, no_progress
from ..execution import Program, run


@dataclass(frozen=True)
class StudentSettings:
    layers: int = 1
    hidden: int = 64
    heads: int = 2
    intermediate: int = 128
    temperature: float = 2.0
    epochs: int = 6
    batch: int = 32
    lr: float = 3e-3
    seed: int = 0

    def check(self) -> "StudentSettings":
        integer(self.layers, "layers", low=1)
        integer(self.hidden, "hidden", low=2)
        integer(self.heads, "heads", low=1)
        integer(self.epochs, "epochs", low=1)
        integer(self.batch, "batch", low=1)
        if self.hidden % self.heads:
            raise LLMWidgetsError(f"hidden={self.hidden} must be a multiple of heads={self.heads}")
        if number(self.temperature, "temperature") <= 0:
            raise LLMWidgetsError(f"temperature must be > 0, got {self.temperature}")
        if number(self.lr, "lr") <= 0:
            raise LLMWidgetsError(f"lr must be > 0, got {self.lr}")
        return self


SMALL = 5_000_000  # parameters: below this a CPU forward is faster on one thread


@contextmanager
def small_model_threads(model):
    """One torch thread while working with a small model on the CPU: its matrices are too small to
    share out, and on a busy machine two threads can be ~50x slower than one (measured here).
    torch's thread count is process-wide: it is restored afterwards."""
    small = next(model.parameters()).device.type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL
    with one_thread(small):
        yield


def teacher_logits(session, texts, batch_size: int = 64, report: Report = no_progress, *,
                   truncate: bool = False) -> np.ndarray:
    """[N, C] float32 logits of a sequence classifier Session on `texts` (padded batches). Texts longer
    than the model accepts raise InputTooLongError naming them, or with truncate=True are read up to
    its maximum (Session.check_lengths)."""
    from ..session import model_inputs

    if session.class_labels is None:
        raise LLMWidgetsError(f"{session.name} is not a sequence classifier: surrogates imitate a "
                              "classifier's predicted class (load one with task='sequence-classification').")
    if session.tokenizer.pad_token is None:
        raise LLMWidgetsError(f"The tokenizer of {session.name} has no padding token, which batches of texts "
                              "need: set session.tokenizer.pad_token = session.tokenizer.eos_token (and "
                              "session.model.config.pad_token_id to its id).")
    session.check_lengths([len(ids) for ids in session.tokenizer(list(texts))["input_ids"]], truncate=truncate)
    out = []
    for start in range(0, len(texts), batch_size):
        enc = session.tokenizer(list(texts[start:start + batch_size]), return_tensors="pt", padding=True,
                                truncation=True, max_length=session.max_length)
        with small_model_threads(session.model):
            inputs = {k: v.to(session.device) for k, v in model_inputs(enc).items()}
            logits = run(session, Program(inputs, logits="all", label="teacher predictions")).logits
        out.append(logits.float().cpu().numpy())
        report(min(1.0, (start + batch_size) / len(texts)), "teacher predictions")
    logits = np.concatenate(out)
    if not np.isfinite(logits).all():
        from ..errors import NonFiniteError

        raise NonFiniteError("The teacher returned NaN/inf logits; load it with dtype='float32'.")
    return logits


def n_parameters(model, *, word_embeddings: bool = False) -> int:
    """Parameters of a model, without the word-embedding table unless asked (a lookup, shared
    vocabulary: it dwarfs a small student's layers and says nothing about its capacity)."""
    emb = model.get_input_embeddings().weight
    return int(sum(p.numel() for p in model.parameters() if word_embeddings or p is not emb))


def _key(texts, logits, names, vocab: int, st: StudentSettings, cut: int | None) -> str:
    cut = {} if cut is None else {"max_length": cut}  # None (the student's own limit): earlier keys kept
    blob = json.dumps({"v": 1, "texts": list(texts), "logits": np.round(logits, 3).tolist(), "names": names,
                       "vocab": vocab, "settings": asdict(st), **cut}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build(tok, names: list[str], st: StudentSettings):
    from ..teaching.classifier import Settings, _build as build_bert

    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    return build_bert(Settings(hidden=st.hidden, layers=st.layers, heads=st.heads, intermediate=st.intermediate,
                               seed=st.seed), len(names), names, len(tok), pad)


def _train(model, tok, texts, logits, st: StudentSettings, max_length: int, report: Report):
    from ..session import model_inputs

    enc = model_inputs(tok(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
    soft = torch.softmax(torch.as_tensor(logits, dtype=torch.float32) / st.temperature, -1)

    def loss(idx):
        out = model(**{k: v[idx] for k, v in enc.items()}).logits
        return torch.nn.functional.kl_div(torch.log_softmax(out / st.temperature, -1), soft[idx],
                                          reduction="batchmean") * st.temperature ** 2

    # seeded random word vectors tell words apart; training them is ~5x slower
    with frozen(model.get_input_embeddings().weight):
        return fit_epochs(model, loss, len(texts), epochs=st.epochs, batch=st.batch, lr=st.lr, seed=st.seed,
                          progress=lambda done: report(done, f"distilling a {st.layers}-layer student"))


def distill(session, texts, logits, *, layers: int = 1, settings: StudentSettings | None = None,
            cache: bool = True, report: Report = no_progress):
    """A student Session (BertForSequenceClassification with `layers` blocks) trained on `texts` to
    match the teacher's soft labels softmax(logits / T). logits: [N, C] from `teacher_logits`.
    settings: a StudentSettings (its `layers` is replaced by `layers`). Uses the teacher's tokenizer.
    The Session's `train_seconds` is the training time (None when loaded from the cache)."""
    from ..loading import load

    texts = list(texts)
    logits = np.asarray(logits, np.float32)
    if logits.ndim != 2 or logits.shape[0] != len(texts):
        raise LLMWidgetsError(f"logits must be [N, C] with one row per text; got {logits.shape} for "
                              f"{len(texts)} texts")
    st = StudentSettings(**{**asdict(settings or StudentSettings()), "layers": layers}).check()
    tok, names = session.tokenizer, list(session.class_labels)
    model = _build(tok, names, st)
    # the student reads what the teacher read: at most the teacher's tokens (and its own positions)
    own = model.config.max_position_embeddings
    max_length = min(own, session.max_length or own)
    key = _key(texts, logits, names, len(tok), st, max_length if max_length < own else None)
    path = cache_dir() / f"student-{key}.pt"

    def fit(model):
        with small_model_threads(model):
            return _train(model, tok, texts, logits, st, max_length, report)

    model, trained = cached_training(model, path, fit, load=cache, save=cache)
    if trained is None:
        report(1.0, f"loaded a cached {layers}-layer student")
    model.eval()
    student = load((model, tok), device=session.device)
    student.name = f"student ({layers} layer{'s' if layers > 1 else ''}, distilled from {session.name})"
    student.train_seconds = trained  # None: loaded from the cache
    return student


__all__ = ["StudentSettings", "distill", "n_parameters", "small_model_threads", "teacher_logits"]
