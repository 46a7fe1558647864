"""Reliability of the security/privacy audit (issue 33, items 1, 6, 7 and 8):
- canary exposure ranks the canary among candidates that tokenize differently, refuses a canary
  whose secret does not survive tokenization, and never breaks a tie in the canary's favour;
- digits in any script give candidates in that script;
- over-long memorization strings are an InputTooLongError or, with truncate=True, cut with a
  notice; canaries are never cut;
- the audit's truncation notice counts the texts given, not every query made from them;
- CSV cells a spreadsheet could run as a formula are neutralised, however the formula is hidden."""
import csv
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import llm_widgets as lw
from llm_widgets.checks import csv_cell
from llm_widgets.compute.audit import AuditResult, Scorer
from llm_widgets.compute.audit.memorization import _ids, exposure, run_memorization
from llm_widgets.errors import InputTooLongError, LLMWidgetsError
from llm_widgets.teaching.canary import word_tokenizer

SCRIPTS = {"ascii": "0", "arabic-indic": "\u0660", "fullwidth": "\uff10"}
WORDS = ["my", "pin", "is", "code", "x"]
KNOWN = ["12", "x5", "\u0661\u0662"]  # words the tokenizer knows that look like candidates


@pytest.fixture(scope="module")
def canary():
    return lw.teaching.canary_model()


def _digit_words(zero: str) -> list[str]:
    return [chr(ord(zero) + d) for d in range(10)]


@pytest.fixture(scope="module")
def word_lm():
    """A random 1-layer GPT-2 over a word vocabulary with the digits of every script in SCRIPTS as
    words, and a few glued digit words (so some candidates tokenize and others become <unk>)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    words = WORDS + KNOWN + [d for z in SCRIPTS.values() for d in _digit_words(z)]
    tok = word_tokenizer([" ".join(words)])
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=1,
                     eos_token_id=2, pad_token_id=0, attn_implementation="eager")
    return lw.load((GPT2LMHeadModel(cfg).eval(), tok), device="cpu")


def _fill(template: list[str], zero: str, digits) -> str:
    it = iter(digits)
    return " ".join("".join(chr(ord(zero) + next(it)) if ch == "#" else ch for ch in part) for part in template)


def _oracle_ll(session, seqs: list[tuple]) -> dict:
    """log p(seq[1:] | seq[0]) per sequence, from unpadded forwards (sequences of one length together)."""
    out = {}
    for n in {len(s) for s in seqs}:
        same = [s for s in seqs if len(s) == n]
        ids = torch.tensor(same)
        with torch.no_grad():
            logp = torch.log_softmax(session.model(input_ids=ids).logits.float(), -1)
        ll = logp[:, :-1].gather(2, ids[:, 1:, None])[..., 0].sum(1)
        out.update(zip(same, ll.tolist()))
    return out


# -- item 1: exposure over distinct tokenizations, the secret must survive, ties ----------------
def test_a_glued_canary_is_refused_not_memorized(canary):
    """Before: 'my PIN is 4817' tokenized to <unk> for every candidate, the tie was stripped as a
    trailing special token, and the audit read rank 1, exposure 13.29 bits (memorized)."""
    assert _ids(canary, "my PIN is 4817")[0][-1] == canary.tokenizer.unk_token_id  # the text's own <unk> stays
    with pytest.raises(LLMWidgetsError, match="does not survive tokenization.*10000 of its 10000"):
        exposure(canary, "my PIN is 4817")
    with pytest.raises(LLMWidgetsError, match="does not survive tokenization"):  # before any scoring
        lw.AuditView(canary, memorization=dict(canaries=["my PIN is 4817"]), background=True)
    with pytest.raises(LLMWidgetsError, match=r"10 of its 100 .*'x0 and 8'"):  # digits inside an unknown word
        exposure(canary, "x9 and 8")
    assert exposure(canary, "my PIN is 4 8 1 7")["rank"] == 1  # the planted canary, spaced, still is


def test_candidates_that_tokenize_alike_count_once(word_lm):
    """'code 12': '12' is a word, the other 99 candidates are all 'code <unk>', one candidate."""
    e = exposure(word_lm, "code 12")
    assert (e["candidates"], e["merged"], e["max_exposure"]) == (2, 98, 1.0)
    assert e["rank"] in (1, 2) and e["exposure"] == 1.0 - (e["rank"] - 1)


def test_a_tie_ranks_the_canary_last(word_lm):
    """A model that ignores its input (all weights zero) makes every candidate equally likely: the
    canary ranks last, exposure 0 (before: rank 1, the maximum)."""
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel(word_lm.model.config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    flat = lw.load((model, word_lm.tokenizer), device="cpu")
    e = exposure(flat, "my pin is 4 8")
    assert (e["rank"], e["candidates"], e["exposure"]) == (100, 100, 0.0)


@st.composite
def canaries(draw):
    """(canary, every candidate string): words and 1-2 digit slots ('#'), digits spaced, glued to
    each other or glued to a word, in one script."""
    parts = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
    slot = draw(st.sampled_from(["#", "##", "# #", "x#", "#x", "x# #"]))
    template = parts + slot.split(" ") + draw(st.lists(st.sampled_from(WORDS), max_size=2))
    zero = SCRIPTS[draw(st.sampled_from(sorted(SCRIPTS)))]
    k = slot.count("#")
    digits = draw(st.tuples(*[st.integers(0, 9)] * k))
    cands = [_fill(template, zero, d) for d in itertools.product(range(10), repeat=k)]
    return _fill(template, zero, digits), cands


@settings(max_examples=25, deadline=None)
@given(case=canaries())
def test_exposure_is_the_rank_among_distinct_tokenizations(word_lm, case):
    """Against brute force: candidates = distinct tokenizations; a canary sharing its tokens with
    another candidate is refused; rank = distinct candidates at least as likely as the canary."""
    canary, cands = case
    tok = word_lm.tokenizer
    ids = [tuple(tok(c)["input_ids"]) for c in cands]
    mine = ids[cands.index(canary)]
    if ids.count(mine) > 1:
        with pytest.raises(LLMWidgetsError, match="does not survive tokenization"):
            exposure(word_lm, canary)
        return
    distinct = list(dict.fromkeys(ids))
    ll = _oracle_ll(word_lm, distinct)
    e = exposure(word_lm, canary)
    assert e["candidates"] == len(distinct) and e["merged"] == len(cands) - len(distinct)
    me = ll[mine]
    assert sum(v > me + 1e-4 for v in ll.values()) < e["rank"] <= sum(v >= me - 1e-4 for v in ll.values())
    assert e["secret"] == "".join(ch for ch in canary if ch.isdigit())


# -- item 6: digits of other scripts, over-long strings and canaries -----------------------------
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_digits_of_any_script_are_ranked_in_their_script(word_lm, canary, script):
    """Before: ValueError "'...' is not in list" (candidates were written in ASCII digits)."""
    a, b = _digit_words(SCRIPTS[script])[4], _digit_words(SCRIPTS[script])[8]
    e = exposure(word_lm, f"my pin is {a} {b}")
    assert e["secret"] == a + b and e["candidates"] == 100 and 1 <= e["rank"] <= 100
    if script != "ascii":  # the canary model's vocabulary has ASCII digits only: a clear refusal
        with pytest.raises(LLMWidgetsError, match="does not survive tokenization.*ASCII digits"):
            exposure(canary, f"my PIN is {a} {b}")


def test_over_long_strings_and_canaries(canary):
    """Before: IndexError: index out of range in self. The canary model takes 32 positions; strings
    follow the project's rule (InputTooLongError naming them, or truncate=True with a notice)."""
    long = "my PIN is " + "the cat is big " * 10 + "4 8 1 7"
    with pytest.raises(InputTooLongError, match=r"memorization\['strings'\]\[0\] is 48 tokens long.*truncate=True"):
        lw.AuditView(canary, memorization=dict(strings=[long], prefix_tokens=3), background=True)
    for truncate in (False, True):  # a canary is never cut: its secret could be in the cut part
        with pytest.raises(InputTooLongError, match=r"Canary .* at most 32.*never truncated"):
            lw.AuditView(canary, memorization=dict(canaries=[long]), truncate=truncate, background=True)
    v = lw.AuditView(canary, memorization=dict(strings=[long, "my PIN is 4 8 1 7"], prefix_tokens=3), truncate=True,
                     background=False)
    m = v.result.memorization
    assert m.rest_tokens.tolist() == [32 - 4, 4] and m.exact[1]
    assert v.notice == m.notice == ("1 of 2 memorization['strings'] truncated to their first 32 tokens (the model's "
                                    "maximum): memorization['strings'][0].")
    with pytest.raises(LLMWidgetsError, match="truncate must be True or False"):
        lw.AuditView(canary, memorization=dict(strings=["my PIN is 4 8 1 7"]), truncate="yes")
    with pytest.raises(LLMWidgetsError, match=r"Unknown memorization settings \['truncate'\]"):
        run_memorization(canary, dict(strings=["my PIN is 4 8 1 7"], truncate=True))  # a view argument


def test_a_causal_lm_scored_by_a_continuation_refuses_over_long_texts(word_lm):
    """Before: IndexError. The continuation ends the text, so the text is never cut."""
    with pytest.raises(InputTooLongError, match=r"with the continuation is 42 tokens long.*at most 32"):
        Scorer(session=word_lm, continuation=" code").scores(["my " * 40])


# -- item 7: the truncation notice counts the texts given -----------------------------------------
def test_the_truncation_notice_counts_the_texts_given():
    """Before: one long text with attack=True said '202 text(s) are longer' (every attack query of
    it was counted, and the text was cut without being asked)."""
    k = lw.teaching.keyword_classifier()
    text = "the film was great " + " ".join(["plot"] * (k.max_length + 20))
    args = dict(texts=[text, "a terrible plot"], attack=dict(max_queries=20), robustness=False)
    with pytest.raises(InputTooLongError, match=r"texts\[0\] is 538 tokens long.*truncate=True"):
        lw.AuditView(k, **args, background=True)
    v = lw.AuditView(k, **args, truncate=True, background=False)
    own, derived = v.notice.split(". ", 1)
    assert own == "1 of 2 texts truncated to their first 512 tokens (the model's maximum): texts[0]"
    n = len(v.scorer.long_texts) - 1  # distinct queries of the long text, each counted once
    assert derived == (f"{n} perturbed or attacked versions of the texts are longer than the model's 512 tokens: "
                       "their first 512 tokens were scored.")
    assert v.notice == v.result.notice


# -- item 8: CSV cells -----------------------------------------------------------------------------
FORMULAS = ["=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe66", "\u207c"]  # ＝＋－＠﹦⁼
BLANKS = [" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u200b", "\ufeff", "\x0b"]


@settings(max_examples=200, deadline=None)
@given(blank=st.lists(st.sampled_from(BLANKS), max_size=4).map("".join), start=st.sampled_from(FORMULAS),
       rest=st.text(max_size=20))
def test_csv_cells_hiding_a_formula_are_neutralised(blank, start, rest):
    """Rule: a cell is neutralised when its first character is a control character, or when it starts
    with = + - @ once NFKC-normalised and stripped of leading whitespace and invisible characters."""
    cell = blank + start + rest
    assert csv_cell(cell) == "'" + cell


@settings(max_examples=200, deadline=None)
@given(cell=st.text(max_size=20))
def test_csv_cells_are_kept_or_only_prefixed(cell):
    """Nothing is lost: a cell is kept or gets one apostrophe; text that starts with a letter is kept."""
    got = csv_cell(cell)
    assert got in (cell, "'" + cell)
    assert csv_cell("a" + cell) == "a" + cell and csv_cell(3.5) == 3.5 and csv_cell(-2) == -2


def test_the_audit_csv_neutralises_hidden_formulas(tmp_path):
    hostile = [" =cmd|' /C calc'!A0", "\uff1dSUM(A1)", "\n=1+1", "\r@x", "\u3000\uff0b1"]
    res = AuditResult(summary=[{"section": "groups", "check": c, "value": 0.5, "ci_low": float("nan"),
                                "ci_high": float("nan"), "threshold": 0.1, "rule": "<=", "passed": False,
                                "detail": c} for c in hostile])
    with open(res.to_csv(tmp_path / "s.csv"), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["check"] for r in rows] == ["'" + c for c in hostile] == [r["detail"] for r in rows]
