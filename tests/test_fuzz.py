"""Property-based fuzzing (hypothesis) of every view's arguments and selection traits: whatever a
user types, the only exceptions are our errors (LLMWidgetsError), TypeError or a trait's
TraitError, each with a message; nothing hangs (tiny models, small values)."""
import math

import pytest
import traitlets as t
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llm_widgets as lw

TEXT = "the film was terrible and the acting was slow"
TEXTS = ["the film was great", "a terrible plot", "the acting was wonderful", "slow and dull scenes",
         "what a lovely story", "the worst ending ever", "a fine cast", "boring and long"]
LABELS = ["pos", "neg"] * 4
VALUES = st.sampled_from([-1, 0, 1, 2, 3, True, False, 1.5, math.nan, "", "x", "NEGATIVE", " the",
                          None, [], [0], ["attention"], {"a": 1}, "<img src=x>"])
ALLOWED = (lw.LLMWidgetsError, TypeError, t.TraitError)
SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


def _kwargs(names):
    return st.dictionaries(st.sampled_from(names), VALUES, max_size=3)


def _check(make, kwargs):
    try:
        v = make(**kwargs)
    except ALLOWED as e:
        assert str(e).strip(), f"{type(e).__name__} without a message for {kwargs}"
        return None
    except Exception as e:  # noqa: BLE001 - anything else is a defect
        pytest.fail(f"{type(e).__name__}: {e} for {kwargs!r}")
    if hasattr(v, "wait"):
        v.wait(120)
    return v


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
                 ["metric", "answers", "position", "sites", "heads", "batch_size"]),
    "logit_lens": (lambda s, kw, **k: lw.LogitLensView(s["gpt2"], TEXT, **k), ["k", "truncate"]),
    "probe": (lambda s, kw, **k: lw.ProbeView(s["minilm"], TEXTS, LABELS, background=False, **k),
              ["level", "seeds", "control", "probe", "pooling", "test_size", "batch_size", "groups"]),
    "concepts": (lambda s, kw, **k: lw.ConceptView(s["minilm"], TEXTS, background=False, **k),
                 ["layer", "level", "k", "method", "pooling", "batch_size", "seed"]),
    "audit": (lambda s, kw, **k: lw.AuditView(kw, texts=TEXTS, background=False, n_boot=20, **k),
              ["labels", "groups", "tolerance", "robustness", "target", "thresholds", "seed", "explain"]),
    "explorer": (lambda s, kw, **k: lw.Explorer(s["gpt2"], TEXT, **k), ["panels", "options", "truncate"]),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_constructor_arguments(name, minilm, tiny_gpt2, keyword):
    make, params = VIEWS[name]
    sessions = {"minilm": minilm, "gpt2": tiny_gpt2}

    @SETTINGS
    @given(_kwargs(params))
    def run(kwargs):
        _check(lambda **k: make(sessions, keyword, **k), kwargs)

    run()


@pytest.mark.parametrize("name", list(VIEWS))
def test_selection_traits(name, minilm, tiny_gpt2, keyword):
    make, _ = VIEWS[name]
    view = make({"minilm": minilm, "gpt2": tiny_gpt2}, keyword)
    view.wait(120)
    traits = [n for n in view.trait_names() if n.startswith("selected_") or n in ("layer", "mode", "method")]
    assert traits or name == "concepts"

    @SETTINGS
    @given(st.sampled_from(traits or ["title"]), VALUES)
    def run(trait, value):
        try:
            setattr(view, trait, value)
        except ALLOWED as e:
            assert str(e).strip()
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{type(e).__name__}: {e} setting {trait}={value!r}")
        view.wait(120)

    run()
