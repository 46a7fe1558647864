"""Amnesic probing (Elazar et al. 2021) with a control: for an eraser (llm_widgets.compute.erasure),
how well a fresh probe reads the concept before and after erasure (it must fall to the majority
baseline), and the model's own task metric with the concept erased against erasing a random
subspace of the same rank. "Can a probe read it" next to "does the model use it"."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LLMWidgetsError
from ..execution import Program, run
from .activations import batch_plan, padded_batch
from .erasure import Erasure, block_states, fit_erasure, random_erasure
from .progress import Report, no_progress


@dataclass
class AmnesicResult:
    """Held-out accuracy of fresh linear probes on block `layer`'s states (at the eraser's positions)
    without erasure, after it and after the random control, the majority baseline of the same test
    rows, and the model's task `metric` ('accuracy': of its class predictions; 'loss': mean
    next-token cross-entropy) unedited, with the concept erased and with the random control."""

    layer: int
    rank: int
    probe_before: float
    probe_after: float
    probe_random: float
    majority: float
    metric: str
    task_before: float
    task_erased: float
    task_random: float

    @property
    def task_change(self) -> float:
        return self.task_erased - self.task_before

    @property
    def random_change(self) -> float:
        return self.task_random - self.task_before


def fresh_probe(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int = 0) -> float:
    """Held-out accuracy of a linear probe trained on rows `train` of X [N, D] -> y, tested on `test`."""
    from .probing import _make_probe, few_threads

    if len(set(y[train])) < 2:
        raise LLMWidgetsError("a probe's training split holds a single class: give more texts of each class")
    with few_threads():
        return float((_make_probe("linear", seed).fit(X[train], y[train]).predict(X[test]) == y[test]).mean())


def task_metric(session, texts, writes=(), targets=None, batch_size: int = 32) -> tuple[str, float, np.ndarray]:
    """('accuracy', accuracy against `targets` (class indices; None: the predictions), predictions)
    for a classifier; ('loss', mean next-token cross-entropy over the real tokens, []) for a language
    model; with `writes` acting."""
    out = session.adapter.output
    if out not in ("classes", "lm"):
        raise LLMWidgetsError(f"{session.name} has no task metric here (its output is {out!r}): amnesic "
                              "probing needs a sequence classifier or a language model.")
    tok = session.tokenizer
    encs = [tok(t) for t in texts]
    keys, batches = batch_plan(encs, batch_size)
    preds = np.zeros(len(texts), np.int64)
    nll, count = 0.0, 0
    for chunk in batches:
        batch, width = padded_batch(session, encs, chunk, keys)
        lg = run(session, Program(batch, writes=list(writes), logits="all", label="task metric")).logits.float()
        if out == "classes":
            preds[chunk] = lg.reshape(len(chunk), -1).argmax(-1).cpu().numpy()
        else:
            ids, mask = batch["input_ids"], batch["attention_mask"].bool()
            ce = torch.nn.functional.cross_entropy(lg[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
            keep = mask[:, 1:] & mask[:, :-1]
            nll += float(ce[keep].sum())
            count += int(keep.sum())
    if out == "lm":
        return "loss", nll / max(count, 1), preds[:0]
    ref = preds if targets is None else np.asarray(targets)
    return "accuracy", float((preds == ref).mean()), preds


def amnesic(session, erasure: Erasure, texts, labels, *, seed: int = 0, splits: int = 5, batch_size: int = 32,
            report: Report = no_progress) -> AmnesicResult:
    """The numbers of AmnesicResult for `erasure` on `texts` with concept `labels`. The probes are
    means over `splits` splits of the texts; in each, the eraser is refitted on the training texts
    (LEACE's guarantee is on the data it was fitted on: a probe tested on rows the eraser saw reads
    their leftover noise, below chance) and the erased states are read from the forward. The task
    metric uses `erasure` itself (the class labels
    of a classifier's texts are its task targets when they name its classes; else the task accuracy
    is agreement with the unedited model's predictions)."""
    from sklearn.model_selection import GroupShuffleSplit

    labels = [str(v) for v in labels]
    if erasure.position is not None and erasure.position < 0:
        batch_size = 1  # a write at a negative position must land on each text's own token: no padding
    control = random_erasure(erasure, seed)
    X, owner = block_states(session, texts, erasure.layer, erasure.position, batch_size=batch_size)
    y = np.asarray([labels[i] for i in owner])
    folds = list(GroupShuffleSplit(n_splits=splits, test_size=0.25, random_state=seed).split(X, y, owner))
    before, after, rand, majority = [], [], [], []
    for k, (tr, te) in enumerate(folds):
        # the eraser of this split is fitted on its training rows only; the states it leaves are read
        # back from the forward with it applied, and a fresh probe is trained on them
        e = fit_erasure(session, X[tr], y[tr], erasure.layer, erasure.position)
        Xe, _ = block_states(session, texts, erasure.layer, erasure.position, writes=e.writes(), batch_size=batch_size)
        Xr, _ = block_states(session, texts, erasure.layer, erasure.position,
                             writes=random_erasure(e, seed + k).writes(), batch_size=batch_size)
        before.append(fresh_probe(X, y, tr, te, seed))
        after.append(fresh_probe(Xe, y, tr, te, seed))
        rand.append(fresh_probe(Xr, y, tr, te, seed))
        vals, counts = np.unique(y[tr], return_counts=True)
        majority.append(float((y[te] == vals[counts.argmax()]).mean()))
        report((k + 1) / (splits + 1), "fresh probes")
    names = session.class_labels or []
    targets = None
    if names and set(labels) <= set(names):
        targets = [names.index(v) for v in labels]
    elif names and set(labels) <= {str(i) for i in range(len(names))}:
        targets = [int(v) for v in labels]
    metric, t_before, _ = task_metric(session, texts, targets=targets, batch_size=batch_size)
    _, t_erased, _ = task_metric(session, texts, erasure.writes(), targets, batch_size)
    _, t_random, _ = task_metric(session, texts, control.writes(), targets, batch_size)
    report(1.0, "task metric")
    return AmnesicResult(layer=erasure.layer, rank=erasure.rank, probe_before=float(np.mean(before)),
                         probe_after=float(np.mean(after)), probe_random=float(np.mean(rand)),
                         majority=float(np.mean(majority)), metric=metric, task_before=t_before,
                         task_erased=t_erased, task_random=t_random)
