"""Big models on a GPU (issue 13): a Llama-3-8B-shaped model in bfloat16, with peak GPU memory.

The model is built from its config only (hidden 4096, 32 layers, 32 heads, 8 key/value heads,
intermediate 14336, vocabulary 128256), randomly initialised directly on the GPU (a torch.device
context: no download, never on the CPU first), with MiniLM's WordPiece tokenizer (offline; its ids
are all < 30522, inside the vocabulary). Reported, each with peak GPU memory
(torch.cuda.max_memory_allocated, reset before each; "+" is above what was allocated before, i.e.
above the weights):

- trace (one forward) and AttentionView's first frame after it, at T = 2048 and 8192 (attention on
  demand from captured queries and keys: no [L, H, T, T]); then the grid thumbnails and head
  statistics the view computes in the background;
- greedy generation of 8 tokens after a T = 1024 prompt, then integrated gradients over those 8
  targets (50 Gauss-Legendre steps, internal batch size from the memory budget), and the same with
  captum's LLMGradientAttribution(LayerIntegratedGradients) on the embedding layer (one IG per
  target; its internal_batch_size from --captum-ibs; an out-of-memory there is reported);
- a full patching sweep (every layer x position of resid/attn/mlp and every head) at T = 32, batch
  size from the memory budget.

Prints a table and appends JSON lines to bench/out/results.jsonl (bench/common.py's record(),
rendered by bench/summary.py).

    python bench/big_model.py                 # GPU only (minutes; ~16 GB of weights)
    python bench/big_model.py --tiny          # a small Llama-shaped config on the CPU (< 1 min): checks
                                              # that the script works; records nothing unless --record
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import machine_line, text_with_tokens  # noqa: E402

LLAMA3_8B = dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                 intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                 rms_norm_eps=1e-5, tie_word_embeddings=False)
TINY = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=30522, max_position_embeddings=4096, tie_word_embeddings=False)
TINY_ARGS = dict(attention_t=[256, 1030], ig_t=64, generate=2, steps=16, patch_t=12)


def build(tiny: bool, device: torch.device, dtype: torch.dtype):
    """(session, tokenizer, config, seconds to build): random weights made on `device` in `dtype`."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    import llm_widgets as lw
    from llm_widgets.loading import default_model_path

    tok = AutoTokenizer.from_pretrained(default_model_path())
    shape = TINY if tiny else LLAMA3_8B
    tok.model_max_length = shape["max_position_embeddings"]
    cfg = LlamaConfig(**shape, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                      pad_token_id=tok.pad_token_id, attn_implementation="eager")
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):  # made where it runs, in its dtype (rotary frequencies stay float32)
        model = LlamaForCausalLM._from_config(cfg, dtype=dtype).eval()
    sync(device)
    built = time.perf_counter() - t0
    return lw.load((model, tok), device=str(device)), tok, cfg, built


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class Measured:
    """Wall time and peak GPU memory of one call (memory None on the CPU)."""

    def __init__(self, device):
        self.device = torch.device(device)

    def __call__(self, fn):
        cuda = self.device.type == "cuda"
        if cuda:
            sync(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
        t0 = time.perf_counter()
        out = fn()
        sync(self.device)
        seconds = time.perf_counter() - t0
        peak = extra = None
        if cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**30
            extra = peak - before / 2**30
        return out, dict(seconds=seconds, peak_gb=peak, extra_gb=extra)


def mem(m: dict) -> str:
    return "—" if m.get("peak_gb") is None else f"{m['peak_gb']:.1f} GB (+{m['extra_gb']:.1f})"


def rel_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def corrupt(tok, text: str) -> str:
    """The same text with its first word changed for another one-piece word (same token count)."""
    words = text.split()
    words[0] = "dog" if words[0] != "dog" else "cat"
    out = " ".join(words)
    assert len(tok(out)["input_ids"]) == len(tok(text)["input_ids"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="small config on the CPU: check that the script runs")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--attention-t", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--ig-t", type=int, default=1024)
    ap.add_argument("--generate", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--patch-t", type=int, default=32)
    ap.add_argument("--captum-ibs", type=int, default=10, help="captum's internal_batch_size (0: all steps at once)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["attention", "summaries", "ig", "captum", "patching"])
    ap.add_argument("--record", action="store_true", help="record with --tiny too")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--results", type=Path, default=common.RESULTS, help="the JSON lines file to append to")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.tiny:
        for k, v in TINY_ARGS.items():
            if getattr(args, k) == ap.get_default(k):
                setattr(args, k, v)
        args.dtype = "float32" if args.dtype == ap.get_default("dtype") else args.dtype
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/big_model.py needs a CUDA GPU (a Llama-3-8B-shaped model); run it with --tiny on the CPU.")
    if device.type == "cpu":
        torch.set_num_threads(2)
    common.RESULTS = args.results
    common.OUT = args.results.parent
    recording = not args.no_record and (args.record or not args.tiny)

    import llm_widgets as lw
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.compute.attribution.objective import greedy_generate
    from llm_widgets.compute.patching import patching
    from llm_widgets.widgets.attention import SUMMARISE_NOW

    dtype = getattr(torch, args.dtype)
    s, tok, cfg, t_build = build(args.tiny, device, dtype)
    measure = Measured(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else machine_line()
    weights = sum(p.numel() for p in s.model.parameters())
    label = (f"{'tiny ' if args.tiny else ''}Llama-3-8B-shaped{' (tiny config)' if args.tiny else ''}, "
             f"{args.dtype}, {device.type}")
    print(f"{label}: {cfg.num_hidden_layers} layers, d={cfg.hidden_size}, {cfg.num_attention_heads} heads "
          f"({cfg.num_key_value_heads} kv), vocab {cfg.vocab_size}; {weights / 1e6:,.1f} M parameters built on "
          f"{device} in {t_build:.1f} s; {gpu}")
    if device.type == "cuda":
        print(f"weights: {torch.cuda.memory_allocated(device) / 2**30:.1f} GB allocated; "
              f"free {torch.cuda.mem_get_info(device)[0] / 2**30:.1f} GB")
    rows = []  # (what, seconds, memory, note)
    bench = f"big model: {label}"

    def rec(what, m, peer=None, peer_s=None, agreement=None, note=""):
        """One JSON line: ours = seconds; the peer column = captum's seconds where it ran."""
        if recording:
            common.record(bench, peer or what, m["seconds"], peer_s, agreement or f"peak GPU memory {mem(m)}",
                          note=note if peer is None else f"{what}; {note}")

    if "attention" not in args.skip:
        for T in args.attention_t:
            text = text_with_tokens(tok, T)
            tr, m_tr = measure(lambda: s.trace(text))
            assert tr.n_tokens == T
            rows.append((f"trace T={T}", m_tr["seconds"], mem(m_tr), "one forward; attention on demand" if
                         tr.attentions is None else "one forward, eager attention"))
            rec(f"trace T={T}", m_tr)
            v, m_v = measure(lambda: lw.AttentionView(s, text, background=True))
            later = tr.attentions is None and T > SUMMARISE_NOW  # else computed with the first frame
            rows.append((f"AttentionView first frame T={T}", m_v["seconds"], mem(m_v), "after the trace (cached)"
                         + ("" if later else "; grid and statistics included")))
            rec(f"AttentionView first frame T={T}", m_v)
            if "summaries" in args.skip or not later:
                v.cancel()
                v.wait()
            else:
                _, m_w = measure(lambda: v.wait())
                assert not v.error, v.error
                rows.append((f"  grid + head statistics T={T}", m_w["seconds"], mem(m_w), "in the background"))
                rec(f"AttentionView grid + head statistics T={T}", m_w)
            v.close()  # ipywidgets keeps open widgets (and their captured queries/keys) alive
            del v, tr
            s._cache.clear()

    if "ig" not in args.skip:
        text = text_with_tokens(tok, args.ig_t)
        enc = s.encode(text)[0]
        ids, m_gen = measure(lambda: greedy_generate(s, enc["input_ids"], args.generate))
        rows.append((f"generate {len(ids)} tokens after T={args.ig_t}", m_gen["seconds"], mem(m_gen),
                     "greedy, a full forward per token"))
        ig, m_ig = measure(lambda: attribute(s, text, target=ids, method="ig", steps=args.steps,
                                             max_steps=args.steps, compute_faithfulness=False))
        from llm_widgets.compute.attribution import auto_batch_size

        ibs = auto_batch_size(s, args.ig_t + len(ids) - 1, len(ids), True)
        note = f"{args.steps} steps, internal_batch_size {ibs} (memory budget)"
        rows.append((f"IG, T={args.ig_t}, {len(ids)} targets", m_ig["seconds"], mem(m_ig), note))
        what = f"IG T={args.ig_t}, {len(ids)} generated targets"
        cap = None
        if "captum" not in args.skip:
            from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

            inp = TextTokenInput(text, tok, baselines=tok.pad_token_id,
                                 skip_tokens=[tok.cls_token_id, tok.sep_token_id])
            lig = LLMGradientAttribution(LayerIntegratedGradients(s.model, s.model.get_input_embeddings()), tok)
            try:
                ref, m_cap = measure(lambda: lig.attribute(inp, target=torch.tensor(ids), n_steps=args.steps,
                                                           internal_batch_size=args.captum_ibs or None))
                d = rel_diff(ig.scores[:, ~ig.special_mask], ref.token_attr.float().cpu().numpy())
                cap = (m_cap, f"max rel diff {d:.1e}")
                rows.append(("  captum LLMGradientAttribution(LIG)", m_cap["seconds"], mem(m_cap),
                             f"internal_batch_size {args.captum_ibs or args.steps}; vs ours: max rel diff {d:.1e}"))
            except torch.OutOfMemoryError as e:
                torch.cuda.empty_cache()
                cap = (None, f"captum out of memory at internal_batch_size={args.captum_ibs or args.steps}")
                rows.append(("  captum LLMGradientAttribution(LIG)", float("nan"), "OOM", str(e).splitlines()[0][:80]))
        peer = "captum LLMGradientAttribution(LayerIntegratedGradients)" if cap else None
        if cap is not None and cap[0] is not None:
            note = f"ours: {note}; peak ours {mem(m_ig)}, captum {mem(cap[0])} (internal_batch_size " \
                   f"{args.captum_ibs or args.steps})"
        rec(what, m_ig, peer, cap[0]["seconds"] if cap and cap[0] else None, cap[1] if cap else None, note)
        if recording and cap and cap[0] and cap[0]["peak_gb"] is not None:
            common.record(bench, f"{what}: peak GPU memory above the weights, captum LayerIntegratedGradients",
                          m_ig["extra_gb"] * 1024, cap[0]["extra_gb"] * 1024, cap[1], unit="MB")
        del ig
        s._cache.clear()

    if "patching" not in args.skip:
        clean = text_with_tokens(tok, args.patch_t)
        corrupted = corrupt(tok, clean)
        top = int(np.argmax(s.trace(clean).logits[-1]))
        r, m_p = measure(lambda: patching(s, clean, corrupted, metric="logit", answers=[top]))
        from llm_widgets.compute.budget import batch_size_for

        n_runs = r.scores.size + r.head_scores.size
        note = f"{n_runs} patched runs, batch_size {batch_size_for(s, args.patch_t)} (memory budget)"
        rows.append((f"patching sweep T={args.patch_t}", m_p["seconds"], mem(m_p), note))
        rec(f"patching sweep T={args.patch_t} (resid/attn/mlp x layer x position + every head)", m_p, note=note)

    print(f"\n| {'what':44} | {'seconds':>8} | {'peak GPU memory (+ above before)':>32} | note |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 34}|------|")
    for what, sec, m, note in rows:
        print(f"| {what:44} | {sec:8.2f} | {m:>32} | {note} |")
    if recording:
        print(f"\nappended to {args.results}")


if __name__ == "__main__":
    main()
