"""Model audits, pure compute: counterfactual bias, perturbation robustness, per-group metrics.

Everything scores texts through one `Scorer` (a classifier Session, a causal LM's log-prob of a
continuation, or any callable ``list[str] -> [N] or [N, C]`` array) and returns dataclasses of numpy
arrays. `run_audit` does the lot in one batched pass with a progress callback; AuditView draws it.

Definitions (what the numbers mean):
- counterfactual shift of a pair = score(version with group B term) - score(reference group A term);
  the CTF gap of a group is the mean |shift| over its pairs (Garg et al. 2019).
- invariance test passes when the perturbed text has the same predicted class and its score moved by
  at most `tolerance`; a directional test (negation) passes when the predicted class changes.
- per group: accuracy, selection rate P(pred = positive), TPR, FPR. Demographic parity difference =
  max - min selection rate over groups; equalized-odds difference = max(TPR range, FPR range), as in
  fairlearn. 95% CIs: percentile bootstrap, resampling within each group (group sizes kept).
- attack (attack.py): share of texts whose predicted class a budgeted word-substitution attack flips
  (Wilson CI), mean words changed, queries per success; the same search in random word order as a
  baseline.
- memorization (memorization.py, causal LMs): exact-continuation rate from a prefix (Wilson CI),
  log-likelihood percentile against look-alikes, canary exposure (Carlini et al. 2019).
"""
from ..progress import Report
from .attack import DEFAULT_ATTACK, AttackResult, AttackRun, run_attack
from .common import DEFAULT_THRESHOLDS
from .counterfactual import CounterfactualResult, counterfactual_result, counterfactual_texts
from .groups import METRICS, GroupMetrics, check_groups, group_metrics
from .memorization import DEFAULT_MEMORIZATION, MemorizationResult, exposure, run_memorization
from .plan import AuditPlan, plan_audit, run_audit
from .report import AuditResult, audit_summary
from .robustness import RobustnessResult, perturbation_cases, robustness_result, wilson
from .scoring import Scorer

__all__ = ["DEFAULT_ATTACK", "DEFAULT_MEMORIZATION", "DEFAULT_THRESHOLDS", "METRICS", "AttackResult", "AttackRun",
           "AuditPlan", "AuditResult", "CounterfactualResult", "GroupMetrics", "MemorizationResult", "Report",
           "RobustnessResult", "Scorer", "audit_summary", "check_groups", "counterfactual_result",
           "counterfactual_texts", "exposure", "group_metrics", "perturbation_cases", "plan_audit",
           "robustness_result", "run_attack", "run_audit", "run_memorization", "wilson"]
