"""FeatureView: what it sends equals a hand computation from the dictionary's weights at the hooked
site (sparse top-k per token), quality numbers equal their definitions, a feature's corpus stats
(top contexts, fires, dead features) equal a dense hand pass, and the corpus pass is cached."""
import numpy as np
import torch

import llm_widgets as lw
from llm_widgets.dictionaries import load_dictionary
from llm_widgets.dictionaries.corpus import corpus_stats
from llm_widgets.execution.hooks import capture
from llm_widgets.testing import build

from test_dictionaries import hand_encode, write_saelens

TEXT = "the cat sat on the mat because it was tired"
CORPUS = ["a dog ran to the park", "the cat sat on the mat", "it was a very hot day today", "we saw the red car"]


def test_feature_view_sends_hand_computed_top_features(tmp_path, minilm_tokenizer, monkeypatch):
    monkeypatch.setenv("LLM_WIDGETS_CACHE", str(tmp_path / "cache"))
    s = lw.load((build("gpt2"), minilm_tokenizer), device="cpu")
    t = write_saelens(tmp_path / "sae", "jumprelu", 64, 300, "blocks.1.hook_resid_post")
    sae = load_dictionary(tmp_path / "sae", session=s)
    v = lw.FeatureView(s, TEXT, sae, corpus=CORPUS, k=8, background=False)
    enc, _, _ = s.encode(TEXT)
    x = capture(s.model, [("resid", 1)], lambda: s.model(**enc))[("resid", 1)][0]
    acts = hand_encode(t, x, "jumprelu")
    want_v, want_i = acts.topk(8, dim=-1)
    r = v.result
    np.testing.assert_allclose(r.values, want_v.numpy(), atol=1e-5)
    on = want_v.numpy() > 0
    assert np.array_equal(r.ids[on], want_i.numpy()[on])
    np.testing.assert_array_equal(r.l0, (acts > 0).sum(-1).numpy())
    rec = acts @ t["W_dec"] + t["b_dec"]
    np.testing.assert_allclose(r.error_norm, (rec - x).norm(dim=-1).numpy(), atol=1e-4)
    fvu = float((rec - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert abs(r.fvu - fvu) <= 1e-6 * fvu
    q = v.quality["loss"]
    assert q["zero"] != q["original"] and abs(q["recovered"] - (q["zero"] - q["spliced"]) / (q["zero"] - q["original"])) < 1e-9
    # sparse: the per-token arrays are [T, k], never [T, F]
    assert v.top_ids.shape == (len(r.tokens), 8) and v.bytes_sent() == len(r.tokens) * (8 * 8 + 8)
    # click a token: its active features, in order; click a feature: its activation over the text
    v.selected_token = 3
    assert [row["feature"] for row in v.token_features] == [int(i) for i, a in zip(want_i[3], want_v[3]) if a > 0]
    f = int(want_i[3, 0])
    v.selected_feature = f
    np.testing.assert_allclose(v.feature["over_text"], acts[:, f].numpy(), atol=1e-5)
    assert len(v.feature["logits"]["promoted"]) == 8
    # corpus: top contexts and dead features equal a dense hand pass
    dense = []
    for text in CORPUS:
        e, _, _ = s.encode(text, truncate=True)
        xx = capture(s.model, [("resid", 1)], lambda: s.model(**e))[("resid", 1)][0]
        dense.append(hand_encode(t, xx, "jumprelu"))
    fires = sum((a > 0).sum(0) for a in dense).numpy()
    assert v.corpus_summary["dead"] == int((fires == 0).sum())
    best = max(((float(a[p, f]), i, p) for i, a in enumerate(dense) for p in range(a.shape[0])))
    ctx = v.feature["contexts"][0]
    assert (ctx["text"], ctx["position"]) == (best[1], best[2]) and abs(ctx["activation"] - best[0]) < 1e-5
    assert sum(v.feature["hist"]) == int(fires[f])
    # cached on disk: a second pass reads the file
    files = list((tmp_path / "cache").glob("features-*.npz"))
    assert len(files) == 1
    again = corpus_stats(s, sae, CORPUS)
    np.testing.assert_array_equal(again.fires, fires)


def test_bytes_sent_at_512_tokens_with_16k_features(tmp_path, minilm_tokenizer):
    """Sparse transport: at T=512 and 16k features FeatureView's per-token arrays are well under 1 MB."""
    s = lw.load((build("llama", positions=600), minilm_tokenizer), device="cpu")
    write_saelens(tmp_path / "w", "topk", 64, 16384, "blocks.0.hook_resid_post", k=32)
    sae = load_dictionary(tmp_path / "w", session=s)
    text = " ".join(["word"] * 510)
    v = lw.FeatureView(s, text, sae, k=32, background=False)
    assert len(v.tokens) == 512
    assert v.bytes_sent() < 1 << 20
    assert torch.is_tensor(sae.weights.W_enc)


def test_edit_shows_probabilities_of_the_edited_model_and_exports(tmp_path, minilm_tokenizer):
    s = lw.load((build("gpt2"), minilm_tokenizer), device="cpu")
    write_saelens(tmp_path / "sae", "standard", 64, 100, "blocks.0.hook_resid_post")
    sae = load_dictionary(tmp_path / "sae", session=s)
    v = lw.FeatureView(s, TEXT, sae, k=4, background=False)
    shown = v.edit(add={7: 6.0})
    enc, _, _ = s.encode(TEXT)
    with torch.no_grad():
        before = torch.softmax(s.model(**enc).logits[0, -1], -1)
        with lw.edit_features(s, sae, add={7: 6.0}):
            after = torch.softmax(s.model(**enc).logits[0, -1], -1)
    ids = shown["ids"]
    np.testing.assert_allclose(shown["before"], before[ids].numpy(), atol=1e-6)
    np.testing.assert_allclose(shown["after"], after[ids].numpy(), atol=1e-6)
    assert ids[0] == int((after - before).abs().argmax())
    page = v.to_html(tmp_path / "f.html").read_text()
    assert "features" in page and "<script" in page
