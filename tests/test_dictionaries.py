"""Sparse dictionaries: every published format read back to the weights written (fixtures write the
formats as their own code reads them, with random weights), activations equal a hand computation
from the weights at a hand-hooked site, splicing with no edit leaves logits unchanged, `add` equals
a hand hook, JumpReLU thresholds and TopK k are honoured exactly, and the chunked encoder equals
the dense one under its memory budget."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import llm_widgets as lw
from llm_widgets.dictionaries import Dictionary, edit_features, load_dictionary
from llm_widgets.dictionaries.activations import site_activations
from llm_widgets.dictionaries.coding import Weights
from llm_widgets.dictionaries.sites import Site, from_hook_name
from llm_widgets.errors import LLMWidgetsError
from llm_widgets.execution.hooks import capture, hooks
from llm_widgets.testing import build

TEXT = "the cat sat on the mat because it was tired"
_S: dict = {}


def session(fam, tok):
    if fam not in _S:
        _S[fam] = lw.load((build(fam), tok), device="cpu")
    return _S[fam]


def rand(*shape, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale


def write_saelens(path, arch, d_in, F, hook, seed=0, **cfg_extra):
    path.mkdir(parents=True, exist_ok=True)
    t = {"W_enc": rand(d_in, F, seed=seed), "W_dec": rand(F, d_in, seed=seed + 1),
         "b_enc": rand(F, seed=seed + 2, scale=0.1), "b_dec": rand(d_in, seed=seed + 3, scale=0.1)}
    if arch == "jumprelu":
        t["threshold"] = rand(F, seed=seed + 4).abs()
    if arch == "gated":
        t = {k: v for k, v in t.items() if k != "b_enc"}
        t.update(b_gate=rand(F, seed=seed + 5, scale=0.1), r_mag=rand(F, seed=seed + 6, scale=0.1),
                 b_mag=rand(F, seed=seed + 7, scale=0.1))
    save_file(t, str(path / "sae_weights.safetensors"))
    cfg = {"architecture": arch, "d_in": d_in, "d_sae": F, "dtype": "float32", "apply_b_dec_to_input": True,
           "normalize_activations": "none", "metadata": {"hook_name": hook}, **cfg_extra}
    (path / "cfg.json").write_text(json.dumps(cfg))
    return t


def hand_encode(t, x, arch, k=None, b_in=True):
    """SAELens's encode, written out from the weights."""
    xin = x - t["b_dec"] if b_in else x
    if arch == "gated":
        gate = xin @ t["W_enc"] + t["b_gate"]
        mag = xin @ (t["W_enc"] * t["r_mag"].exp()) + t["b_mag"]
        return torch.relu(mag) * (gate > 0)
    pre = xin @ t["W_enc"] + t["b_enc"]
    if arch == "jumprelu":
        return torch.relu(pre) * (pre > t["threshold"])
    if arch == "topk":
        v, i = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, i, torch.relu(v))
    return torch.relu(pre)


# -- hook names ------------------------------------------------------------------------------------
def test_hook_names_map_to_sites():
    assert from_hook_name("blocks.0.hook_resid_pre") == Site("resid", lw.EMBEDDINGS, "blocks.0.hook_resid_pre")
    assert from_hook_name("blocks.3.hook_resid_pre").layer == 2
    assert (from_hook_name("blocks.3.hook_resid_post").site, from_hook_name("blocks.3.hook_resid_post").layer) == \
        ("resid", 3)
    assert from_hook_name("blocks.1.hook_mlp_out").site == "mlp"
    assert from_hook_name("blocks.1.mlp.hook_out").site == "mlp"
    assert from_hook_name("blocks.1.hook_attn_out").site == "attn"
    assert from_hook_name("blocks.1.attn.hook_z").site == "heads"
    assert from_hook_name("blocks.1.hook_resid_mid").site == "resid_mid"
    assert from_hook_name("blocks.1.ln2.hook_normalized").site == "mlp_in"
    with pytest.raises(LLMWidgetsError, match="unknown hook name"):
        from_hook_name("blocks.1.hook_q")


HOOKS = [("blocks.1.hook_resid_pre", lambda hs, cap: hs[1]), ("blocks.0.hook_resid_pre", lambda hs, cap: hs[0]),
         ("blocks.1.hook_resid_post", lambda hs, cap: cap[("resid", 1)]),
         ("blocks.1.hook_mlp_out", lambda hs, cap: cap[("mlp", 1)]),
         ("blocks.0.hook_attn_out", lambda hs, cap: cap[("attn", 0)]),
         ("blocks.1.hook_resid_mid", lambda hs, cap: hs[1] + cap[("attn", 1)]),
         ("blocks.1.attn.hook_z", lambda hs, cap: cap[("heads", 1)])]


@pytest.mark.parametrize("fam", ["gpt2", "llama", "gemma"])
@pytest.mark.parametrize("hook,expected", HOOKS, ids=[h for h, _ in HOOKS])
def test_activations_equal_hand_computation_at_mapped_site(fam, hook, expected, tmp_path, minilm_tokenizer):
    s = session(fam, minilm_tokenizer)
    enc, _, _ = s.encode(TEXT)
    with torch.no_grad():
        hs = s.model(**enc, output_hidden_states=True).hidden_states
    cap = capture(s.model, [("resid", 1), ("mlp", 1), ("attn", 0), ("attn", 1), ("heads", 1)],
                  lambda: s.model(**enc))
    x_hand = expected(hs, cap)[0].float()
    t = write_saelens(tmp_path / "sae", "jumprelu", x_hand.shape[-1], 96, hook)
    d = load_dictionary(tmp_path / "sae", session=s)
    x = site_activations(s, d, enc)[0]
    torch.testing.assert_close(x, x_hand, atol=1e-5, rtol=0)
    acts = d.encode(x)
    torch.testing.assert_close(acts, hand_encode(t, x_hand, "jumprelu"), atol=1e-5, rtol=0)
    assert (acts > 0).any()


# -- formats ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk", "gated"])
def test_saelens_architectures_encode_as_saelens(arch, tmp_path):
    t = write_saelens(tmp_path / arch, arch, 32, 200, "blocks.1.hook_resid_post", k=7)
    d = load_dictionary(tmp_path / arch)
    x = rand(20, 32, seed=9, scale=1.0)
    acts = d.encode(x)
    torch.testing.assert_close(acts, hand_encode(t, x, arch, k=7), atol=1e-5, rtol=0)
    rec = d.decode(acts)
    torch.testing.assert_close(rec, acts @ t["W_dec"] + t["b_dec"], atol=1e-5, rtol=0)
    if arch == "topk":  # k honoured exactly: at most k active per token, and they are the k largest
        assert int((acts > 0).sum(-1).max()) <= 7
        pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
        kth = pre.topk(7, dim=-1).values[:, -1:]
        assert bool(((acts > 0) <= (pre >= kth)).all())
    if arch == "jumprelu":  # a feature is active iff its pre-activation exceeds its threshold
        pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
        assert torch.equal(acts > 0, pre > t["threshold"])


def test_jumprelu_threshold_is_strict(tmp_path):
    """A pre-activation exactly at the threshold stays off (SAELens: pre > threshold)."""
    w = Weights(W_enc=torch.eye(3), b_enc=torch.zeros(3), W_dec=torch.eye(3), b_dec=torch.zeros(3),
                activation="jumprelu", threshold=torch.tensor([0.5, 0.5, 0.5]))
    d = Dictionary(w)
    assert d.encode(torch.tensor([[0.5, 0.50001, 0.4]])).tolist() == [[0.0, pytest.approx(0.50001), 0.0]]


def test_batchtopk_reads_as_jumprelu_with_one_threshold(tmp_path):
    t = write_saelens(tmp_path / "b", "standard", 16, 64, "blocks.0.hook_resid_post")
    cfg = json.loads((tmp_path / "b" / "cfg.json").read_text())
    cfg.update(architecture="batchtopk", topk_threshold=0.2, k=8)
    (tmp_path / "b" / "cfg.json").write_text(json.dumps(cfg))
    d = load_dictionary(tmp_path / "b")
    x = rand(10, 16, seed=3, scale=1.0)
    pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    torch.testing.assert_close(d.encode(x), torch.relu(pre) * (pre > 0.2), atol=1e-6, rtol=0)


def test_normalization_constant_norm_rescale(tmp_path):
    t = write_saelens(tmp_path / "n", "standard", 16, 40, "blocks.0.hook_resid_post",
                      normalize_activations="constant_norm_rescale")
    d = load_dictionary(tmp_path / "n")
    x = rand(5, 16, seed=4, scale=3.0)
    c = 16 ** 0.5 / x.norm(dim=-1, keepdim=True)
    acts = hand_encode(t, x * c, "standard")
    torch.testing.assert_close(d.encode(x), acts, atol=1e-5, rtol=0)
    torch.testing.assert_close(d.reconstruct(x), (acts @ t["W_dec"] + t["b_dec"]) / c, atol=1e-5, rtol=0)


def test_sparsify_folder(tmp_path, minilm_tokenizer):
    s = session("llama", minilm_tokenizer)
    path = s.adapter.blocks[1].path  # sparsify names the folder by the hookpoint's module path
    folder = tmp_path / path.split("model.", 1)[-1]
    folder.mkdir()
    F, d_in = 128, 64
    t = {"encoder.weight": rand(F, d_in), "encoder.bias": rand(F, seed=1, scale=0.1), "W_dec": rand(F, d_in, seed=2),
         "b_dec": rand(d_in, seed=3, scale=0.1)}
    save_file(t, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({"activation": "topk", "k": 5, "num_latents": F, "d_in": d_in,
                                                 "transcode": False, "expansion_factor": 2}))
    d = load_dictionary(folder, session=s)
    assert (d.site.site, d.site.layer) == ("resid", 1)
    x = rand(7, d_in, seed=5, scale=1.0)
    pre = torch.relu((x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"])  # sparsify's fused_encoder
    v, i = pre.topk(5, dim=-1)
    torch.testing.assert_close(d.encode(x), torch.zeros_like(pre).scatter(-1, i, v), atol=1e-5, rtol=0)


def test_gemma_scope_npz(tmp_path, minilm_tokenizer):
    s = session("gemma", minilm_tokenizer)
    F = 80
    p = {"W_enc": rand(64, F).numpy(), "W_dec": rand(F, 64, seed=1).numpy(), "b_enc": rand(F, seed=2).numpy(),
         "b_dec": rand(64, seed=3).numpy(), "threshold": rand(F, seed=4).abs().numpy()}
    (tmp_path / "layer_1").mkdir()
    np.savez(tmp_path / "layer_1" / "params.npz", **p)
    with pytest.raises(LLMWidgetsError, match="names no site"):
        load_dictionary(tmp_path / "layer_1", session=s)
    d = load_dictionary(tmp_path / "layer_1", session=s, site="blocks.1.hook_resid_post")
    x = rand(6, 64, seed=8, scale=1.0)
    pre = x @ torch.from_numpy(p["W_enc"]) + torch.from_numpy(p["b_enc"])  # no b_dec shift (Gemma Scope)
    torch.testing.assert_close(d.encode(x), torch.relu(pre) * (pre > torch.from_numpy(p["threshold"])),
                               atol=1e-5, rtol=0)


def test_circuit_tracer_transcoder_set(tmp_path):
    F, d = 48, 64
    for layer in range(2):
        save_file({"W_enc": rand(F, d, seed=layer), "W_dec": rand(d, F, seed=10 + layer),
                   "b_enc": rand(F, seed=20 + layer), "b_dec": rand(d, seed=30 + layer),
                   "W_skip": rand(d, d, seed=40 + layer, scale=0.01)}, str(tmp_path / f"layer_{layer}.safetensors"))
    (tmp_path / "set.yaml").write_text(
        "model_name: tiny\nfeature_input_hook: hook_resid_mid\nfeature_output_hook: mlp.hook_out\ntranscoders:\n"
        + "".join(f"  - id: t{i}\n    layer: {i}\n    filepath: layer_{i}.safetensors\n" for i in (1, 0)))
    got = load_dictionary(tmp_path / "set.yaml")
    assert [g.site.layer for g in got] == [0, 1] and all(g.transcoder for g in got)
    assert got[1].site.site == "resid_mid" and got[1].out_site.site == "mlp"
    x = rand(4, d, seed=50, scale=1.0)
    from safetensors.torch import load_file
    t = load_file(str(tmp_path / "layer_1.safetensors"))
    acts = torch.relu(x @ t["W_enc"].T + t["b_enc"])  # circuit-tracer: W_enc stored [F, d], W_dec [d, F]
    torch.testing.assert_close(got[1].encode(x), acts, atol=1e-5, rtol=0)
    torch.testing.assert_close(got[1].decode(acts, x), acts @ t["W_dec"].T + t["b_dec"] + x @ t["W_skip"].T,
                               atol=1e-5, rtol=0)


def test_in_memory_saelens_object(tmp_path):
    t = write_saelens(tmp_path / "m", "topk", 16, 50, "blocks.0.hook_mlp_out", k=3)

    class Cfg:  # shaped like SAELens's dataclass config (to_dict)
        def to_dict(self):
            return {"architecture": "topk", "d_in": 16, "d_sae": 50, "k": 3, "apply_b_dec_to_input": True,
                    "normalize_activations": "none", "metadata": {"hook_name": "blocks.0.hook_mlp_out"}}

    class FakeSAE:
        cfg = Cfg()
        W_enc, W_dec, b_enc, b_dec = (torch.nn.Parameter(t[k]) for k in ("W_enc", "W_dec", "b_enc", "b_dec"))

    d = load_dictionary(FakeSAE())
    assert d.site.site == "mlp" and d.weights.k == 3
    x = rand(4, 16, seed=2, scale=1.0)
    torch.testing.assert_close(d.encode(x), hand_encode(t, x, "topk", k=3), atol=1e-6, rtol=0)


def test_misfits_are_clear_errors(tmp_path, minilm_tokenizer):
    s = session("gpt2", minilm_tokenizer)
    write_saelens(tmp_path / "w", "standard", 48, 20, "blocks.1.hook_resid_post")
    with pytest.raises(LLMWidgetsError, match="48 features per token.*has 64"):
        load_dictionary(tmp_path / "w", session=s)
    write_saelens(tmp_path / "l", "standard", 64, 20, "blocks.7.hook_resid_post")
    with pytest.raises(LLMWidgetsError, match="out of range"):
        load_dictionary(tmp_path / "l", session=s)
    write_saelens(tmp_path / "q", "standard", 64, 20, "blocks.0.hook_resid_post", dtype="int8")
    with pytest.raises(LLMWidgetsError, match="dtype"):
        load_dictionary(tmp_path / "q")
    write_saelens(tmp_path / "t", "standard", 64, 20, "blocks.0.ln2.hook_normalized")
    with pytest.raises(LLMWidgetsError, match="mlp_in"):  # OPT's MLP is no one module: no MLP input site
        load_dictionary(tmp_path / "t", session=session("opt", minilm_tokenizer))
    with pytest.raises(LLMWidgetsError, match="does not exist"):
        load_dictionary(tmp_path / "nothing")


# -- splicing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fam", ["gpt2", "llama", "gemma"])
@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_post", "blocks.1.hook_mlp_out", "blocks.0.attn.hook_z",
                                  "blocks.0.hook_resid_pre"])
def test_splice_without_edit_leaves_logits_and_add_equals_hand_hook(fam, hook, tmp_path, minilm_tokenizer):
    s = session(fam, minilm_tokenizer)
    enc, _, _ = s.encode(TEXT)
    site = from_hook_name(hook)
    n = 64 if site.site != "heads" else s.adapter.head_layout(0)[0] * s.adapter.head_layout(0)[1]
    write_saelens(tmp_path / "s", "topk", n, 256, hook, k=8)
    d = load_dictionary(tmp_path / "s", session=s)
    with torch.no_grad():
        base = s.model(**enc).logits
        with edit_features(s, d):
            same = s.model(**enc).logits
        torch.testing.assert_close(same, base, atol=1e-5, rtol=0)
        f, a = 17, 3.0
        with edit_features(s, d, add={f: a}):
            edited = s.model(**enc).logits
        vec = d.weights.W_dec[f] * a

        def plus(x):
            return x + vec.to(x.dtype)
        with hooks(s.model, [(site.site, site.layer, plus)]):
            hand = s.model(**enc).logits
    torch.testing.assert_close(edited, hand, atol=1e-5, rtol=0)
    assert float((edited - base).abs().max()) > 1e-3


def test_ablate_and_clamp_change_the_site_by_the_decoder_rows(tmp_path, minilm_tokenizer):
    s = session("llama", minilm_tokenizer)
    enc, _, _ = s.encode(TEXT)
    write_saelens(tmp_path / "s", "standard", 64, 128, "blocks.0.hook_resid_post")
    d = load_dictionary(tmp_path / "s", session=s)
    x = site_activations(s, d, enc)[0]
    acts = d.encode(x)
    f = int(acts[3].argmax())
    with edit_features(s, d, ablate=[f], clamp={5: 2.0}):
        y = capture(s.model, [("resid", 0)], lambda: s.model(**enc))[("resid", 0)][0]
    W = d.weights.W_dec
    want = x - acts[:, f:f + 1] * W[f] + (2.0 - acts[:, 5:6]) * W[5]
    torch.testing.assert_close(y, want, atol=1e-5, rtol=0)
    with pytest.raises(LLMWidgetsError, match="out of range"):
        with edit_features(s, d, add={999: 1.0}):
            pass
    with pytest.raises(TypeError):
        with edit_features(s, d, scale=2):
            pass


def test_resid_mid_is_read_but_not_written(tmp_path, minilm_tokenizer):
    s = session("gpt2", minilm_tokenizer)
    write_saelens(tmp_path / "m", "standard", 64, 32, "blocks.1.hook_resid_mid")
    d = load_dictionary(tmp_path / "m", session=s)
    with pytest.raises(LLMWidgetsError, match="cannot write"):
        with edit_features(s, d):
            pass


# -- encoding at scale -----------------------------------------------------------------------------
def test_top_features_chunked_equals_dense_under_budget():
    g = torch.Generator().manual_seed(0)
    d_in, F, T = 32, 5000, 300
    w = Weights(W_enc=torch.randn(d_in, F, generator=g) * 0.3, b_enc=torch.randn(F, generator=g) * 0.1,
                W_dec=torch.randn(F, d_in, generator=g), b_dec=torch.zeros(d_in), activation="jumprelu",
                threshold=torch.rand(F, generator=g))
    d = Dictionary(w)
    x = torch.randn(T, d_in, generator=g)
    budget = 200_000  # bytes: far below the dense [T, F] float32 (6 MB)
    ids, vals = d.top_features(x, k=10, budget=budget)
    tc, fc = d.last_plan
    assert 3 * 4 * tc * fc <= budget and fc < F
    dense_v, dense_i = d.encode(x).topk(10, dim=-1)
    torch.testing.assert_close(vals, dense_v, atol=1e-6, rtol=0)
    on = dense_v > 0
    assert torch.equal(ids[on], dense_i[on])


PEAK = """
import torch
from llm_widgets.dictionaries.coding import Weights
from llm_widgets.dictionaries.dictionary import Dictionary


def peak():  # this process's own peak resident memory (VmHWM: reset at exec, unlike ru_maxrss)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


torch.manual_seed(0)
d_in, F, T = 16, 262144, 512
d = Dictionary(Weights(W_enc=torch.randn(d_in, F), b_enc=torch.zeros(F), W_dec=torch.randn(F, d_in),
                       b_dec=torch.zeros(d_in), activation="relu"))
x = torch.randn(T, d_in)
d.top_features(x[:1], k=4, budget=1 << 24)
before = peak()
d.top_features(x, k=32, budget=int(BUDGET))
print(peak() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_of_a_wide_dictionary_stays_under_budget():
    """262k features x 512 tokens would be 512 MB dense in float32; under a 16 MB budget the chunked
    encoder's peak grows by far less (the fresh process's own peak resident memory, VmHWM). The same
    run with a budget of the dense size does grow by hundreds of MB: the measurement sees it."""
    grew = {}
    for budget in (16 << 20, 2 << 30):
        out = subprocess.run([sys.executable, "-c", PEAK.replace("BUDGET", str(budget))], capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        grew[budget] = int(out.stdout.split()[-1])
    assert grew[16 << 20] < 48 << 20, grew
    assert grew[2 << 30] > 400 << 20, grew


# -- executors --------------------------------------------------------------------------------------
def test_splice_through_nnsight_equals_native(tmp_path, minilm_tokenizer):
    pytest.importorskip("nnsight")
    import copy

    m = build("llama")
    native = lw.load((m, minilm_tokenizer), device="cpu")
    nn = lw.load((copy.deepcopy(m), minilm_tokenizer), device="cpu", backend="nnsight")
    write_saelens(tmp_path / "s", "jumprelu", 64, 128, "blocks.0.hook_resid_post")
    d = load_dictionary(tmp_path / "s", session=native)
    from llm_widgets.execution import Program, run
    from llm_widgets.dictionaries.edit import splice_write

    got = []
    for s in (native, nn):
        enc, _, _ = s.encode(TEXT)
        w = splice_write(s, d, ablate=[3], clamp={4: 1.5}, add={9: 2.0})
        got.append(run(s, Program(enc, writes=[w], logits="all")).logits)
        x = site_activations(s, d, enc)
        got.append(x)
    torch.testing.assert_close(got[0], got[2], atol=1e-6, rtol=0)
    torch.testing.assert_close(got[1], got[3], atol=1e-6, rtol=0)


# -- teaching -------------------------------------------------------------------------------------
def test_toy_superposition_sae_recovers_planted_directions():
    from llm_widgets.dictionaries.train import train_sae

    toy = lw.teaching.superposition_model()
    st = toy.settings
    assert st.d < st.n_features
    assert float(toy.W.norm(dim=0).min()) > 0.5  # every planted feature is represented (in superposition)
    assert toy.recovered(0.9) >= 0.9
    # control: an untrained SAE of the same width does not "recover" them
    blank = train_sae(toy.h, st.sae_features, kind="topk", k=st.sae_k, steps=1, lr=0.0)
    toy.sae = blank
    assert toy.recovered(0.9) < 0.5


def test_transcoder_reads_resid_mid_and_reconstructs_the_mlp_output(tmp_path, minilm_tokenizer):
    """A circuit-tracer transcoder (hook_resid_mid -> mlp.hook_out): features from resid(0) + attn(1),
    error against block 1's MLP output, both hand-hooked; spliced in with no edit, the logits unchanged."""
    from llm_widgets.dictionaries.analysis import feature_activations

    s = session("llama", minilm_tokenizer)
    F = 40
    save_file({"W_enc": rand(F, 64), "W_dec": rand(64, F, seed=1), "b_enc": rand(F, seed=2, scale=0.1),
               "b_dec": rand(64, seed=3, scale=0.1)}, str(tmp_path / "layer_1.safetensors"))
    save_file({"W_enc": rand(F, 64), "W_dec": rand(64, F, seed=1), "b_enc": rand(F, seed=2, scale=0.1),
               "b_dec": rand(64, seed=3, scale=0.1)}, str(tmp_path / "layer_0.safetensors"))
    (tmp_path / "t.yaml").write_text(
        "model_name: tiny\nfeature_input_hook: hook_resid_mid\nfeature_output_hook: mlp.hook_out\ntranscoders:\n"
        + "".join(f"  - id: t{i}\n    layer: {i}\n    filepath: layer_{i}.safetensors\n" for i in (0, 1)))
    tc = load_dictionary(tmp_path / "t.yaml", session=s)[1]
    enc, _, _ = s.encode(TEXT)
    cap = capture(s.model, [("resid", 0), ("attn", 1), ("mlp", 1)], lambda: s.model(**enc))
    x = (cap[("resid", 0)] + cap[("attn", 1)])[0]
    acts = tc.encode(x)
    r = feature_activations(s, TEXT, tc, k=5)
    np.testing.assert_allclose(r.values, acts.topk(5, dim=-1).values.numpy(), atol=1e-5)
    err = (acts @ tc.weights.W_dec + tc.weights.b_dec - cap[("mlp", 1)][0]).norm(dim=-1)
    np.testing.assert_allclose(r.error_norm, err.numpy(), atol=1e-4)
    with torch.no_grad():  # spliced in (its input read as resid(0) + attn(1)) with no edit: the model unchanged
        base = s.model(**enc).logits
        with edit_features(s, tc):
            same = s.model(**enc).logits
    torch.testing.assert_close(same, base, atol=1e-5, rtol=0)


def test_feature_attribution_is_activation_times_hand_gradient(tmp_path, minilm_tokenizer):
    from llm_widgets.dictionaries.attribution import feature_attribution

    s = session("llama", minilm_tokenizer)
    t = write_saelens(tmp_path / "a", "standard", 64, 120, "blocks.0.hook_resid_post")
    d = load_dictionary(tmp_path / "a", session=s)
    enc, _, _ = s.encode(TEXT)
    target = 2000
    grabbed = {}

    def keep(x):
        x.retain_grad()
        grabbed["x"] = x
    with hooks(s.model, [("resid", 0, keep)]):
        s.model(**enc).logits[0, -1, target].backward()
    x, g = grabbed["x"][0].detach(), grabbed["x"].grad[0]
    attr = hand_encode(t, x, "standard") * (g @ t["W_dec"].T)
    r = feature_attribution(s, TEXT, d, target, k=5)
    want = attr.gather(1, attr.abs().topk(5, dim=-1).indices)
    np.testing.assert_allclose(r.values, want.numpy(), atol=1e-5)
    np.testing.assert_allclose(r.total, attr.sum(-1).numpy(), atol=1e-5)
    assert float(np.abs(r.values).max()) > 1e-3


def test_cross_layer_transcoder_folder(tmp_path, minilm_tokenizer):
    """circuit-tracer's CLT files: layer i's features decode into layers i..L-1; reconstruction of
    layer 1 = b_dec_1 + a_0 @ W_dec_0[:, 1] + a_1 @ W_dec_1[:, 0]; encoders read resid_mid."""
    s = session("gpt2", minilm_tokenizer)
    F, d, L = 30, 64, 2
    W = {}
    for i in range(L):
        W[i] = {f"W_enc_{i}": rand(F, d, seed=i), f"b_enc_{i}": rand(F, seed=5 + i, scale=0.1),
                f"b_dec_{i}": rand(d, seed=9 + i), f"threshold_{i}": rand(F, seed=20 + i).abs() * 0.2}
        save_file(W[i], str(tmp_path / f"W_enc_{i}.safetensors"))
        W[i][f"W_dec_{i}"] = rand(F, L - i, d, seed=30 + i)
        save_file({f"W_dec_{i}": W[i][f"W_dec_{i}"]}, str(tmp_path / f"W_dec_{i}.safetensors"))
    clt = load_dictionary(tmp_path, session=s)
    assert clt.n_layers == 2 and clt.layers[1].site.site == "resid_mid" and clt.layers[1].out_site.site == "mlp"
    xs = [rand(5, d, seed=40 + i, scale=1.0) for i in range(L)]
    acts = clt.encode(xs)
    for i in range(L):
        pre = xs[i] @ W[i][f"W_enc_{i}"].T + W[i][f"b_enc_{i}"]
        torch.testing.assert_close(acts[i], pre * (pre > W[i][f"threshold_{i}"]), atol=1e-6, rtol=0)
    want = W[1]["b_dec_1"] + acts[0] @ W[0]["W_dec_0"][:, 1] + acts[1] @ W[1]["W_dec_1"][:, 0]
    torch.testing.assert_close(clt.reconstruct(acts, 1), want, atol=1e-5, rtol=0)


def test_edit_at_positions_only_and_bad_positions_refused(tmp_path, minilm_tokenizer):
    s = session("gpt2", minilm_tokenizer)
    enc, _, _ = s.encode(TEXT)
    write_saelens(tmp_path / "p", "standard", 64, 50, "blocks.0.hook_resid_post")
    d = load_dictionary(tmp_path / "p", session=s)
    base = capture(s.model, [("resid", 0)], lambda: s.model(**enc))[("resid", 0)][0]
    with edit_features(s, d, add={3: 2.0}, positions=[1, -1]):
        got = capture(s.model, [("resid", 0)], lambda: s.model(**enc))[("resid", 0)][0]
    want = base.clone()
    want[[1, -1]] += 2.0 * d.weights.W_dec[3]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with pytest.raises(LLMWidgetsError, match="outside"):
        with edit_features(s, d, add={3: 2.0}, positions=[99]):
            s.model(**enc)
