"""The "attn" and "mlp" sites are what each branch adds to the residual stream: on every pre-norm
decoder of the family matrix (sequential blocks), block l's output is its input plus its attention
and MLP sites, exactly. Models that normalise a branch's output before the sum ("sandwich" norms:
Gemma 2 and 3, OLMo 2) read the sites after that norm; before it was found they missed by ~100%.
Through nnsight the sites are the same modules."""
from __future__ import annotations

import copy

import pytest
import torch

import llm_widgets as lw
from llm_widgets.execution import Program, Read, run
from llm_widgets.layers import EMBEDDINGS
from llm_widgets.testing import build
from llm_widgets.testing.families import FAMILIES

CAUSAL = [f for f, (task, _) in FAMILIES.items() if task == "causal"]


def _sum_errors(s):
    ad = s.adapter
    enc = s.tokenizer("the cat sat on the mat because it was tired", return_tensors="pt")
    L = ad.n_layers
    reads = [Read("resid", EMBEDDINGS)] + [Read(site, l) for l in range(L) for site in ("resid", "attn", "mlp")]
    r = run(s, Program(enc, reads=reads)).reads
    prev, errs = r[("resid", EMBEDDINGS)], []
    for l in range(L):
        got = prev + r[("attn", l)] + r[("mlp", l)]
        errs.append(float((got - r[("resid", l)]).norm() / r[("resid", l)].norm()))
        prev = r[("resid", l)]
    return errs, r


@pytest.mark.parametrize("family", CAUSAL)
def test_branches_add_up_to_the_block(family, minilm_tokenizer):
    s = lw.load((build(family), minilm_tokenizer), device="cpu")
    errs, _ = _sum_errors(s)  # parallel blocks (attention and MLP read the same input) add up too
    assert max(errs) < 1e-5, (family, errs)


def test_sandwich_norms_are_found_by_observation(minilm_tokenizer):
    s = lw.load((build("gemma2"), minilm_tokenizer), device="cpu")
    ad = s.adapter
    assert all(p is not None for p in ad.attn_post) and all(p is not None for p in ad.mlp_post)
    # the "mlp" site is what the block adds: the post-norm's output, not the MLP's own output
    assert ad.site("mlp", 0).module is not ad.mlp_out[0].module
    assert all(p is None for p in lw.load((build("llama"), minilm_tokenizer), device="cpu").adapter.mlp_post)


def test_nnsight_reads_the_same_sites(minilm_tokenizer):
    pytest.importorskip("nnsight")
    m = build("gemma2")
    native = lw.load((m, minilm_tokenizer), device="cpu")
    nn = lw.load((copy.deepcopy(m), minilm_tokenizer), device="cpu", backend="nnsight")
    _, a = _sum_errors(native)
    errs, b = _sum_errors(nn)
    assert max(errs) < 1e-5
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0)
