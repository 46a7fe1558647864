"""The adapter: discovery on a model it has never seen, explicit layouts, shared layers, and
attention weights that are not the model's own."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import llm_widgets as lw
from llm_widgets.execution.hooks import capture
from llm_widgets.compute.patching import patching

from llm_widgets.testing import build


class Mixer(nn.Module):  # attention under a name discovery does not recognise
    def __init__(self, d, h):
        super().__init__()
        self.h, self.qkv, self.proj = h, nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        w = torch.softmax((q @ k.transpose(-1, -2) / (d // self.h) ** 0.5).masked_fill(mask, -1e9), -1)
        return self.proj((w @ v).transpose(1, 2).reshape(b, t, d))


class Layer(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.n1, self.n2, self.mixer = nn.LayerNorm(d), nn.LayerNorm(d), Mixer(d, h)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.mixer(self.n1(x))
        return x + self.ff(self.n2(x))


class Toy(nn.Module):
    """A causal LM that is not from transformers, with its own names."""

    def __init__(self, vocab=30522, d=32, h=4, n=2):
        super().__init__()
        torch.manual_seed(0)
        self.config = SimpleNamespace(num_attention_heads=h)
        self.emb, self.stack = nn.Embedding(vocab, d), nn.ModuleList(Layer(d, h) for _ in range(n))
        self.norm, self.unembed = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def get_input_embeddings(self):
        return self.emb

    def get_output_embeddings(self):
        return self.unembed

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False, return_dict=True, **kw):
        x = self.emb(input_ids)
        hs = [x]
        for layer in self.stack:
            x = layer(x)
            hs.append(x)
        return SimpleNamespace(logits=self.unembed(self.norm(x)), hidden_states=tuple(hs), attentions=None)


def test_an_unknown_model_is_explained_then_works_with_a_layout(minilm_tokenizer):
    toy = Toy()
    s = lw.load((toy, minilm_tokenizer), device="cpu")
    with pytest.raises(lw.UnsupportedModelError, match=r"attention output projection.*Layout\(attn_out="):
        _ = s.adapter
    s = lw.load((toy, minilm_tokenizer), device="cpu", layout=lw.Layout(attn_out="mixer.proj"))
    ad = s.adapter
    assert ad.blocks[1].path == "stack.1" and ad.mlp_out[0].path == "stack.0.ff.2"  # the rest discovered
    assert (ad.n_heads, ad.head_dim, ad.kind, ad.final_norm, ad.head) == (4, 8, "decoder", ["norm"], "unembed")
    r = patching(s, "When Mary and John went to the store, John gave a drink to",
                 "When Mary and John went to the store, Mary gave a drink to", sites=("resid",), per_head=False)
    assert abs(r.score("resid", 1, r.position) - 1.0) < 1e-5


def test_a_wrong_layout_is_refused(minilm_tokenizer):
    model = build("llama")
    s = lw.load((model, minilm_tokenizer), device="cpu", layout=lw.Layout(attn_out="mlp.down_proj"))
    with pytest.raises(lw.UnsupportedModelError, match="128 features"):
        _ = s.adapter
    s = lw.load((model, minilm_tokenizer), device="cpu", layout=lw.Layout(n_heads=8))
    with pytest.raises(lw.UnsupportedModelError, match="n_heads"):
        _ = s.adapter


def test_a_shared_layer_is_one_site_per_call(minilm_tokenizer):
    s = lw.load((build("albert"), minilm_tokenizer), device="cpu")
    assert s.adapter.shared and s.adapter.blocks[0].module is s.adapter.blocks[1].module
    enc = s.encode("one shared layer, called twice")[0]
    holder = {}
    got = capture(s.model, [("resid", 0), ("resid", 1)],
                  lambda: holder.setdefault("out", s.forward(**enc)))
    hs = holder["out"].hidden_states
    torch.testing.assert_close(got[("resid", 0)], hs[1], rtol=0, atol=0)
    torch.testing.assert_close(got[("resid", 1)], hs[2], rtol=0, atol=0)


def test_attention_from_a_non_eager_path_is_never_drawn(minilm_tokenizer):
    """A model that runs a non-eager attention function which returns weights other than the ones it
    computed with, and that cannot be switched (its own code, not a family of one release): the
    trace holds no weights, says why, and everything else still works."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import AttentionInterface

    def fake_weights(module, query, key, value, attention_mask, **kwargs):  # right output, wrong weights
        out, _ = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
        t = query.shape[2]
        return out, torch.full((query.shape[0], query.shape[1], t, t), 1.0 / t)

    AttentionInterface.register("lw_fake_weights", fake_weights)
    model = build("llama")
    model.config._attn_implementation = "lw_fake_weights"

    def cannot_switch(*args, **kwargs):
        raise ValueError("this model cannot switch its attention implementation")

    model.set_attn_implementation = cannot_switch
    try:
        s = lw.load((model, minilm_tokenizer), device="cpu")
        text = "the weights it returns are not the ones it used"
        tr = s.trace(text)
        assert tr.attentions is None and "lw_fake_weights" in tr.attention_note
        with pytest.raises(lw.AttentionUnavailableError, match="attn_implementation='eager'"):
            lw.AttentionView(s, text)
        assert np.isfinite(tr.logits).all()  # everything else still works
    finally:
        AttentionInterface._global_mapping.pop("lw_fake_weights", None)
