"""The Explorer's truncate box (issue 31, item 9): a text longer than the model accepts is refused with an
error that names truncate=True; the synced `truncate` trait (the view's checkbox) runs the same text
again cut to the model's length, and the error of the refused text is cleared."""
from __future__ import annotations

import pytest

import llm_widgets as lw


def test_truncate_trait_runs_a_too_long_text_cut_to_the_context(tiny_gpt2):
    ex = lw.Explorer(tiny_gpt2, "the cat sat on the mat", panels=("neuron",))
    assert ex.truncate is False and ex.error == ""
    long = " ".join(["word"] * 300)  # 300 words: more than the 128 positions this GPT-2 has
    ex.text = long
    assert "truncate=True" in ex.error and ex.tokens == tiny_gpt2.trace("the cat sat on the mat").tokens
    ex.truncate = True  # what the checkbox sends
    assert ex.error == ""
    assert len(ex.tokens) == 128 and ex.tokens == tiny_gpt2.trace(long, truncate=True).tokens
    assert ex.notice and ex.panels["neuron"].tokens == ex.tokens
    ex.truncate = False  # unticked: the same text is refused again, the last views kept
    assert "truncate=True" in ex.error and len(ex.tokens) == 128


def test_truncate_argument_sets_the_trait(tiny_gpt2):
    ex = lw.Explorer(tiny_gpt2, " ".join(["word"] * 300), panels=("neuron",), truncate=True)
    assert ex.truncate is True and len(ex.tokens) == 128
    with pytest.raises(lw.LLMWidgetsError, match="truncate=True"):
        lw.Explorer(tiny_gpt2, " ".join(["word"] * 300), panels=("neuron",))


def test_library_warnings_go_to_the_notice_not_stderr(tiny_gpt2, monkeypatch, recwarn):
    import warnings

    orig = tiny_gpt2.trace

    def noisy(text, truncate=False, **kw):
        for _ in range(2):
            warnings.warn("Using a non-tuple sequence for multidimensional indexing is deprecated", UserWarning,
                          stacklevel=2)
        return orig(text, truncate=truncate, **kw)

    monkeypatch.setattr(tiny_gpt2, "trace", noisy)
    ex = lw.Explorer(tiny_gpt2, " ".join(["word"] * 300), panels=("neuron",), truncate=True)
    line = "UserWarning: Using a non-tuple sequence for multidimensional indexing is deprecated"
    assert line in ex.notice and ex.notice.count(line) == 1  # once, however often it was raised
    assert ex.notice.startswith(orig(" ".join(["word"] * 300), truncate=True).notice)  # what truncation kept, first
    assert not [w for w in recwarn if "multidimensional" in str(w.message)]  # nothing left for stderr
