"""AttributionView says what a text target of several tokens is (issue 31 "Also", the rule issue 29
landed): one output, the sum of the tokens' teacher-forced log-probs; `info["target_tokens"]` names
the tokens (the tokenizer's own split), empty for a one-token target and for classifiers."""
from __future__ import annotations

import numpy as np

import llm_widgets as lw


def test_a_several_token_target_is_one_output_and_its_tokens_are_named(tiny_gpt2):
    s = tiny_gpt2
    target = " zxqvunbelievable"
    ids = s.tokenizer.encode(target, add_special_tokens=False)
    assert len(ids) > 1
    v = lw.AttributionView(s, "the cat sat on the", target=target, method="grad_x_input",
                           compute_faithfulness=False, background=False)
    assert len(v.targets) == 1 and np.asarray(v.scores).shape[0] == 1
    assert v.info["output"] == "log_prob"
    assert v.info["target_tokens"] == s.readable_tokens(s.tokenizer.convert_ids_to_tokens(ids))
    one = lw.AttributionView(s, "the cat sat on the", target=" cat", method="grad_x_input",
                             compute_faithfulness=False, background=False)
    assert one.info["target_tokens"] == []
