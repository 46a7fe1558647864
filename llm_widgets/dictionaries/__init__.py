"""Sparse dictionaries (SAEs, transcoders) on any model: read from the formats people publish,
encode at scale, splice into the forward and edit features.

    sae = lw.load_dictionary("path/to/sae", session=s)       # readers.py
    ids, vals = sae.top_features(x, k=16)                     # dictionary.py
    with lw.edit_features(s, sae, add={7: 4.0}): ...          # edit.py (coding.Splice)

Modules: coding (torch-only arithmetic and the Splice / FeaturePatch / Stash ops), dictionary
(Dictionary), feature (one feature: steering by its decoder row), sites (hook names -> sites),
readers (formats), crosslayer (circuit-tracer CLTs), activations (reading a site), edit
(edit_features; transcoders spliced in), patching (feature-level patching), analysis (what
FeatureView shows), corpus (top contexts over a corpus, cached), attribution (activation x gradient
per feature), train (SAE training).
"""
from .dictionary import Dictionary  # noqa: F401
from .edit import edit_features  # noqa: F401
from .feature import Feature  # noqa: F401
from .patching import feature_patching  # noqa: F401
from .readers import load_dictionary  # noqa: F401
from .sites import Site  # noqa: F401
