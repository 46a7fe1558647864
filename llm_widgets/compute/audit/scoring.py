"""Scoring texts: a classifier's class probabilities, a causal LM's log-prob of a continuation, or any
callable list[str] -> scores."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...errors import InputTooLongError, LLMWidgetsError, NonFiniteError
from ..capabilities import audit_why_not
from ..progress import Report, no_progress
from ...execution import Program, run


# -- scoring -------------------------------------------------------------------------------------
class Scorer:
    """Scores texts in batches: `scores(texts) -> [N, C]` (C = 1 for a scalar score).

    task: a callable ``list[str] -> [N] or [N, C]``, or None to use `session` (a sequence classifier:
    class probabilities; a causal LM: log p(continuation | text), which needs `continuation`).
    target: class index or name whose score the audit follows (default: the last class of a
    2-class model; required with more classes). threshold: decision threshold for scalar scores.
    """

    def __init__(self, task=None, session=None, *, target=None, continuation: str | None = None,
                 batch_size: int = 32, threshold: float = 0.5):
        if batch_size < 1:
            raise LLMWidgetsError(f"batch_size must be >= 1, got {batch_size}")
        self.session, self.batch_size, self.threshold = session, int(batch_size), float(threshold)
        self.continuation = continuation
        self.label_names: list[str] | None = None
        self.long_texts: set[str] = set()  # texts longer than the model's maximum, scored on their first tokens
        if task is not None and not callable(task):
            if hasattr(task, "model") and hasattr(task, "tokenizer"):
                session, task, self.session = task, None, task
            else:
                raise TypeError("task must be a callable list[str] -> scores, or a Session; got "
                                f"{type(task).__name__}")
        if task is not None:
            self._fn, self.kind = task, "callable"
        elif session is None:
            raise LLMWidgetsError("Nothing to audit: pass a Session, or task=<callable list[str] -> scores>.")
        elif session.class_labels is not None:
            self._fn, self.kind, self.label_names = self._classify, "classifier", session.class_labels
        elif session.kind == "decoder":
            if not continuation:
                raise LLMWidgetsError(
                    "A causal LM is audited by the log-probability of a continuation: pass "
                    "continuation=' is a good person.' (or task=<callable>).")
            self._fn, self.kind = self._lm_logprob, "lm"
        else:
            raise LLMWidgetsError(audit_why_not(session))
        self._target = target

    def target_index(self, n_cols: int) -> int:
        t = self._target
        if isinstance(t, str):
            if not self.label_names or t not in self.label_names:
                raise LLMWidgetsError(f"Unknown target class {t!r}; classes are {self.label_names}.")
            return self.label_names.index(t)
        if t is None:
            if n_cols <= 2:
                return n_cols - 1
            raise LLMWidgetsError(
                f"The model has {n_cols} classes: say which one to audit with target=<index or name>"
                + (f" (one of {self.label_names})." if self.label_names else "."))
        if not -n_cols <= int(t) < n_cols:
            raise LLMWidgetsError(f"target={t} is out of range for {n_cols} classes.")
        return int(t) % n_cols

    def scores(self, texts: Sequence[str], report: Report = no_progress, lo: float = 0.0,
               hi: float = 1.0) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 1), np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start: start + self.batch_size]
            s = np.asarray(self._fn(batch), dtype=np.float64)
            if s.ndim == 1:
                s = s[:, None]
            if s.ndim != 2 or s.shape[0] != len(batch):
                raise LLMWidgetsError(
                    f"The task returned shape {s.shape} for {len(batch)} texts; it must return [N] or "
                    "[N, C] (one row per text).")
            if not np.isfinite(s).all():
                raise NonFiniteError("The task returned NaN/inf scores for: "
                                     f"{batch[int(np.where(~np.isfinite(s).all(1))[0][0])]!r}")
            out.append(s)
            done = min(start + self.batch_size, len(texts))
            report(lo + (hi - lo) * done / len(texts), f"scored {done}/{len(texts)} texts")
        widths = {o.shape[1] for o in out}
        if len(widths) > 1:
            raise LLMWidgetsError(f"The task returned a different number of columns per batch: {widths}.")
        return np.concatenate(out).astype(np.float32)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Predicted class per row: argmax over classes, or score >= threshold for scalar scores."""
        if scores.shape[1] == 1:
            return (scores[:, 0] >= self.threshold).astype(np.int64)
        return scores.argmax(1)

    def target_scores(self, scores: np.ndarray) -> np.ndarray:
        return scores[:, self.target_index(scores.shape[1])] if scores.shape[1] > 1 else scores[:, 0]

    def positive(self, scores: np.ndarray) -> int:
        """The class counted as 'selected' in selection rates."""
        return self.target_index(scores.shape[1]) if scores.shape[1] > 1 else 1

    # built-in tasks
    def _classify(self, batch: list[str]) -> np.ndarray:
        import torch

        from ...session import model_inputs

        s = self.session
        if s.max_length:
            lengths = [len(ids) for ids in s.tokenizer(batch)["input_ids"]]
            self.long_texts.update(t for t, n in zip(batch, lengths) if n > s.max_length)
        enc = s.tokenizer(batch, return_tensors="pt", padding=True, truncation=True,
                          max_length=s.max_length)
        inputs = {k: v.to(s.device) for k, v in model_inputs(enc).items()}
        logits = run(s, Program(inputs, logits="all", label="audit: class probabilities")).logits
        return torch.softmax(logits.float(), -1).cpu().numpy()

    def _lm_logprob(self, batch: list[str]) -> np.ndarray:
        import torch

        s = self.session
        out = []
        for text in batch:
            ctx = s.tokenizer(text, return_tensors="pt")["input_ids"]
            full = s.tokenizer(text + self.continuation, return_tensors="pt")["input_ids"]
            if s.max_length and full.shape[1] > s.max_length:  # never cut: the continuation is at the end
                shown = text if len(text) <= 60 else text[:57] + "..."
                raise InputTooLongError(f"{shown!r} with the continuation is {full.shape[1]} tokens long; "
                                        f"{s.name} accepts at most {s.max_length}. Shorten the text.")
            n_ctx = _common_prefix(ctx[0].tolist(), full[0].tolist())
            end = full.shape[1]  # score the continuation only, not a trailing [SEP]/EOS the tokenizer adds
            special = set(s.tokenizer.all_special_ids)
            while end > n_ctx and int(full[0, end - 1]) in special:
                end -= 1
            if end <= n_ctx or n_ctx == 0:
                raise LLMWidgetsError(f"The continuation {self.continuation!r} adds no tokens after {text!r}.")
            lg = run(s, Program({"input_ids": full.to(s.device)}, logits="all", label="audit: continuation")).logits
            logp = torch.log_softmax(lg[0].float(), -1)
            ids = full[0, n_ctx:end].to(s.device)
            out.append(float(logp[n_ctx - 1: end - 1].gather(1, ids[:, None]).sum()))
        return np.array(out)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n  # where a tokenizer appends [SEP]/EOS to the context, the continuation starts there
