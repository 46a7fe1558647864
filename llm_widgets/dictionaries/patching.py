"""Feature-level patching: activation patching of one dictionary feature at a time. For every
(feature, position), the corrupted run with that one feature's activation at that position set to
its value on the clean input, the error term kept (the site moves by (a_clean - a_corrupted) *
W_dec[f]); and per position the error term alone taken from the clean run. Normalized as
activation patching: (m - m_corrupted) / (m_clean - m_corrupted).

    r = lw.feature_patching(s, "When Mary and John went, John gave it to", "When Mary and John went, Mary
                            gave it to", sae, answers=(" Mary", " John"))
    r.top(position=-1, k=5)          # [(feature, score)]: the features restoring most

Only features active on the clean or the corrupted input at a position are run: for any other, the
clean and corrupted activations are both 0, so the patched run is the corrupted run itself (score
exactly 0). Batched as rows of Programs, as compute.patching_rows: row 0 clean, row 1 corrupted, each
further row one patch (`coding.FeaturePatch`), the metric computed where the model runs; each run's
rows are normalized by its own rows 0 and 1. Runs on every executor (native, nnsight).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..checks import integer
from ..compute.budget import _vocab, memory_budget
from ..compute.outputs import keeps_logits
from ..compute.patching import encode_pair, output_position
from ..compute.patching_metric import check_difference, check_metric, make_metric, metric_spec
from ..compute.patching_rows import rows_per_run
from ..compute.progress import Report, no_progress
from ..errors import LLMWidgetsError
from ..execution import Program, run, ops
from .activations import reads_of
from .coding import NONE, FeaturePatch
from .edit import site_writes

NOTE = ("features inactive on both the clean and the corrupted input at a position were not run: their patched "
        "run is the corrupted run itself (score exactly 0)")


@dataclass
class FeaturePatchingResult:
    """One patched run per (feature, position) listed: `features`, `position_of` [N] (int32), their
    normalized `scores` and metric values `raw` [N], and the feature's activation on the clean and
    corrupted inputs there (`clean_acts`, `corrupted_acts` [N]); per patched position (`positions`),
    `error_scores` [P]: the error term alone taken from the clean run. Unlisted (feature, position)
    pairs score exactly 0 (`note`)."""

    tokens: list[str]
    clean_tokens: list[str]
    positions: list[int]
    features: np.ndarray
    position_of: np.ndarray
    scores: np.ndarray
    raw: np.ndarray
    clean_acts: np.ndarray
    corrupted_acts: np.ndarray
    error_scores: np.ndarray
    clean_metric: float
    corrupted_metric: float
    metric: str
    position: int  # the output position the metric reads
    n_features: int
    site: str
    note: str = NOTE
    runs: int = 0  # forwards run (each a batch of patched rows)
    error_raw: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def score(self, feature: int, position: int) -> float:
        """The normalized score of patching `feature` at `position` (0.0 where it was inactive on both)."""
        if position not in self.positions:
            raise LLMWidgetsError(f"position {position} was not patched; patched: {self.positions}")
        if not 0 <= feature < self.n_features:
            raise LLMWidgetsError(f"feature {feature} is out of range: 0..{self.n_features - 1}")
        hit = np.flatnonzero((self.features == feature) & (self.position_of == position))
        return float(self.scores[hit[0]]) if len(hit) else 0.0

    def top(self, position: int, k: int = 10) -> list[tuple[int, float]]:
        """The `k` features with the largest |score| at `position`, as (feature, score)."""
        if position not in self.positions:
            raise LLMWidgetsError(f"position {position} was not patched; patched: {self.positions}")
        at = np.flatnonzero(self.position_of == position)
        order = at[np.argsort(-np.abs(self.scores[at]), kind="stable")][:integer(k, "k", low=1)]
        return [(int(self.features[i]), float(self.scores[i])) for i in order]


def _positions(positions, T: int) -> list[int]:
    if positions is None:
        return list(range(T))
    if isinstance(positions, (int, np.integer)) and not isinstance(positions, bool):
        positions = [positions]
    out = []
    for p in positions:
        p = integer(p, "positions[i]")
        if not -T <= p < T:
            raise LLMWidgetsError(f"position {p} is outside the {T} tokens")
        out.append(p % T)
    return sorted(set(out))


def feature_patching(session, clean: str, corrupted: str, dictionary, *, positions=None, metric="logit_diff",
                     answers=None, position: int = -1, batch_size: Optional[int] = None,
                     report: Report = no_progress) -> FeaturePatchingResult:
    """Patch each feature of `dictionary` active on either input, one at a time, from the clean run
    into the corrupted run at each of `positions` (token indices; None: every position), and the error
    term alone per position; measure `metric` ('logit_diff', 'logit', 'prob' of `answers`, or a
    function of the logits [B, V] -> [B]) at output `position`, as lw.patching does. An SAE is patched
    at its site; a transcoder at the site it writes, its features encoded from the site it reads.
    `batch_size`: patched runs per forward (None: as the memory budget allows)."""
    check_metric(metric)
    batch_size = integer(batch_size, "batch_size", low=1, allow_none=True)
    position = integer(position, "position")
    session.adapter.require("patching")
    dictionary.check(session)
    ec, ex = encode_pair(session, clean, corrupted)
    T = ex["input_ids"].shape[1]
    pos = output_position(position, T)
    where = _positions(positions, T)
    kept = keeps_logits(session.model)
    extra = {"logits_to_keep": torch.tensor([pos], device=ex["input_ids"].device)} if kept else {}
    at = [0] if kept else [pos]

    def rows_of(n):  # row 0 clean, then n corrupted
        return {key: torch.cat([ec[key], ex[key].expand(n, *ex[key].shape[1:])]) for key in ec}

    report(0.0, "feature patching: clean and corrupted")
    first = run(session, Program(rows_of(1), reads=reads_of(dictionary.site), logits=at, extra=extra,
                                 label="feature patching: clean and corrupted"))
    x = sum(first.reads.values())  # [2, T, d_in]: the dictionary's input on both
    ends = first.logits.float()
    ends = ends[:, 0] if ends.dim() == 3 else ends
    lc, lx = ends[0:1], ends[1:2]
    fn, name = make_metric(session, metric, answers, lc[0], lx[0])
    m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
    check_difference(name, m_clean, m_corr)
    spec = metric_spec(session, metric, answers, lc[0], lx[0], _vocab(session))

    patches, acts = [], []  # (feature or NONE, position, error term too); the feature's clean and corrupted values
    for p in where:  # one position at a time: [2, F], never [T, F]
        a = dictionary.encode(x[:, p])
        for f in torch.nonzero((a[0] > 0) | (a[1] > 0)).reshape(-1).tolist():
            patches.append((f, p, False))
            acts.append((float(a[0, f]), float(a[1, f])))
        patches.append((NONE, p, True))
        acts.append((0.0, 0.0))
    per = rows_per_run(session, T, batch_size)
    if batch_size is None:  # FeaturePatch encodes [2 * rows, F] (three float32 copies at most)
        per = max(1, min(per, memory_budget(session) // (24 * dictionary.n_features)))
    chunks = [list(range(i, min(i + per, len(patches)))) for i in range(0, len(patches), per)]
    values = np.empty(len(patches))
    clean_at, corr_at = np.empty(len(patches)), np.empty(len(patches))
    for c, idx in enumerate(chunks):
        report((c + 1) / (len(chunks) + 1), f"feature patching: run {c + 1}/{len(chunks)}")
        op = FeaturePatch(dictionary.weights, features=torch.tensor([patches[i][0] for i in idx]),
                          positions=torch.tensor([patches[i][1] for i in idx]),
                          error=torch.tensor([patches[i][2] for i in idx]))
        writes = site_writes(session, dictionary, op, rows=list(range(2, 2 + len(idx))))
        got = run(session, Program(rows_of(len(idx) + 1), writes=writes, logits=at, extra=extra,
                                   output=ops.Metric(spec, 1), label="feature patching")).logits
        vals = got["values"] if spec is not None else fn(got["values"].float()).double()
        vals = vals.cpu().numpy()
        values[idx], clean_at[idx], corr_at[idx] = vals[2:], vals[0], vals[1]
    report(1.0, f"feature patching: {len(patches)} patched runs")
    denom = clean_at - corr_at
    if np.any(np.abs(denom) < 1e-6):
        raise LLMWidgetsError(f"{name}: a batch's clean and corrupted rows gave the same metric: nothing to "
                              f"normalize by")
    scores = (values - corr_at) / denom
    is_err = np.array([e for _, _, e in patches], dtype=bool)
    feats = np.array([f for f, _, _ in patches], dtype=np.int32)
    pos_of = np.array([p for _, p, _ in patches], dtype=np.int32)
    acts_a = np.array(acts, dtype=np.float64).reshape(-1, 2)
    tok = session.tokenizer.convert_ids_to_tokens
    return FeaturePatchingResult(
        tokens=session.readable_tokens(tok(ex["input_ids"][0].tolist())),
        clean_tokens=session.readable_tokens(tok(ec["input_ids"][0].tolist())), positions=where,
        features=feats[~is_err], position_of=pos_of[~is_err], scores=scores[~is_err], raw=values[~is_err],
        clean_acts=acts_a[~is_err, 0], corrupted_acts=acts_a[~is_err, 1], error_scores=scores[is_err],
        error_raw=values[is_err], clean_metric=m_clean, corrupted_metric=m_corr, metric=name, position=pos,
        n_features=dictionary.n_features,
        site=str(dictionary.out_site if dictionary.transcoder else dictionary.site), runs=len(chunks) + 1)
