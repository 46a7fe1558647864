"""Activation patching sweep: ours against the tools people would pick instead, in one run.

Full layer x position residual-stream sweep (our site "resid" at layer l = the output of block l)
on a small GPT-2 built from a config (4 layers, d=128, random weights, seeded, eager attention, as
TransformerLens forces it), same token ids for everyone, T = 32 and 128 tokens, metric: the
normalised logit difference (m - m_corrupted) / (m_clean - m_corrupted) of answers ("A", "B") at
the last position, each tool normalising with its own clean and corrupted runs.

Peers, each on its own copy of the same weights:
- ours, batched (`patching(..., batch_size=64)`: one layer per forward, the layers below run once)
  and ours one forward per patch (`batch_size=1`);
- TransformerLens 4.3 `TransformerBridge` + `patching.generic_activation_patch` with
  `layer_pos_patch_setter` at `resid_post` (what `get_act_patch_resid_pre` does one hook earlier:
  its resid_pre at layer l is our block output at l-1, so resid_post is the same grid as ours);
- nnsight 0.8: (a) the natural form, one `trace` per patch; (b) many `invoke`s in one trace
  (`logits_to_keep=1`), chunks of --batch; (c) one invoke over a batch of --batch copies of the
  corrupted ids, every copy patched at its own position by one indexed assignment; (d) as (c) but
  starting from one copy and widening to the batch at the patched layer (our algorithm, written in
  nnsight). Its best batched form is the one compared in the summary.

Prints times, ratios (peer / ours) and the max |difference| of the normalised grids (and of the
raw metric); appends the comparisons to bench/out/results.jsonl.

    python bench/patching.py [--lengths 32 128] [--layers 4] [--batch 64] [--repeat 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens' patching loop draws a progress bar per sweep
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, machine_line, record, timed  # noqa: E402  (bench/common.py)

ANSWERS = ("A", "B")


def inputs(T: int):
    """clean / corrupted texts of exactly T tokens (<bos> + T-1 letters) that differ at T // 2."""
    from llm_widgets.teaching.induction import VOCAB

    g = np.random.default_rng(0)
    words = list(g.choice(VOCAB, size=T - 1))
    clean = " ".join(words)
    words[T // 2] = "A" if words[T // 2] != "A" else "B"
    return clean, " ".join(words)


# -- TransformerLens ------------------------------------------------------------------------------

def tl_sweep(bridge, ids_c, ids_x, a: int, b: int):
    from transformer_lens import patching as tlp

    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids_c, names_filter=lambda n: n.endswith("hook_resid_post"))
        lc, lx = bridge(ids_c)[0, -1], bridge(ids_x)[0, -1]
        mc, mx = float(lc[a] - lc[b]), float(lx[a] - lx[b])

        def metric(logits):
            return logits[0, -1, a] - logits[0, -1, b]

        raw = tlp.generic_activation_patch(bridge, ids_x, cache, metric, patch_setter=tlp.layer_pos_patch_setter,
                                           activation_name="resid_post", index_axis_names=("layer", "pos"))
    raw = raw.double().numpy()
    return (raw - mx) / (mc - mx), raw


# -- nnsight --------------------------------------------------------------------------------------

class NNsightPeer:
    def __init__(self, lm, ids_c, ids_x, a: int, b: int, n_layers: int):
        import nnsight

        self.lm, self.ids_x, self.a, self.b, self.L = lm, ids_x, a, b, n_layers
        self.T = ids_x.shape[1]
        torch.set_grad_enabled(False)
        with lm.trace(ids_c):
            hs = nnsight.save([])
            for l in range(n_layers):
                hs.append(lm.transformer.h[l].output)
            lc = lm.lm_head.output[0, -1].save()
        with lm.trace(ids_x):
            lx = lm.lm_head.output[0, -1].save()
        torch.set_grad_enabled(True)
        self.hs = hs
        self.mc, self.mx = float(lc[a] - lc[b]), float(lx[a] - lx[b])

    def _norm(self, raw):
        raw = np.asarray(raw, np.float64).reshape(self.L, self.T)
        return (raw - self.mx) / (self.mc - self.mx), raw

    def natural(self):
        """One trace per patch: the form of nnsight's activation-patching tutorial."""
        lm, hs, a, b = self.lm, self.hs, self.a, self.b
        out = np.zeros((self.L, self.T))
        with torch.no_grad():
            for l in range(self.L):
                for p in range(self.T):
                    with lm.trace(self.ids_x):
                        lm.transformer.h[l].output[:, p] = hs[l][:, p]
                        lg = lm.lm_head.output[0, -1]
                        v = (lg[a] - lg[b]).save()
                    out[l, p] = float(v)
        return self._norm(out)

    def invokes(self, chunk: int):
        """Many invokes (one per patch) in one trace, `chunk` per trace, logits at the last position only."""
        import nnsight

        lm, hs, a, b = self.lm, self.hs, self.a, self.b
        jobs = [(l, p) for l in range(self.L) for p in range(self.T)]
        out = np.zeros(len(jobs))
        with torch.no_grad():
            for c in range(0, len(jobs), chunk):
                with lm.trace(logits_to_keep=1) as tracer:
                    vals = nnsight.save([])
                    for (l, p) in jobs[c:c + chunk]:
                        with tracer.invoke(self.ids_x):
                            lm.transformer.h[l].output[:, p] = hs[l][:, p]
                            lg = lm.lm_head.output[0, -1]
                            vals.append(lg[a] - lg[b])
                out[c:c + len(vals)] = [float(v) for v in vals]
        return self._norm(out)

    def vectorized(self, chunk: int, widen: bool = False):
        """One invoke over B copies of the corrupted ids; copy i patched at position ps[i] by one
        indexed assignment. widen: start from one copy and widen to B at the patched layer."""
        lm, hs, a, b, T = self.lm, self.hs, self.a, self.b, self.T
        out = np.zeros(self.L * T)
        with torch.no_grad():
            for l in range(self.L):
                for c in range(0, T, chunk):
                    ps = torch.arange(c, min(T, c + chunk))
                    B = len(ps)
                    rows = torch.arange(B)
                    src = hs[l][0, ps]
                    ids = self.ids_x if widen else self.ids_x.expand(B, -1)
                    with lm.trace(ids, logits_to_keep=1):
                        if widen:
                            h = lm.transformer.h[l].output.expand(B, -1, -1).clone()
                            h[rows, ps] = src
                            lm.transformer.h[l].output = h
                        else:
                            lm.transformer.h[l].output[rows, ps] = src
                        lg = lm.lm_head.output[:, -1]
                        v = (lg[:, a] - lg[:, b]).save()
                    out[l * T + c:l * T + c + B] = v.double().numpy()
        return self._norm(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the fast variants (median)")
    ap.add_argument("--slow-repeat", type=int, default=1, help="runs of the one-forward-per-patch variants")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads; 1 (default) on a shared 2-core machine: with 2, another process on "
                         "one core stalls every op (the per-patch loops ran 10-40x slower under load)")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/out/results.jsonl")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import importlib.metadata as md

    import nnsight
    from nnsight import TransformersModel
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    import llm_widgets as lw
    from llm_widgets.compute.patching import encode_pair, patching
    from llm_widgets.teaching.induction import letter_tokenizer

    hf_logging.set_verbosity_error()
    tok = letter_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=max(256, max(args.lengths)), n_embd=128, n_layer=args.layers,
                     n_head=4, bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    model = GPT2LMHeadModel(cfg).eval()
    tmp = Path(tempfile.mkdtemp())
    model.save_pretrained(tmp)  # TransformerLens boots from a checkpoint directory (same weights)
    tok.save_pretrained(tmp)
    s = lw.load((model, tok), device="cpu")
    bridge = TransformerBridge.boot_transformers(str(tmp), hf_model=copy.deepcopy(model),
                                                 tokenizer=AutoTokenizer.from_pretrained(tmp), device="cpu")
    bridge.eval()
    lm = TransformersModel(copy.deepcopy(model), tokenizer=tok, task="text-generation")
    a, b = (int(tok.convert_tokens_to_ids(x)) for x in ANSWERS)
    v_tl, v_nn = md.version("transformer-lens"), nnsight.__version__
    print(f"GPT-2 from config: {args.layers} layers, d=128, 4 heads, eager attention, random weights (seed 0); "
          f"{machine_line()}; {args.threads} threads")
    print(f"TransformerLens {v_tl}, nnsight {v_nn}; medians of {args.repeat} (fast) / {args.slow_repeat} (per-patch loops)")

    for T in args.lengths:
        clean, corrupted = inputs(T)
        ec, ex = encode_pair(s, clean, corrupted)
        ids_c, ids_x = ec["input_ids"], ex["input_ids"]
        assert ids_x.shape[1] == T
        kw = dict(sites=("resid",), per_head=False, answers=ANSWERS, metric="logit_diff")
        nn = NNsightPeer(lm, ids_c, ids_x, a, b, args.layers)
        fast = {"ours": lambda: patching(s, clean, corrupted, batch_size=args.batch, **kw),
                f"nnsight, {args.batch} invokes per trace": lambda: nn.invokes(args.batch),
                f"nnsight, one invoke x {args.batch} copies, indexed patch": lambda: nn.vectorized(args.batch),
                f"nnsight, one invoke widened to {args.batch} copies at the patched layer":
                    lambda: nn.vectorized(args.batch, widen=True)}
        for fn in fast.values():
            fn()  # warm-up
        res = interleaved(fast, args.repeat)  # in turn: the load on a shared machine varies
        ours, t_ours = res.pop("ours")
        ref, ref_raw = ours.scores[0].astype(np.float64), ours.raw[0].astype(np.float64)

        peers = []  # (name, key, seconds, grid, raw)
        loop, t_loop = timed(lambda: patching(s, clean, corrupted, batch_size=1, **kw), args.slow_repeat)
        peers.append(("llm_widgets, one forward per patch (batch_size=1)", "ours-loop", t_loop,
                      loop.scores[0].astype(np.float64), loop.raw[0].astype(np.float64)))
        tl_sweep(bridge, ids_c[:, :8], ids_x[:, :8], a, b)  # warm-up (hooks, caches) on a short prefix
        (g, raw), t = timed(lambda: tl_sweep(bridge, ids_c, ids_x, a, b), args.slow_repeat)
        peers.append(("TransformerLens TransformerBridge, generic_activation_patch (resid_post)", "tl", t, g, raw))
        (g, raw), t = timed(nn.natural, args.slow_repeat)
        peers.append(("nnsight, one trace per patch", "nn-natural", t, g, raw))
        batched = []
        for name, ((g, raw), t) in res.items():
            peers.append((name, "nn-batched", t, g, raw))
            batched.append(peers[-1])

        n = ours.scores[0].size
        print(f"\nT={T}: {n} patched runs (layer x position); clean {ours.clean_metric:.4f}, corrupted "
              f"{ours.corrupted_metric:.4f} ({ours.metric})")
        print(f"{'':74}{'seconds':>9}{'peer/ours':>11}{'max |d| norm':>14}{'max |d| raw':>13}")
        print(f"{'llm_widgets, batched (batch_size=' + str(args.batch) + '), timed in turn with nnsight':74}{t_ours:9.3f}{'1.0x':>11}{'':>14}{'':>13}")
        for name, _, t, g, raw in peers:
            print(f"{name:74}{t:9.3f}{t / t_ours:10.1f}x{np.abs(g - ref).max():14.1e}{np.abs(raw - ref_raw).max():13.1e}")
        best = min(batched, key=lambda p: p[2])
        print(f"best batched nnsight: {best[0]} ({best[2] / t_ours:.1f}x ours)")

        if not args.no_record:
            bench = f"patching T={T}"
            agree = lambda g, raw: f"max |d| {np.abs(g - ref).max():.1e} (raw {np.abs(raw - ref_raw).max():.1e})"  # noqa: E731
            for name, key, t, g, raw in peers:
                is_best = key == "nn-batched" and name == best[0]
                if key == "nn-batched" and not (is_best or "invokes" in name):
                    continue
                target = 10.0 if key == "tl" else 2.0 if is_best else None
                label = "nnsight best batched: " + name.removeprefix("nnsight, ") if is_best else name
                record(bench, label, t_ours, t, agree(g, raw), target=target)


if __name__ == "__main__":
    main()
