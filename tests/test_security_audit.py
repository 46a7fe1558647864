"""Security and privacy sections of the audit, on teaching models with known answers:
- the keyword classifier falls to a word-substitution attack that changes its keyword, and the
  attack that tries words in the order of their occlusion attribution needs fewer queries per
  success than the same search in random order;
- a tiny GPT-2 trained with planted canaries reproduces them from their prefix and gives them the
  highest possible exposure, while secrets it never saw have exposure near chance."""
import csv

import numpy as np
import pytest
import torch
import traitlets

import llm_widgets as lw
from llm_widgets.audit import substitutions as subs
from llm_widgets.compute.audit import Scorer, run_audit
from llm_widgets.compute.audit.attack import run_attack
from llm_widgets.compute.audit.memorization import _ids, exposure, greedy, run_memorization, sequence_logliks
from llm_widgets.errors import DoesNotApplyError, LLMWidgetsError
from llm_widgets.teaching.canary import PLANTED, UNPLANTED
from llm_widgets.teaching.classifier import NEGATIVE_WORDS, POSITIVE_WORDS, keyword_dataset

KEYWORDS = set(POSITIVE_WORDS + NEGATIVE_WORDS)


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


@pytest.fixture(scope="module")
def canary():
    return lw.teaching.canary_model()


@pytest.fixture(scope="module")
def texts():
    return keyword_dataset(40, seed=3)


@pytest.fixture(scope="module")
def attacked(keyword, texts):
    return run_attack(Scorer(keyword), texts[0], True)


# -- substitutions ------------------------------------------------------------------------------
def test_substitutions_keep_the_word_readable():
    c = subs.candidates("Great", limit=20)
    kinds = {k for _, k in c}
    assert kinds == {"synonym", "typo", "character"}
    assert ("Good", "synonym") in c and all(w != "Great" for w, _ in c)  # case kept, never the word itself
    assert all(len(w) in (4, 5, 6) for w, k in c if k != "synonym")  # one letter moved, dropped or doubled
    assert subs.candidates("a") == [("@", "character")] and subs.typos("the") == []
    assert "".join(subs.segments("The movie, was great!")) == "The movie, was great!"
    with pytest.raises(ValueError, match="unknown substitution kinds"):
        subs.candidates("great", kinds=("emoji",))


# -- attack -------------------------------------------------------------------------------------
def test_the_keyword_classifier_falls_to_replacing_its_keyword(keyword, texts, attacked):
    sentences, labels, positions = texts
    run = attacked.main
    assert attacked.summary[0]["success_rate"] >= 0.6  # measured 0.85 (34/40)
    for i in range(len(sentences)):  # occlusion ranks the keyword first in every sentence
        assert run.ranked[i][0] == positions[i]
    succ = attacked.successes()
    assert len(succ) == run.success.sum() > 0
    for i in succ:
        assert run.changes[i][0]["index"] == positions[i]  # the keyword was changed first ...
        assert run.changes[i][0]["word"] in KEYWORDS
        a, b = sentences[i].split(), run.adversarial[i].split()
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == run.words_changed[i] <= 3
    # ... and the adversarial texts really flip the model (scored again, independently of the attack)
    sc = Scorer(keyword)
    again = sc.predict(sc.scores([run.adversarial[i] for i in succ]))
    assert np.array_equal(again, run.pred_a[succ]) and (again != run.pred_o[succ]).all()
    assert np.array_equal(run.pred_o, sc.predict(sc.scores(sentences)))
    assert (run.queries <= 200).all()


def test_attribution_order_beats_random_order(attacked):
    ours, rnd = attacked.summary
    assert ours["order"] == "attribution" and rnd["order"] == "random"
    # measured on these 40 texts: 34 vs 21 flipped; 24.4 vs 30.7 queries per success
    assert ours["successes"] > rnd["successes"]
    assert ours["queries_per_success"] < rnd["queries_per_success"]
    assert ours["mean_words_changed"] < rnd["mean_words_changed"]
    k, n = ours["successes"], ours["texts"]
    assert ours["success_rate"] == k / n and ours["success_rate_lo"] < k / n < ours["success_rate_hi"]
    assert ours["queries_per_success"] == pytest.approx(attacked.main.queries.sum() / k)


def test_attack_on_a_callable_task():
    """A task that reads one word: the attack flips every text that has it by changing that word."""
    def keys_on_bad(batch):
        return np.array([[0.9, 0.1] if "bad" in t.split() else [0.2, 0.8] for t in batch])

    sentences = ["the food was bad", "a bad day at the office", "what a lovely view"]
    res = run_attack(Scorer(keys_on_bad), sentences, {"random_baseline": False, "max_words": 1})
    assert list(res.runs) == ["attribution"] and "deleted" in res.ranking
    assert res.main.success.tolist() == [True, True, False]
    for i in (0, 1):
        assert res.main.changes[i][0]["word"] == "bad" and res.main.words_changed[i] == 1
        assert "bad" not in res.main.adversarial[i].split()


def test_attack_settings_are_checked(keyword, texts):
    sc = Scorer(keyword)
    with pytest.raises(LLMWidgetsError, match="Unknown attack settings \\['max_word'\\]"):
        run_attack(sc, texts[0], {"max_word": 2})
    with pytest.raises(LLMWidgetsError, match="max_queries"):
        run_attack(sc, texts[0], {"max_queries": 0})
    with pytest.raises(LLMWidgetsError, match="kinds"):
        run_attack(sc, texts[0], {"kinds": "typo"})
    with pytest.raises(LLMWidgetsError, match="needs texts"):
        run_audit(sc, templates=None, texts=None, attack=True, memorization=None)


def test_attack_budget_is_respected(keyword, texts):
    res = run_attack(Scorer(keyword), texts[0][:10], {"max_queries": 12, "max_words": 1, "random_baseline": False})
    assert (res.main.queries <= 12).all() and (res.main.words_changed <= 1).all()


# -- memorization -------------------------------------------------------------------------------
def test_log_likelihoods_are_the_models_own(canary):
    seqs = [_ids(canary, t)[0] for t in ["my PIN is 4 8 1 7", "my PIN is 4 8 1 2", "the cat is big"]]
    for start in (1, 3):
        got = sequence_logliks(canary, seqs, start)
        for s, g in zip(seqs, got):
            with torch.no_grad():
                lp = torch.log_softmax(canary.model(input_ids=torch.tensor([s])).logits[0].float(), -1)
            assert g == pytest.approx(float(sum(lp[t - 1, s[t]] for t in range(start, len(s)))), abs=1e-4)


def test_planted_canaries_are_memorized_and_unplanted_are_not(canary):
    planted = list(PLANTED)
    ids, lead = _ids(canary, planted[0])
    assert canary.tokenizer.decode(greedy(canary, ids[:lead + 3], 4)) == "4 8 1 7"
    res = run_memorization(canary, dict(strings=planted + UNPLANTED[:3], prefix_tokens=3,
                                        canaries=planted + UNPLANTED[:3]))
    assert res.exact.tolist() == [True, True, False, False, False]
    assert (res.percentile[:2] == 1.0).all()  # more likely than every shuffle of its digits
    exp = [c["exposure"] for c in res.canaries]
    top = np.log2(10 ** 4)
    assert res.canaries[0]["candidates"] == 10 ** 4 and res.canaries[0]["max_exposure"] == pytest.approx(top)
    assert exp[0] == exp[1] == pytest.approx(top)  # rank 1 of 10^4: the highest possible exposure
    assert max(exp[2:]) < 3 and np.mean(exp[2:]) < 2  # measured 0.24, 0.61, 0.24 (chance: 1.44 on average)
    assert res.summary["extracted"] == 2 and res.summary["exact_rate"] == pytest.approx(0.4)


def test_exposure_is_the_rank_among_all_candidates(canary):
    """Brute force over the 100 candidates of a 2-digit canary."""
    c = "my PIN is 4 8"
    e = exposure(canary, c)
    cands = [f"my PIN is {a} {b}" for a in range(10) for b in range(10)]
    ll = sequence_logliks(canary, [_ids(canary, x)[0] for x in cands], 1)
    rank = 1 + int((ll > ll[48]).sum())
    assert e["rank"] == rank and e["exposure"] == pytest.approx(np.log2(100) - np.log2(rank))
    assert e["secret"] == "48"


def test_memorization_settings_are_checked(canary, keyword):
    with pytest.raises(LLMWidgetsError, match="no digit"):
        run_memorization(canary, dict(canaries=["my PIN is secret"]))
    with pytest.raises(LLMWidgetsError, match="at most 5 digits"):
        run_memorization(canary, dict(canaries=["my PIN is 1 2 3 4 5 6"]))
    with pytest.raises(LLMWidgetsError, match="nothing is left"):
        run_memorization(canary, dict(strings=["my PIN"], prefix_tokens=3))
    with pytest.raises(LLMWidgetsError, match="Unknown memorization settings"):
        run_memorization(canary, dict(strings=["my PIN is 1 2"], prefix=3))
    with pytest.raises(DoesNotApplyError, match="causal LM"):
        run_memorization(keyword, dict(strings=["the movie was great"]))
    with pytest.raises(DoesNotApplyError, match="causal LM"):
        lw.AuditView(keyword, memorization=dict(strings=["the movie was great"]), background=False)


# -- the audit view -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def attack_view(keyword, texts):
    return lw.AuditView(keyword, texts=texts[0][:20], attack=True, robustness=False, n_boot=50, background=False)


def test_attack_feeds_the_summary_csv_and_report(attack_view, tmp_path):
    v = attack_view
    row = next(r for r in v.result.summary if r["section"] == "attack")
    s = v.result.attack.summary[0]
    assert row["value"] == s["success_rate"] and row["passed"] == (s["success_rate"] <= 0.2) is False
    assert "random word order" in row["detail"]
    ex = v.attack_result["examples"]
    assert [e["id"] for e in ex] == v.result.attack.successes().tolist()
    assert {r["order"] for r in v.attack_result["summary"]} == {"attribution", "random"}
    rows = list(csv.DictReader(open(v.to_csv(tmp_path / "attack.csv", table="attack"), encoding="utf-8")))
    assert len(rows) == 2 * 20 and {r["order"] for r in rows} == {"attribution", "random"}
    summary = list(csv.DictReader(open(v.to_csv(tmp_path / "summary.csv"), encoding="utf-8")))
    assert any(r["section"] == "attack" for r in summary)
    page = v.report_html(tmp_path / "report.html").read_text()
    assert 'data-testid="attack-examples"' in page and "<mark>" in page
    with pytest.raises(LLMWidgetsError, match="no memorization section"):
        v.to_csv(tmp_path / "m.csv", table="memorization")


def test_examples_explain_into_the_attribution_view(attack_view):
    v = attack_view
    i = v.attack_result["examples"][0]["id"]
    v.selected_example = i
    att = v.example_attributions[str(i)]
    assert att["adversarial"]["tokens"][0] == "[CLS]" and set(att) == {"original", "adversarial"}
    av = v.explain(i, compute_faithfulness=False)
    assert isinstance(av, lw.AttributionView) and av.result.targets[0] == v.result.attack.class_names[
        int(v.result.attack.main.pred_o[i])]
    assert av.tokens == v.session.trace(v.adversarial(i)).tokens
    failed = int(np.flatnonzero(~v.result.attack.main.success)[0]) if (~v.result.attack.main.success).any() else None
    if failed is not None:
        with pytest.raises(traitlets.TraitError, match="did not flip"):
            v.selected_example = failed


def test_memorization_view_without_a_score(canary, tmp_path):
    v = lw.AuditView(canary, memorization=dict(strings=["my PIN is 4 8 1 7", "my <b>PIN</b> is 9 2 6 0"],
                                               prefix_tokens=3, canaries=["my PIN is 4 8 1 7"]), background=False)
    checks = {r["check"]: r for r in v.summary}
    assert not checks["exact continuation from a 3-token prefix"]["passed"]
    assert checks["exposure of canary 'my PIN is 4 8 1 7' (bits)"]["value"] == pytest.approx(np.log2(1e4))
    m = v.memorization_result
    assert [r["exact"] for r in m["strings"]] == [True, False] and m["canaries"][0]["rank"] == 1
    page = v.report_html(tmp_path / "r.html").read_text()
    assert "<b>PIN" not in page and "&lt;b&gt;PIN" in page  # escaped
    rows = list(csv.DictReader(open(v.to_csv(tmp_path / "m.csv", table="memorization"), encoding="utf-8")))
    assert [r["kind"] for r in rows] == ["string", "string", "canary"]
    with pytest.raises(LLMWidgetsError, match="memorization"):
        lw.AuditView(canary, memorization="my PIN", background=False)
