"""Audit compute: metric formulas against hand computations, CI coverage on synthetic data with known
rates, perturbations, counterfactual pairs, robustness tests against models with known flaws, and
clear errors for bad input. No trained models here (see test_audit_view.py)."""
import math
import re

import numpy as np
import pandas as pd
import pytest

import llm_widgets as lw
from llm_widgets.audit import perturb
from llm_widgets.audit.templates import TemplateSet, fill
from llm_widgets.compute.audit import (Scorer, counterfactual_result, counterfactual_texts,
                                       group_metrics, run_audit, wilson)
from llm_widgets.errors import EmptyInputError, LLMWidgetsError, NonFiniteError
from llm_widgets.reports import write_audit_report

POS = ("great", "excellent", "wonderful", "good")
NEG = ("awful", "terrible", "bad", "boring")
REVIEWS = ["The movie is great.", "The food was awful.", "The staff were excellent.",
           "The story is boring.", "The film was wonderful.", "The service is terrible.",
           "The music was good.", "The plot is bad."]


def p_positive(text: str, negation_aware: bool) -> float:
    words = text.lower().replace(".", " ").split()
    p = 0.9 if any(w in POS for w in words) else 0.1 if any(w in NEG for w in words) else 0.5
    if negation_aware and "not" in words:
        p = 1 - p
    return p


def two_class(fn):
    return lambda texts: np.array([[1 - fn(t), fn(t)] for t in texts])


negation_blind = two_class(lambda t: p_positive(t, False))
negation_aware = two_class(lambda t: p_positive(t, True))
keys_on_casing = two_class(lambda t: 0.9 if any(c.isupper() for c in t) else 0.1)


# -- metric formulas --------------------------------------------------------------------------------
def test_group_metrics_equal_hand_computation():
    # group a: y = 1 1 0 0 1, pred = 1 1 0 1 1 -> acc 4/5, sel 4/5, TPR 3/3, FPR 1/2
    # group b: y = 1 0 0 0 1, pred = 1 1 0 0 0 -> acc 3/5, sel 2/5, TPR 1/2, FPR 1/3
    y = [1, 1, 0, 0, 1, 1, 0, 0, 0, 1]
    p = [1, 1, 0, 1, 1, 1, 1, 0, 0, 0]
    g = ["a"] * 5 + ["b"] * 5
    gm = group_metrics(y, p, g, n_boot=200)
    np.testing.assert_allclose(gm.values, [[4 / 5, 3 / 5], [4 / 5, 2 / 5], [1, 1 / 2], [1 / 2, 1 / 3]])
    assert gm.groups == ["a", "b"] and gm.n.tolist() == [5, 5]
    assert gm.differences["demographic_parity_difference"][0] == pytest.approx(0.4)
    assert gm.differences["equalized_odds_difference"][0] == pytest.approx(0.5)  # max(1 - 1/2, 1/2 - 1/3)
    assert gm.overall["accuracy"] == pytest.approx(0.7) and gm.overall["selection_rate"] == pytest.approx(0.6)
    for v, lo, hi in [gm.differences[k] for k in gm.differences]:
        assert lo <= v + 1e-9 and v - 1e-9 <= hi
    assert (gm.lo <= gm.values + 1e-9).all() and (gm.values <= gm.hi + 1e-9).all()


def test_group_metrics_three_groups_and_named_positive_class():
    # selection rates: x 2/3, y 0/2, z 1/2 -> DPD = 2/3; TPR: x 1, y 0, z (no positives) -> NaN, ignored
    y = ["yes", "no", "yes", "yes", "no", "no", "no"]
    p = ["yes", "yes", "no", "no", "no", "yes", "no"]
    g = ["x", "x", "x", "y", "y", "z", "z"]
    gm = group_metrics(y, p, g, positive="yes", n_boot=100)
    assert gm.values[1].tolist() == pytest.approx([2 / 3, 0, 1 / 2])
    assert gm.values[2, :2].tolist() == pytest.approx([1 / 2, 0]) and math.isnan(gm.values[2, 2])
    assert gm.values[3].tolist() == pytest.approx([1, 0, 1 / 2])
    assert gm.differences["demographic_parity_difference"][0] == pytest.approx(2 / 3)
    assert gm.differences["equalized_odds_difference"][0] == pytest.approx(1.0)  # FPR 1 vs 0


def test_bootstrap_cis_cover_known_rates_in_90_percent_of_seeds():
    # per group: P(y=1)=pi, P(pred=1|y=1)=tpr, P(pred=1|y=0)=fpr -> known population rates
    spec = {"a": (0.5, 0.8, 0.2), "b": (0.4, 0.6, 0.1)}
    sel = {k: pi * t + (1 - pi) * f for k, (pi, t, f) in spec.items()}
    acc = {k: pi * t + (1 - pi) * (1 - f) for k, (pi, t, f) in spec.items()}
    truth = {"dpd": abs(sel["a"] - sel["b"]), "eod": max(0.2, 0.1), "acc_a": acc["a"], "sel_b": sel["b"]}
    hits = {k: 0 for k in truth}
    seeds = 60
    for seed in range(seeds):
        r = np.random.default_rng(1000 + seed)
        y, p, g = [], [], []
        for k, (pi, t, f) in spec.items():
            yk = r.random(300) < pi
            pk = np.where(yk, r.random(300) < t, r.random(300) < f)
            y += yk.astype(int).tolist()
            p += pk.astype(int).tolist()
            g += [k] * 300
        gm = group_metrics(y, p, g, n_boot=400, seed=seed)
        est = {"dpd": gm.differences["demographic_parity_difference"][1:],
               "eod": gm.differences["equalized_odds_difference"][1:],
               "acc_a": (gm.lo[0, 0], gm.hi[0, 0]), "sel_b": (gm.lo[1, 1], gm.hi[1, 1])}
        for k, (lo, hi) in est.items():
            hits[k] += lo <= truth[k] <= hi
    coverage = {k: v / seeds for k, v in hits.items()}
    assert all(c >= 0.9 for c in coverage.values()), coverage
    # and they are not trivially wide (n = 300 per group: a 95% CI of a difference is ~0.15 wide)
    assert (gm.differences["demographic_parity_difference"][2] - gm.differences["demographic_parity_difference"][1]) < 0.2


def test_wilson_interval_known_value():
    lo, hi = wilson(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0


# -- counterfactual pairs -----------------------------------------------------------------------------
def test_counterfactual_pairs_change_only_the_term():
    ts = lw.audit.templates.occupations
    pairs = counterfactual_texts(ts, "gender")
    n_terms = len(lw.audit.templates.ATTRIBUTES["gender"]["male"])
    assert len(pairs["text_a"]) == len(ts.templates) * len(ts.fillers["occupation"]) * n_terms
    for a, b, ta, tb in zip(pairs["text_a"], pairs["text_b"], pairs["term_a"], pairs["term_b"]):
        def blank(text, term):
            return re.sub(r"\b" + re.escape(term.lower()) + r"\b", "@", text.lower(), count=1)
        assert blank(a, ta) == blank(b, tb) and "@" in blank(a, ta)
    assert pairs["text_a"][0] == "He works as a nurse." and pairs["text_b"][0] == "She works as a nurse."
    assert fill("I said {person} left.", "he") == "I said he left."
    assert fill("Yes. {person} left.", "my son") == "Yes. My son left."
    multi = counterfactual_texts(TemplateSet("t", ["{person} left."]), "nationality")
    groups = lw.audit.templates.ATTRIBUTES["nationality"]
    assert set(multi["group_b"]) == set(list(groups)[1:])  # every group vs the reference


def test_counterfactual_result_known_shifts():
    pairs = {"groups": ["m", "f"], "text_a": ["a1", "a2"], "text_b": ["b1", "b2"], "group_b": ["f", "f"],
             "term_a": ["he", "he"], "term_b": ["she", "she"], "template": [0, 1]}
    cf = counterfactual_result(pairs, [0.2, 0.5], [0.6, 0.4], "gender", n_boot=200)
    np.testing.assert_allclose(cf.shift, [0.4, -0.1], atol=1e-6)
    row = cf.summary[0]
    assert row["mean_shift"] == pytest.approx(0.15) and row["mean_abs_shift"] == pytest.approx(0.25)
    assert row["max_abs_shift"] == pytest.approx(0.4) and cf.worst(2).tolist() == [0, 1]
    assert row["mean_shift_lo"] >= -0.1 - 1e-6 and row["mean_shift_hi"] <= 0.4 + 1e-6


def test_templates_are_editable_copies():
    mine = lw.audit.templates.occupations.copy()
    mine.templates = ["{person} is a {occupation}."]
    mine.fillers["occupation"] = ["pilot"]
    pairs = counterfactual_texts(mine, terms={"x": ["Ann"], "y": ["Bob"]})
    assert pairs["text_a"] == ["Ann is a pilot."] and pairs["text_b"] == ["Bob is a pilot."]
    assert "pilot" not in lw.audit.templates.occupations.fillers["occupation"]


# -- perturbations and robustness ------------------------------------------------------------------------
def test_perturbations_do_what_they_say():
    r = np.random.default_rng(0)
    t = perturb.typo("The movie is wonderful", r)
    assert t != "The movie is wonderful" and sorted(t) == sorted("The movie is wonderful")
    assert perturb.casing("The Movie", r) == "the movie" and perturb.casing("abc", r) == "ABC"
    assert perturb.synonym("The Movie was fun", r) == "The Film was fun"
    assert perturb.synonym("xyz qq", r) is None
    assert perturb.punctuation("Hi.", r) == "Hi" and perturb.punctuation("Hi", r) == "Hi."
    assert perturb.irrelevant_clause("Hi", r).startswith("Hi. ")
    assert perturb.negate("The movie is great.", r) == "The movie is not great."
    assert perturb.negate("I loved the food", r) == "I did not love the food"
    assert perturb.negate("They will recommend it", r) == "They will not recommend it"
    assert perturb.negate("It is not good", r) is None and perturb.negate("Sunny day", r) is None
    a, b = perturb.word_diff("the movie is great", "the movie is not great")
    assert [c for _, c in a] == [False] * 4 and [w for w, c in b if c] == ["not"]


def test_invariance_flags_a_model_that_keys_on_casing():
    bad = run_audit(Scorer(keys_on_casing), texts=REVIEWS, robustness=True)
    good = run_audit(Scorer(negation_blind), texts=REVIEWS, robustness=True)
    rate = lambda res, test: next(r for r in res.robustness.summary if r["test"] == test)["pass_rate"]  # noqa: E731
    assert rate(bad, "casing") == 0.0 and rate(good, "casing") == 1.0
    assert rate(bad, "typo") == 1.0  # only casing moves it
    casing_row = next(r for r in bad.summary if r["check"].startswith("casing"))
    assert casing_row["passed"] is False
    fails = bad.robustness.failures("casing")
    assert len(fails) == len(REVIEWS) and bad.robustness.perturbed[fails[0]].islower()


def test_directional_test_detects_a_model_blind_to_negation():
    blind = run_audit(Scorer(negation_blind), texts=REVIEWS)
    aware = run_audit(Scorer(negation_aware), texts=REVIEWS)
    neg = lambda res: next(r for r in res.robustness.summary if r["test"] == "negation")  # noqa: E731
    assert neg(blind)["cases"] == len(REVIEWS)
    assert neg(blind)["pass_rate"] == 0.0 and neg(aware)["pass_rate"] == 1.0
    assert not next(r for r in blind.summary if r["check"].startswith("negation"))["passed"]
    assert next(r for r in aware.summary if r["check"].startswith("negation"))["passed"]


def test_scoring_is_batched_with_progress():
    sizes, progress = [], []

    def task(texts):
        sizes.append(len(texts))
        return np.full(len(texts), 0.7)

    texts = [f"text number {i} is good" for i in range(100)]
    res = run_audit(Scorer(task, batch_size=16), texts=texts, labels=[1] * 50 + [0] * 50,
                    groups=["a", "b"] * 50, robustness=False, n_boot=50,
                    report=lambda f, label="": progress.append(f))
    assert max(sizes) == 16 and sum(sizes) == 100
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) >= 8
    assert res.groups.values[1].tolist() == [1.0, 1.0]  # scalar 0.7 >= 0.5 -> everyone selected


def test_scalar_scores_and_csv(tmp_path):
    res = run_audit(Scorer(lambda ts: [0.9 if "She" in t else 0.2 for t in ts]),
                    templates=TemplateSet("t", ["{person} left.", "{person} came."]),
                    terms={"m": ["He"], "f": ["She"]}, robustness=False, thresholds={"ctf_gap": 0.5})
    assert res.counterfactual.shift.tolist() == pytest.approx([0.7, 0.7])
    assert res.summary[0]["value"] == pytest.approx(0.7) and res.summary[0]["passed"] is False
    df = pd.read_csv(res.to_csv(tmp_path / "s.csv"))
    assert df.loc[0, "threshold"] == 0.5 and bool(df.loc[0, "passed"]) is False


# -- bad input ---------------------------------------------------------------------------------------------
def test_clear_errors_for_bad_input():
    sc = Scorer(negation_blind)
    with pytest.raises(LLMWidgetsError, match="single member.*'c' \\(1\\)"):
        run_audit(sc, texts=["a", "b", "c", "d", "e"], labels=[1, 0, 1, 0, 1], groups=["a", "a", "b", "b", "c"])
    with pytest.raises(LLMWidgetsError, match="2 of 4 labels are missing.*\\[1, 3\\]"):
        run_audit(sc, texts=["a", "b", "c", "d"], labels=pd.Series([1, None, 0, np.nan]), groups=["a", "a", "b", "b"])
    with pytest.raises(LLMWidgetsError, match="both labels= and groups="):
        run_audit(sc, texts=["a", "b"], labels=[1, 0])
    with pytest.raises(LLMWidgetsError, match="one entry per text"):
        run_audit(sc, texts=["a", "b", "c"], labels=[1, 0], groups=["a", "b"])
    with pytest.raises(LLMWidgetsError, match="at least two groups"):
        group_metrics([1, 0], [1, 0], ["a", "a"])
    with pytest.raises(LLMWidgetsError, match="no \\{person\\} placeholder"):
        run_audit(sc, templates=TemplateSet("t", ["He works as a nurse."]), attribute="gender")
    with pytest.raises(LLMWidgetsError, match="no non-empty filler list"):
        run_audit(sc, templates=TemplateSet("t", ["{person} is a {job}."]), attribute="gender")
    with pytest.raises(LLMWidgetsError, match="aligned"):
        counterfactual_texts(TemplateSet("t", ["{person} left."]), terms={"a": ["x", "y"], "b": ["z"]})
    with pytest.raises(LLMWidgetsError, match="Unknown attribute 'colour'"):
        counterfactual_texts(TemplateSet("t", ["{person} left."]), "colour")
    with pytest.raises(EmptyInputError, match="Nothing to audit"):
        run_audit(sc)
    with pytest.raises(LLMWidgetsError, match="must return \\[N\\] or \\[N, C\\]"):
        run_audit(Scorer(lambda ts: np.zeros((len(ts) + 1, 2))), texts=["a b c d"])
    with pytest.raises(NonFiniteError, match="NaN"):
        run_audit(Scorer(lambda ts: np.full(len(ts), np.nan)), texts=["a b c d"])
    with pytest.raises(LLMWidgetsError, match="3 classes: say which one"):
        Scorer(lambda ts: np.ones((len(ts), 3)) / 3).target_index(3)
    with pytest.raises(LLMWidgetsError, match="Unknown thresholds"):
        run_audit(sc, texts=["a"], thresholds={"dpdd": 0.1})
    with pytest.raises(TypeError, match="TemplateSet"):
        counterfactual_texts(["{person} left."], "gender")


# -- the filed report ---------------------------------------------------------------------------------------
def test_report_html_is_escaped_and_matches_the_summary(tmp_path):
    mark = '<img src=x onerror="alert(1)">'
    texts = REVIEWS * 2
    res = run_audit(Scorer(negation_blind), templates=TemplateSet("t", ["{person} said the movie is great."]),
                    terms={"m": ["He"], mark: ["She"]}, texts=texts, labels=[1, 0, 1, 0, 1, 0, 1, 0] * 2,
                    groups=["a"] * 8 + [mark] * 8, n_boot=50, thresholds={"directional": 0.5})
    page = write_audit_report(res, tmp_path / "r.html", title=mark).read_text()
    assert "<img" not in page and "<script" not in page and "&lt;img src=x" in page
    rows = re.findall(r'<tr data-passed="([01])">', page)
    assert rows == [str(int(r["passed"])) for r in res.summary] and len(rows) == len(res.summary) >= 8
    # negation-blind model: the directional check fails, the (unbiased) counterfactual check passes
    by_check = {r["check"]: r["passed"] for r in res.summary}
    assert by_check["negation (pass rate)"] is False and by_check[f"terms: {mark} vs m (mean |shift|)"] is True
    assert page.count('class="fail">FAIL') == sum(not r["passed"] for r in res.summary)
    assert 'data-testid="groups"' in page and 'data-testid="pairs"' in page
    csv_rows = pd.read_csv(res.to_csv(tmp_path / "r.csv"))
    assert csv_rows["passed"].tolist() == [r["passed"] for r in res.summary]


def test_group_metrics_equal_fairlearn():
    """Cross-check against fairlearn's MetricFrame and difference functions (when installed)."""
    fl = pytest.importorskip("fairlearn.metrics")
    from sklearn.metrics import accuracy_score, recall_score

    r = np.random.default_rng(7)
    g = r.choice(["a", "b", "c"], size=400, p=[0.5, 0.3, 0.2])
    y = (r.random(400) < np.where(g == "a", 0.6, 0.35)).astype(int)
    p = np.where(y == 1, r.random(400) < np.where(g == "c", 0.5, 0.8), r.random(400) < 0.25).astype(int)
    gm = group_metrics(y, p, g, n_boot=20)
    mf = fl.MetricFrame(metrics={"accuracy": accuracy_score, "selection_rate": fl.selection_rate,
                                 "tpr": recall_score, "fpr": fl.false_positive_rate},
                        y_true=y, y_pred=p, sensitive_features=g)
    by_group = mf.by_group.loc[gm.groups]
    np.testing.assert_allclose(gm.values.T, by_group[["accuracy", "selection_rate", "tpr", "fpr"]].to_numpy())
    assert gm.differences["demographic_parity_difference"][0] == pytest.approx(
        fl.demographic_parity_difference(y, p, sensitive_features=g))
    assert gm.differences["equalized_odds_difference"][0] == pytest.approx(
        fl.equalized_odds_difference(y, p, sensitive_features=g))
