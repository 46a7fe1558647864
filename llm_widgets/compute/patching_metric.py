"""The metric a patching sweep reads at the output: the answers (tokens, classes or ids, checked),
and the function of the logits with its display name."""
from __future__ import annotations

import numpy as np
import torch

from ..checks import one_token
from ..errors import LLMWidgetsError
from .answers import Teacher, answer_name, answer_tokens, teacher
from .outputs import output_names

METRICS = ("logit_diff", "logit", "prob")


def _answer_id(session, answer) -> int:
    if isinstance(answer, (int, np.integer)) and not isinstance(answer, bool):
        return int(answer)
    classes = session.class_labels
    if classes is not None:
        if answer not in classes:
            raise LLMWidgetsError(f"answer {answer!r} is not a class of this model; classes: {classes}")
        return classes.index(answer)
    if not isinstance(answer, str):
        raise LLMWidgetsError(f"answers must be tokens (str) or token ids, got {answer!r}")
    return one_token(session, answer, "answer")


def answer_ids(session, metric, answers, n_out: int) -> list[int]:
    """The output ids of `answers` (a token, class name or id, or several), checked: each one token
    (or class) in range of the model's `n_out` outputs, and two of them for metric='logit_diff'.
    """
    answers = [answers] if isinstance(answers, (str, int)) else list(answers)
    ids = [_answer_id(session, x) for x in answers]
    if any(not 0 <= i < n_out for i in ids):
        raise LLMWidgetsError(f"answer ids {ids} out of range for {n_out} outputs")
    if metric == "logit_diff" and len(ids) != 2:
        raise LLMWidgetsError("metric='logit_diff' needs answers=(correct, wrong): two outputs")
    return ids


def check_metric(metric) -> None:
    """A metric is one of METRICS or a function of the logits [B, V] -> [B]."""
    if not callable(metric) and metric not in METRICS:
        raise LLMWidgetsError(f"metric must be one of {METRICS} or a function of the logits [B, V] -> [B]; "
                              f"got {metric!r}")


def metric_ids(session, metric, answers, clean_logits, corrupted_logits, n_out: int) -> tuple[str, list[int]]:
    """(the metric, the output ids it reads): the answers checked, or without answers the clean
    prediction against the corrupted one (a 'logit_diff' of one prediction becomes its 'prob').
    The logits [V] are read only without answers."""
    if answers is not None:
        return metric, answer_ids(session, metric, answers, n_out)
    a, b = int(clean_logits.argmax()), int(corrupted_logits.argmax())
    return ("prob" if metric == "logit_diff" and a == b else metric), ([a, b] if a != b else [a])


def metric_spec(session, metric, answers, clean_logits=None, corrupted_logits=None, n_out: int = 0):
    """The `ops.Metric` spec of a named metric, ('logit_diff', a, b), ('logit', a) or ('prob', a),
    as `make_metric` reads it; None for a metric function (computed here, on the logits)."""
    if callable(metric):
        return None
    kind, ids = metric_ids(session, metric, answers, clean_logits, corrupted_logits, n_out)
    return (kind, *ids[:2]) if kind == "logit_diff" else (kind, ids[0])


def make_metric(session, metric, answers, clean_logits: torch.Tensor, corrupted_logits: torch.Tensor):
    """Returns (fn: logits [B, V] -> [B], display name)."""
    if callable(metric):
        return metric, getattr(metric, "__name__", "custom metric")
    check_metric(metric)
    metric, ids = metric_ids(session, metric, answers, clean_logits, corrupted_logits, clean_logits.shape[-1])
    names = ", ".join(output_names(session, ids))
    if metric == "logit_diff":
        return (lambda lg: lg[:, ids[0]] - lg[:, ids[1]]), f"logit_diff({names})"
    if metric == "logit":
        return (lambda lg: lg[:, ids[0]]), f"logit({names.split(', ')[0]})"
    return (lambda lg: torch.softmax(lg.float(), -1)[:, ids[0]]), f"prob({names.split(', ')[0]})"


def check_difference(name: str, m_clean: float, m_corr: float) -> None:
    """Refuse a metric that is the same on the clean and corrupted inputs (nothing to restore)."""
    if abs(m_clean - m_corr) < 1e-6:
        raise LLMWidgetsError(f"{name} is the same on clean ({m_clean:.4g}) and corrupted ({m_corr:.4g}) inputs: "
                              f"there is no difference for patching to restore. Pick inputs or answers "
                              f"that the model treats differently.")


def answer_teacher(session, metric, answers) -> tuple[Teacher, str, bool] | None:
    """Answers of several tokens (a causal LM; llm_widgets.compute.answers): (the teacher-forced
    reads, the metric's display name, whether the metric is exp of their sum); None where every
    answer is one token, a class or an id (the metric of one output position, `make_metric`).
    metric='logit_diff': log p(A) - log p(B), each answer's log-prob the sum of its tokens' (for
    one-token answers at one position this is the logit difference); 'prob': p(A), the product of
    its tokens' probabilities; 'logit' is refused (logits at several positions do not add up to a
    score of the answer)."""
    if answers is None or callable(metric) or session.kind != "decoder":
        return None
    items = [answers] if isinstance(answers, (str, int, np.integer)) else list(answers)
    if not any(isinstance(a, str) and len(session.tokenizer.encode(a, add_special_tokens=False)) > 1
               for a in items):
        return None
    check_metric(metric)
    if metric == "logit":
        raise LLMWidgetsError("metric='logit' reads one output position, and an answer of several tokens is "
                              "read at several (teacher-forced): use metric='logit_diff' (difference of the "
                              "answers' summed log-probs) or 'prob' (the answer's probability).")
    toks = [answer_tokens(session, a, "answer") for a in items]
    if metric == "logit_diff":
        if len(toks) != 2:
            raise LLMWidgetsError("metric='logit_diff' needs answers=(correct, wrong): two answers")
        if toks[0] == toks[1]:
            raise LLMWidgetsError(f"the two answers are the same tokens ({items[0]!r}, {items[1]!r}): their "
                                  "difference is 0 everywhere. Pass two different answers.")
        a, b = toks
        return (teacher([(a, [1.0] * len(a), [0] * len(a)), (b, [-1.0] * len(b), [0] * len(b))]),
                f"log p({answer_name(session, a)}) \u2212 log p({answer_name(session, b)})", False)
    a = toks[0]
    return teacher([(a, [1.0] * len(a), [0] * len(a))]), f"p({answer_name(session, a)})", True
