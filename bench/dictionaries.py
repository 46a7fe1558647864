"""Sparse dictionaries: encoding a corpus against SAELens's own `encode` on the same weights, the
bytes FeatureView sends, and the chunked encoder's peak memory on a very wide dictionary.

    python bench/dictionaries.py [--texts 64] [--tokens 128] [--features 16384] [--wide 262144]

1. Activations: the offline default model's (all-MiniLM-L6-v2, d=384) block-3 residual stream on
   --texts texts of exactly --tokens tokens. A random JumpReLU SAE with --features features is
   written as a SAELens folder; ours reads it (lw.load_dictionary) and SAELens (6.x, in its own
   venv: bench/.venvs/saelens, made here with bench/venvs.py's recipe, since SAELens pins
   TransformerLens < 4) loads the same folder with SAE.load_from_disk. Both encode every token
   (dense [N, F], what SAELens returns) in batches of one text, each in a fresh process timing only
   the encode loop; values must agree (1e-5), times are medians, interleaved. Ours also runs
   top_features (k=32, chunked under the memory budget) in this process.
2. Bytes: FeatureView's per-token arrays at T=512 with --features features (k=32), target < 1 MB.
3. Peak memory: top_features on a --wide-feature dictionary at T=512 in a fresh process: the growth
   of the process's peak resident memory (VmHWM) over the weights already loaded (dense would be
   T x F x 4 bytes).
Where SAELens cannot be installed, it says why and compares against a hand-written copy of its
JumpReLU encode instead.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine_line, record, text_with_tokens  # noqa: E402

PEER = """
import json, sys, time, torch
from sae_lens import SAE
folder, acts, out = sys.argv[1:4]
sae = SAE.load_from_disk(folder, device="cpu")
x = torch.load(acts)
times, vals = [], []
with torch.no_grad():
    for rep in range(int(sys.argv[4])):
        t0 = time.perf_counter()
        res = [sae.encode(x[i]) for i in range(x.shape[0])]
        times.append(time.perf_counter() - t0)
top = torch.stack(res).topk(32, dim=-1)
torch.save({"values": top.values, "indices": top.indices}, out)
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "version": __import__("sae_lens").__version__}))
"""

OURS = """
import json, sys, time, torch
sys.path.insert(0, sys.argv[5])
import llm_widgets as lw
folder, acts, out = sys.argv[1:4]
d = lw.load_dictionary(folder)
x = torch.load(acts)
times = []
with torch.no_grad():
    for rep in range(int(sys.argv[4])):
        t0 = time.perf_counter()
        res = [d.encode(x[i]) for i in range(x.shape[0])]
        times.append(time.perf_counter() - t0)
top = torch.stack(res).topk(32, dim=-1)
torch.save({"values": top.values, "indices": top.indices}, out)
print(json.dumps({"seconds": sorted(times)[len(times) // 2]}))
"""

PEAK = """
import sys, torch
sys.path.insert(0, {root!r})
from llm_widgets.dictionaries.coding import Weights
from llm_widgets.dictionaries.dictionary import Dictionary
torch.manual_seed(0)
d_in, F, T = {d}, {F}, 512
W_enc, W_dec = torch.empty(d_in, F).normal_(0, 0.05), torch.empty(F, d_in).normal_()  # in place: no temporaries
d = Dictionary(Weights(W_enc=W_enc, b_enc=torch.zeros(F), W_dec=W_dec, b_dec=torch.zeros(d_in),
                       activation="jumprelu", threshold=torch.full((F,), 0.5)))
x = torch.randn(T, d_in)
def peak():  # this process's peak resident memory (VmHWM is reset at exec; ru_maxrss keeps the parent's)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
before = peak()
import time; t0 = time.perf_counter()
ids, vals = d.top_features(x, k=32, budget={budget})
s = time.perf_counter() - t0
print(peak() - before, s, d.last_plan)
"""


def saelens_python():
    """The SAELens venv's python (made with bench/venvs.py's recipe), or (None, why)."""
    import venvs

    venvs.PEERS.setdefault("saelens", ["sae-lens"])
    try:
        return venvs.ensure("saelens"), ""
    except Exception as e:  # an install that cannot resolve: say why, compare against the reference
        return None, f"{type(e).__name__}: {e}"


def write_saelens(folder: Path, W_enc, b_enc, W_dec, b_dec, threshold, hook: str) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "threshold": threshold},
              str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({
        "architecture": "jumprelu", "d_in": W_enc.shape[0], "d_sae": W_enc.shape[1], "dtype": "float32",
        "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
        "metadata": {"hook_name": hook, "model_name": "all-MiniLM-L6-v2"}}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--features", type=int, default=16384)
    ap.add_argument("--wide", type=int, default=262144)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import llm_widgets as lw
    from llm_widgets.dictionaries.activations import site_activations
    from llm_widgets.compute.budget import memory_budget

    print(machine_line())
    s = lw.load(device="cpu")
    tok = s.tokenizer
    base = text_with_tokens(tok, a.tokens)
    words = base.split()
    texts = [" ".join(words[i % len(words):] + words[:i % len(words)]) for i in range(a.texts)]
    g = torch.Generator().manual_seed(0)
    d, F = s.adapter.d_model, a.features
    W_dec = torch.randn(F, d, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.T.contiguous() * 0.5
    b_enc, b_dec = torch.randn(F, generator=g) * 0.1, torch.randn(d, generator=g) * 0.1
    threshold = torch.rand(F, generator=g) * 0.5
    tmp = Path(tempfile.mkdtemp())
    write_saelens(tmp / "sae", W_enc, b_enc, W_dec, b_dec, threshold, "blocks.3.hook_resid_post")
    sae = lw.load_dictionary(tmp / "sae", session=s)
    xs = torch.stack([site_activations(s, sae, s.encode(t)[0])[0] for t in texts])  # [N, T, d]
    assert xs.shape[1] == a.tokens
    torch.save(xs, tmp / "acts.pt")
    N = xs.shape[0] * xs.shape[1]

    def ours_top():
        return [sae.top_features(xs[i], 32, budget=memory_budget(s)) for i in range(xs.shape[0])]

    py, why = saelens_python()
    peer_times, info, peer = [], {}, None

    def run_peer():  # one timed pass of SAELens's encode over every text, in its own venv (load not timed)
        nonlocal info, peer, why
        res = subprocess.run([str(py), "-c", PEER, str(tmp / "sae"), str(tmp / "acts.pt"), str(tmp / "peer.pt"), "1"],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(a.threads)})
        if res.returncode != 0:
            why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"
            return False
        info = json.loads(res.stdout.strip().splitlines()[-1])
        peer_times.append(info["seconds"])
        return True

    def run_ours() -> float:  # the same loop as SAELens's, in a fresh process like it (load not timed)
        res = subprocess.run([sys.executable, "-c", OURS, str(tmp / "sae"), str(tmp / "acts.pt"), str(tmp / "ours.pt"),
                              "1", str(ROOT)], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": str(a.threads)})
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        return json.loads(res.stdout.strip().splitlines()[-1])["seconds"]

    times = {"dense": [], "top": []}
    for _ in range(a.repeat):  # interleaved: ours, SAELens, ours (top-k, here), so load changes fall on all alike
        times["dense"].append(run_ours())
        if py is not None and not run_peer():
            py = None
        t0 = time.perf_counter()
        tops = ours_top()
        times["top"].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    ours_vals = torch.load(tmp / "ours.pt")["values"]
    top_vals = torch.stack([v for _, v in tops])
    print(f"ours: encode {N} tokens x {F} features: dense {med['dense']:.3f} s, top_features(k=32) {med['top']:.3f} s; "
          f"top_features vs dense top-32 max |diff| {float((top_vals - ours_vals).abs().max()):.2e}")
    peer_s, agreement, note = None, "", ""
    if py is not None and peer_times:
        peer = torch.load(tmp / "peer.pt")
        diff = float((peer["values"] - ours_vals).abs().max())
        peer_s = sorted(peer_times)[len(peer_times) // 2]
        agreement = f"top-32 values max |diff| {diff:.1e}"
        note = f"SAELens {info['version']} SAE.encode (own venv), {a.texts}x{a.tokens} tokens, {F} features"
        print(f"SAELens {info['version']}: encode {peer_s:.3f} s; {agreement}; time ratio SAELens/ours(dense) "
              f"{peer_s / med['dense']:.2f}x, SAELens/ours(top_features) {peer_s / med['top']:.2f}x "
              f"(medians of {a.repeat}, interleaved)")
    if peer_s is None:  # a hand-written copy of SAELens's JumpReLU encode on the same weights
        print(f"SAELens unavailable ({why}); comparing with a hand-written reference of its encode")
        t0 = time.perf_counter()
        ref = [torch.relu(p := (xs[i] - b_dec) @ W_enc + b_enc) * (p > threshold) for i in range(xs.shape[0])]
        peer_s = time.perf_counter() - t0
        diff = float((torch.stack(ref).topk(32, dim=-1).values - ours_vals).abs().max())
        agreement, note = f"reference top-32 max |diff| {diff:.1e}", f"SAELens not installed: {why}"
    record("dictionaries", "saelens-encode", med["dense"], peer_s, agreement, note=note)

    # 2. bytes sent at T=512
    text512 = text_with_tokens(tok, 512)
    v = lw.FeatureView(s, text512, sae, k=32, background=False)
    sent = v.bytes_sent()
    print(f"FeatureView at T={len(v.tokens)} with {F} features (k=32): {sent} bytes of per-token arrays "
          f"({sent / 2**20:.3f} MB; dense float32 would be {len(v.tokens) * F * 4 / 2**20:.0f} MB)")
    record("dictionaries", "featureview-bytes", float(sent), float(1 << 20), "target < 1 MB", unit="bytes",
           note=f"T=512, {F} features, k=32")

    # 3. peak memory, wide dictionary, fresh process
    budget = 1 << 28
    code = PEAK.format(root=str(ROOT), d=d, F=a.wide, budget=budget)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        print("peak memory run failed:", res.stderr[-500:])
        return
    grew, secs, plan = res.stdout.split(maxsplit=2)
    dense_mb = 512 * a.wide * 4 / 2**20
    print(f"top_features on {a.wide} features x d={d} at T=512: peak resident memory grew {int(grew) / 2**20:.0f} MB "
          f"(budget {budget / 2**20:.0f} MB; a dense [T, F] float32 is {dense_mb:.0f} MB) in {float(secs):.2f} s; "
          f"chunks (tokens, features) = {plan.strip()}")
    record("dictionaries", "peak-memory-262k", int(grew) / 2**20, dense_mb, f"budget {budget / 2**20:.0f} MB",
           unit="MB", note=f"{a.wide} features, T=512, d={d}")


if __name__ == "__main__":
    main()
