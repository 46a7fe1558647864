"""Small models with known mechanisms, trained here in seconds on generated data (cached on disk).

- `keyword_classifier()` / `train_classifier(texts, labels)`: sequence classifiers whose label is
  decided by known words (llm_widgets/teaching/classifier.py).
- `induction_model()`: a 2-layer attention-only transformer with induction heads
  (llm_widgets/teaching/induction.py).
- `ioi_model()`: a small GPT-2 that solves indirect object identification on held-out templates and
  names; `ioi_prompts(n, split)` and `logit_diff(session, prompts)` for the notebook
  (llm_widgets/teaching/ioi.py).
- `canary_model()`: a tiny GPT-2 with planted secrets ("my PIN is 4 8 1 7") for memorization
  audits (llm_widgets/teaching/canary.py).
- `two_hop()`: a small GPT-2 with a known two-step lookup circuit (person -> city -> country) and
  per-layer transcoders trained on it, for attribution graphs (llm_widgets/teaching/two_hop_model.py).
- `superposition_model()`: a toy model of superposition (12 sparse features in 6 dimensions) and an SAE
  that recovers its planted directions (llm_widgets/teaching/superposition.py).

They (and the distilled students of llm_widgets/compute/distill.py) share one seeded training loop
and weight cache: llm_widgets/teaching/train.py.
"""
from importlib import import_module

_LAZY = {
    "keyword_classifier": ".classifier",
    "train_classifier": ".classifier",
    "keyword_dataset": ".classifier",
    "induction_model": ".induction",
    "induction_dataset": ".induction",
    "induction_scores": ".induction",
    "repeated_prompt": ".induction",
    "ioi_model": ".ioi",
    "ioi_prompts": ".ioi",
    "logit_diff": ".ioi",
    "canary_model": ".canary",
    "canary_corpus": ".canary",
    "superposition_model": ".superposition",
    "two_hop": ".two_hop_model",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llm_widgets.teaching' has no attribute {name!r}")
