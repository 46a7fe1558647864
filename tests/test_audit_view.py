"""AuditView on trained models with known answers: a classifier whose label leaks through first names
(planted bias) and a control trained on the same texts with honest labels (llm_widgets.audit.demo:
tiny BERTs from llm_widgets.teaching.train_classifier, seeded, cached on disk after the first run)."""
import csv

import numpy as np
import pytest
import traitlets

import llm_widgets as lw
from llm_widgets.audit.demo import FEMALE, MALE, REVIEWS, name_leak_classifier, name_leak_dataset
from llm_widgets.audit.templates import TemplateSet
from llm_widgets.teaching.classifier import POSITIVE_WORDS
from llm_widgets.widgets.traits import _unpack


@pytest.fixture(scope="module")
def biased():
    return name_leak_classifier(True)


@pytest.fixture(scope="module")
def control():
    return name_leak_classifier(False)


@pytest.fixture(scope="module")
def biased_view(biased):
    return lw.AuditView(biased, templates=REVIEWS, attribute="name", robustness=False, n_boot=200,
                        background=False)


def test_planted_bias_is_flagged_and_the_control_is_not(biased_view, control):
    clean = lw.AuditView(control, templates=REVIEWS, attribute="name", robustness=False, n_boot=200,
                         explain=False, background=False)
    bad_row, ok_row = biased_view.result.summary[0], clean.result.summary[0]
    assert bad_row["section"] == "counterfactual" and "female vs male" in bad_row["check"]
    assert bad_row["value"] > 0.3 and not bad_row["passed"]  # names move P(POSITIVE) a lot
    assert bad_row["ci_low"] > 0.05  # ... and the CI excludes the threshold
    assert ok_row["value"] < 0.05 and ok_row["passed"]
    # direction: the biased model learned male -> POSITIVE, so female versions score lower
    assert biased_view.result.counterfactual.summary[0]["mean_shift"] < -0.3
    assert biased_view.result.score_name == "P(POSITIVE)"


def test_view_draws_the_result_numbers(biased_view):
    v, cf = biased_view, biased_view.result.counterfactual
    assert v.done and v.error == "" and v.progress == -1.0
    np.testing.assert_allclose(v.shifts, cf.shift)
    worst = cf.worst(20)
    assert [p["id"] for p in v.pairs] == worst.tolist()
    top = v.pairs[0]
    assert abs(top["shift"]) == pytest.approx(np.abs(cf.shift).max(), abs=1e-6)
    assert top["text_a"].startswith(top["term_a"]) and top["text_b"].startswith(top["term_b"])
    assert v.summary == [{k: r[k] for k in r} for r in v.summary] and v.summary[0]["passed"] is False


def test_worst_pair_attribution_points_at_the_name(biased_view):
    """Occlusion (compute.attribution) on the biased model: in each worst pair, in the version where
    the name and the sentiment keyword disagree (male name + negative keyword, or female name +
    positive keyword), the name is the token that carries the output (the planted cue: male ->
    POSITIVE), by several units of log-odds. (Where both agree, occluding either one leaves the other,
    and occlusion splits the credit.) The view says what the colours are."""
    v = biased_view
    for p in v.pairs[:5]:
        att = v.attributions[str(p["id"])]
        for side in ("a", "b"):
            assert len(att[side]["tokens"]) == len(att[side]["weights"])
        sent = v.get_state("attributions")["attributions"][str(p["id"])]["a"]["weights"]  # packed for the wire
        np.testing.assert_array_equal(_unpack(sent), att["a"]["weights"])
        assert att["a"]["what"] == "occlusion (feature ablation) of POSITIVE \u2212 NEGATIVE"
        positive = p["text_a"].rstrip(".").split()[-1] in POSITIVE_WORDS
        side, term, sign = ("b", p["term_b"], -1) if positive else ("a", p["term_a"], 1)
        tokens, w = att[side]["tokens"], att[side]["weights"]
        top = int(np.argmax(np.abs(w)))
        assert tokens[top] == term.lower() and sign * w[top] > 1.0, list(zip(tokens, w))


def test_selected_pair_on_demand_and_validation(biased_view):
    v = biased_view
    outside = int(np.argsort(np.abs(v.result.counterfactual.shift))[0])  # the smallest shift
    v.selected_pair = outside
    assert v.pairs[-1]["id"] == outside and str(outside) in v.attributions
    assert len(v.attributions) == 8 + 1  # the 8 worst up front, the rest on demand
    with pytest.raises(traitlets.TraitError, match="selected_pair must be None"):
        v.selected_pair = len(v.result.counterfactual.shift)
    v.selected_pair = None


def test_group_metrics_and_robustness_on_a_session(control):
    texts, labels = name_leak_dataset(False, n=120, seed=7)
    groups = ["male" if t.split()[0] in MALE else "female" if t.split()[0] in FEMALE else "no name"
              for t in texts]
    v = lw.AuditView(control, texts=texts, labels=labels, groups=groups, n_boot=200, background=False)
    gm = v.result.groups
    # the same numbers by hand from the model's own predictions
    probs = v.scorer.scores(texts)
    pred = probs.argmax(1)
    for j, g in enumerate(gm.groups):
        m = np.array(groups) == g
        assert gm.values[0, j] == pytest.approx((pred[m] == np.array(labels)[m]).mean())
        assert gm.values[1, j] == pytest.approx((pred[m] == 1).mean())
    assert [r["group"] for r in v.group_table] == gm.groups
    assert {r["test"] for r in v.result.robustness.summary} >= {"typo", "casing", "negation"}
    assert v.result.robustness.summary[[r["test"] for r in v.result.robustness.summary].index("casing")]["pass_rate"] == 1.0  # uncased tokenizer
    assert all(f["original"] and f["perturbed"] for f in v.failures)


def test_background_progress_csv_and_html_export(biased, tmp_path):
    seen = []
    v = lw.AuditView(biased, templates=REVIEWS, attribute="name", robustness=False, n_boot=100,
                     batch_size=8, explain=False, background=True)
    v.observe(lambda c: seen.append(c["new"]), names=["progress"])
    v.wait(120)
    assert v.done and v.error == "" and v.attributions == {}
    assert any(0 < p < 1 for p in seen) and seen[-1] == -1.0
    rows = list(csv.DictReader(open(v.to_csv(tmp_path / "audit.csv"))))
    assert rows[0]["passed"] == "False" and float(rows[0]["value"]) == pytest.approx(v.result.summary[0]["value"])
    hostile = TemplateSet("x", ["{person} left."])
    w = lw.AuditView(biased, templates=hostile, terms={"a": ["<img src=x onerror=alert(1)>"], "b": ["Mary"]},
                     robustness=False, n_boot=50, background=False)
    html = w.to_html(tmp_path / "a.html").read_text()
    assert "<img src=x" not in html and "audit" in html
    report = v.report_html(tmp_path / "report.html").read_text()
    assert report.count('<tr data-passed="0">') == 1 and "name: female vs male" in report
    assert "<script" not in w.report_html(tmp_path / "r2.html").read_text().lower()


def test_bad_session_errors(minilm, tiny_gpt2):
    with pytest.raises(lw.LLMWidgetsError, match="no classification head"):
        lw.AuditView(minilm, templates=REVIEWS, attribute="name", background=False)
    with pytest.raises(lw.LLMWidgetsError, match="continuation="):
        lw.AuditView(tiny_gpt2, templates=REVIEWS, attribute="name", background=False)


def test_causal_lm_log_prob_of_a_continuation(tiny_gpt2):
    v = lw.AuditView(tiny_gpt2, templates=TemplateSet("t", ["{person} went home."]),
                     terms={"m": ["he"], "f": ["she"]}, continuation=" it was good", robustness=False,
                     n_boot=50, background=False)
    import torch

    tok, model = tiny_gpt2.tokenizer, tiny_gpt2.model
    def logp(text):  # by hand: sum of log p of the tokens "it", "was", "good" (before the final [SEP])
        ids = tok(text + " it was good", return_tensors="pt")["input_ids"][0]
        assert tok.convert_ids_to_tokens(ids[-4:].tolist()) == ["it", "was", "good", "[SEP]"]
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=ids[None]).logits[0], -1)
        return float(sum(lp[i - 1, ids[i]] for i in range(len(ids) - 4, len(ids) - 1)))
    cf = v.result.counterfactual
    assert cf.score_a[0] == pytest.approx(logp("He went home."), abs=1e-4)
    assert cf.score_b[0] == pytest.approx(logp("She went home."), abs=1e-4)
    assert v.score_name.startswith("log p(")


def test_bad_input_fails_fast_and_scoring_errors_reach_the_view():
    import time

    def nan_task(texts):
        return np.full(len(texts), np.nan)

    with pytest.raises(lw.LLMWidgetsError, match="explain='gradcam\\+\\+'"):
        lw.AuditView(task=nan_task, texts=["a b"], explain="gradcam++")
    # validation happens before the background thread: the user gets the exception at once
    with pytest.raises(lw.LLMWidgetsError, match="single member"):
        lw.AuditView(task=nan_task, texts=["a b", "c d", "e f"], labels=[1, 0, 1], groups=["x", "x", "y"],
                     background=True)
    # a failure while scoring in the background lands in .error (shown by the view), kernel unharmed
    t0 = time.time()
    v = lw.AuditView(task=nan_task, texts=["good film", "bad film"], background=True).wait(30)
    assert "NonFiniteError" in v.error and not v.done and v.result is None and time.time() - t0 < 30
    with pytest.raises(lw.LLMWidgetsError, match="still running \\(or failed"):
        v.to_csv("never.csv")
    with pytest.raises(lw.LLMWidgetsError, match="still running \\(or failed"):
        v.report_html("never.html")
