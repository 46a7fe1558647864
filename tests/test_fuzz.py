"""Property-based fuzzing (hypothesis) of every view's arguments and selection traits, and of the
compute functions views call with user arguments (direct logit attribution, ablation): whatever a
user types, the only exceptions are our errors (LLMWidgetsError), TypeError or a trait's
TraitError, each with a message; a value that cannot mean anything (an unknown keyword, direction
or mode, a donor without resample) raises rather than giving a result; nothing hangs (tiny models,
small values)."""
import math

import pytest
import numpy as np
import torch
import traitlets as t
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llm_widgets as lw
from llm_widgets.compute.ablation import MODES, ablate, ablation_effect

TEXT = "the film was terrible and the acting was slow"
TEXTS = ["the film was great", "a terrible plot", "the acting was wonderful", "slow and dull scenes",
         "what a lovely story", "the worst ending ever", "a fine cast", "boring and long"]
LABELS = ["pos", "neg"] * 4
VALUES = st.sampled_from([-1, 0, 1, 2, 3, True, False, 1.5, math.nan, "", "x", "NEGATIVE", " the",
                          None, [], [0], ["attention"], {"a": 1}, "<img src=x>"])
SAME_LENGTH = "the film was wonderful and the acting was fast"  # as many tokens as TEXT (11)
# VALUES, and what the newer arguments (positions, donors, targets, units, direction) can get wrong:
# ints out of range, ids of every wrong shape and type, texts of the right and the wrong length
ARGS = st.one_of(VALUES, st.sampled_from([
    10**6, -10**6, 11, -11, -12, 30522, "mean", "denoising", "noising", "zero", "resample", SAME_LENGTH,
    "a terrible plot", [SAME_LENGTH, SAME_LENGTH], [SAME_LENGTH, 1], [[1], [1, 2]], [[0.5]], [-1, 20], range(3),
    [(0, 1)], [(3, 0)], [(0, 10**6)], [(0, -1)], [(0, 1.5)], [(True, 1)], [("0", 1)], [(0, 0, 0)],
    np.array([[0, 1]]), np.arange(11), np.arange(11.0), torch.full((1, 11), 10**6), torch.zeros(2, 11, dtype=torch.long),
    10**30, -10**30, np.int64(1996), torch.tensor(1996), np.array([], np.int64), "MEAN", "Mean"]))
# ... and for the ablation menu's traits (mode, donor text)
ABLATION = st.one_of(VALUES, st.sampled_from(["zero", "mean", "resample", SAME_LENGTH, "a terrible plot"]))
ALLOWED = (lw.LLMWidgetsError, TypeError, t.TraitError)
SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


def _kwargs(names, values=VALUES):
    return st.dictionaries(st.sampled_from(names), values, max_size=3)


def _check(make, kwargs, must_fail: bool = False):
    try:
        v = make(**kwargs)
    except ALLOWED as e:
        assert str(e).strip(), f"{type(e).__name__} without a message for {kwargs}"
        return None
    except Exception as e:  # noqa: BLE001 - anything else is a defect
        pytest.fail(f"{type(e).__name__}: {e} for {kwargs!r}")
    if must_fail:
        pytest.fail(f"a result, not an error, for {kwargs!r}")
    if hasattr(v, "wait"):
        v.wait(120)
    return v


def _is(value, options) -> bool:
    return isinstance(value, str) and value in options


def _meaningless(kwargs) -> bool:
    """An argument no call can mean: an unknown keyword, direction or ablation mode, or a donor
    without mode='resample' (and resample without a donor)."""
    mode = kwargs.get("mode", "zero")
    return ("unknown" in kwargs
            or ("direction" in kwargs and not _is(kwargs["direction"], ("denoising", "noising")))
            or ("mode" in kwargs and not _is(mode, MODES))
            or (kwargs.get("donor") is not None) != _is(mode, ("resample",)))


VIEWS = {
    "attention": (lambda s, kw, **k: lw.AttentionView(s["minilm"], TEXT, **k),
                  ["layer", "head", "mode", "truncate", "title"]),
    "attribution": (lambda s, kw, **k: lw.AttributionView(kw, TEXT, background=False, compute_faithfulness=False,
                                                          **k),
                    ["target", "method", "contrast", "baseline", "output", "steps", "n_samples", "seed",
                     "internal_batch_size", "word_level", "generate"]),
    "neuron": (lambda s, kw, **k: lw.NeuronView(s["gpt2"], TEXT, **k), ["layer", "k", "truncate"]),
    "patching": (lambda s, kw, **k: lw.PatchingView(s["gpt2"], "When Mary and John went out, John gave it to",
                                                    "When Mary and John went out, Mary gave it to",
                                                    **{"answers": ("mary", "john"), **k}),
                 ["metric", "answers", "position", "sites", "heads", "batch_size", "direction", "unknown"]),
    "logit_lens": (lambda s, kw, **k: lw.LogitLensView(s["gpt2"], TEXT, **k), ["k", "truncate"]),
    "probe": (lambda s, kw, **k: lw.ProbeView(s["minilm"], TEXTS, LABELS, background=False, **k),
              ["level", "seeds", "control", "probe", "pooling", "test_size", "batch_size", "groups"]),
    "concepts": (lambda s, kw, **k: lw.ConceptView(s["minilm"], TEXTS, background=False, **k),
                 ["layer", "level", "k", "method", "pooling", "batch_size", "seed"]),
    "audit": (lambda s, kw, **k: lw.AuditView(kw, texts=TEXTS, background=False, n_boot=20, **k),
              ["labels", "groups", "tolerance", "robustness", "target", "thresholds", "seed", "explain"]),
    "explorer": (lambda s, kw, **k: lw.Explorer(s["gpt2"], TEXT, **k), ["panels", "options", "truncate"]),
    "direct_logit": (lambda s, kw, **k: lw.DirectLogitView(s["gpt2"], TEXT, **{"target": "the", **k}),
                     ["target", "contrast", "selected_token", "title", "unknown"]),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_constructor_arguments(name, minilm, tiny_gpt2, keyword):
    make, params = VIEWS[name]
    sessions = {"minilm": minilm, "gpt2": tiny_gpt2}

    @SETTINGS
    @given(_kwargs(params, ARGS if name == "patching" else VALUES))
    def run(kwargs):
        _check(lambda **k: make(sessions, keyword, **k), kwargs, name == "patching" and _meaningless(kwargs))

    run()


def _ablated_logits(session, **kwargs):
    enc, _, _ = session.encode(TEXT)
    with ablate(session, **{"neurons": [(0, 1)], **kwargs}):
        return session.forward(attentions=False, **enc).logits


# compute functions that take user arguments straight from a notebook (or a view's method)
FUNCTIONS = {
    "direct_logit_attribution": (lambda s, **k: lw.direct_logit_attribution(s, **{"inputs": TEXT, "target": "the",
                                                                                   **k}),
                                 ["inputs", "target", "contrast", "positions", "unknown"]),
    "ablation_effect": (lambda s, **k: ablation_effect(s, TEXT, **{"neurons": [(0, 1)], **k}),
                        ["heads", "neurons", "mode", "donor", "position", "k", "unknown"]),
    "ablate": (_ablated_logits, ["heads", "neurons", "mode", "donor", "unknown"]),
}


def _pairs(units) -> bool:
    """None (no units) or a list of (layer, index) pairs of integers."""
    if units is None:
        return True
    try:
        return not isinstance(units, str) and all(
            len(item) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in item)
            for item in units)
    except TypeError:
        return False


def _finite(result) -> bool:
    arrays = [getattr(result, n, None) for n in ("values", "logit", "before", "after")]
    arrays = [result] if isinstance(result, torch.Tensor) else [a for a in arrays if a is not None]
    return bool(arrays) and all(np.isfinite(np.asarray(a)).all() for a in arrays)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function_arguments(name, tiny_gpt2):
    make, params = FUNCTIONS[name]

    @SETTINGS
    @given(_kwargs(params, ARGS))
    def run(kwargs):
        contrast, target = kwargs.get("contrast"), kwargs.get("target", "the")
        same = isinstance(contrast, (str, int)) and isinstance(target, (str, int)) and contrast == target != "mean"
        bad = _meaningless(kwargs) or same or not (_pairs(kwargs.get("heads")) and _pairs(kwargs.get("neurons")))
        got = _check(lambda **k: make(tiny_gpt2, **k), kwargs, bad)
        assert got is None or _finite(got), f"non-finite result for {kwargs!r}"

    run()


def test_direct_logit_token_ids(tiny_gpt2):
    """A token id as any integer scalar (Python of any size, numpy, 0-d torch / numpy): one in the
    vocabulary is read as that token, any other is an error naming the argument, never OverflowError."""
    s = tiny_gpt2
    V, the = len(s.tokenizer), s.tokenizer.convert_tokens_to_ids("the")

    def wrapped(i, wrap):
        try:
            return wrap(i)
        except (OverflowError, RuntimeError):  # numpy / torch cannot hold it: a Python int then
            return i

    @settings(SETTINGS, max_examples=30)  # a forward each: kept short
    @given(st.one_of(st.integers(), st.integers(-2, V + 2), st.integers(-2**80, 2**80)),
           st.sampled_from([int, np.int64, np.uint64, torch.tensor, np.array]), st.sampled_from(["target", "contrast"]))
    def run(i, wrap, which):
        kwargs = {"target": "the", which: wrapped(i, wrap)}
        ok = 0 <= i < V and not (which == "contrast" and i == the)
        try:
            got = lw.direct_logit_attribution(s, TEXT, **kwargs)
        except lw.LLMWidgetsError as e:
            assert not ok and which in str(e), (kwargs, e)
            return
        assert ok and int(got.targets[0, 0]) == (i if which == "target" else the), kwargs

    run()


@pytest.mark.parametrize("name", list(VIEWS))
def test_selection_traits(name, minilm, tiny_gpt2, keyword):
    make, _ = VIEWS[name]
    view = make({"minilm": minilm, "gpt2": tiny_gpt2}, keyword)
    view.wait(120)
    traits = [n for n in view.trait_names()
              if n.startswith("selected_") or n in ("layer", "mode", "method", "ablation_mode", "ablation_donor")]
    assert traits or name == "concepts"

    @SETTINGS
    @given(st.sampled_from(traits or ["title"]), ABLATION if name == "neuron" else VALUES)
    def run(trait, value):
        try:
            setattr(view, trait, value)
        except ALLOWED as e:
            assert str(e).strip()
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{type(e).__name__}: {e} setting {trait}={value!r}")
        view.wait(120)

    run()
