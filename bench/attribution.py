"""attribute() against captum, inseq and shap on the same models and inputs, in one run.

Model: a small GPT-2 built from a config (4 layers, d=128, random weights, seeded), with
all-MiniLM-L6-v2's tokenizer (offline); prompts are [CLS] words [SEP], special tokens fixed.
Prints, with ratios (peer / ours):
- generation IG: ours (one teacher-forced forward per step serves all targets; batched backward)
  vs captum LLMGradientAttribution + LayerIntegratedGradients (one IG per target): max relative
  difference of the [targets x prompt] matrix and wall time (target: >= 3x faster, <= 1e-5 apart);
- generation IG vs inseq 0.7.1 (`integrated_gradients`, log-prob of each generated token, same
  steps), in its own venv (bench/.venvs/inseq: inseq pins typeguard 2, transformer-lens needs 4)
  over the same saved weights and the same token ids, baselines aligned to ours (see
  bench/peers/inseq_ig.py) (target: >= 3x faster);
- occlusion: ours (many ablated copies per forward, all targets per forward) vs captum
  LLMAttribution(FeatureAblation) (target: >= 5x faster, <= 1e-4 apart). captum's default cached
  token-by-token decoding disagrees with an exact forward on transformers 5, so it runs with
  use_cached_outputs=False (exact); its cached timing is printed too;
- memory: IG on a T=512 prompt, 2 generated targets: ours (automatic internal_batch_size) vs captum
  LayerIntegratedGradients at each of several internal_batch_size values, each in a fresh process
  (peak RSS above the RSS after loading); captum's fastest batch size is the one compared;
- SHAP on a long input (the keyword classifier, > 12 words, where exact SHAP is out of reach):
  our Shapley-value sampling (all permutations batched, [MASK] as the baseline) vs the shap
  library's Partition explainer with its Text masker ([MASK]) on the same classifier logit, the
  route a shap user takes: time and Pearson r of the token values (different estimators of
  similar games: Owen values over shap's token tree vs sampled Shapley values; r, not equality).
  Exact SHAP against shap's Exact explainer is in bench/attribution_methods.py.

Run: .venv/bin/python bench/attribution.py [--prompt 64] [--targets 8] [--steps 50] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import interleaved, machine_line, record, text_with_tokens, timed  # noqa: E402  (bench/common.py)

SHAP_TEXT = ("the film was long and the story was slow but the music was lovely and the cast did "
             "a good job with a script that was terrible in the middle")


def rel_diff(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(threads: int):
    """(session, model, tokenizer, config): the seeded GPT-2 with MiniLM's tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    import llm_widgets as lw

    torch.set_num_threads(threads)
    tok = lw.load().tokenizer
    tok.model_max_length = 1024  # MiniLM's tokenizer says 512; this GPT-2 takes 1024
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=1024, n_embd=128, n_layer=4, n_head=4,
                     bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                     attn_implementation="eager")
    model = GPT2LMHeadModel(cfg).eval()
    return lw.load((model, tok), device="cpu"), model, tok, cfg


def memory_probe(args):
    """Child process: one IG on a --long prompt, 2 generated targets; prints a JSON line."""
    warnings.filterwarnings("ignore")
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.compute.attribution.objective import greedy_generate

    s, model, tok, _ = build(args.threads)
    text = text_with_tokens(tok, args.long)
    targets = greedy_generate(s, s.encode(text)[0]["input_ids"], 2)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    if args.memory_probe == "ours":
        res = attribute(s, text, target=targets, method="ig", steps=args.steps, max_steps=args.steps,
                        compute_faithfulness=False)
        ok = bool(np.isfinite(res.scores).all())
    else:
        from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

        inp = TextTokenInput(text, tok, baselines=tok.pad_token_id, skip_tokens=[tok.cls_token_id, tok.sep_token_id])
        lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte), tok)
        res = lig.attribute(inp, target=torch.tensor(targets), n_steps=args.steps,
                            internal_batch_size=args.ibs or None)
        ok = bool(torch.isfinite(res.token_attr).all())
    print(json.dumps(dict(seconds=time.perf_counter() - t0, rss_before=rss0, rss_peak=peak_rss_mb(), ok=ok)))


def run_probe(kind: str, args, ibs: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--memory-probe", kind, "--long", str(args.long), "--steps", str(args.steps),
           "--threads", str(args.threads)] + (["--ibs", str(ibs)] if ibs else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        return dict(error=(p.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(lines[-1])


def inseq_peer(s, model, tok, text: str, ig, args) -> dict:
    """Runs bench/peers/inseq_ig.py in bench/.venvs/inseq over the same saved weights."""
    import venvs

    try:
        py = venvs.ensure("inseq")
    except Exception as e:  # no registry: say so, with no numbers
        return {"ok": False, "error": f"could not make bench/.venvs/inseq: {e}"}
    d = Path(tempfile.mkdtemp())
    model.save_pretrained(d)
    tok.save_pretrained(d)
    spec = dict(model_dir=str(d), ids=s.encode(text)[0]["input_ids"][0].tolist(), targets=list(ig.target_ids),
                steps=args.steps, repeat=args.repeat, threads=args.threads, baseline_id=int(tok.pad_token_id),
                internal_batch_size=None)
    (d / "spec.json").write_text(json.dumps(spec))
    p = subprocess.run([str(py), str(HERE / "peers" / "inseq_ig.py"), str(d / "spec.json"), str(d / "out.json")],
                       capture_output=True, text=True, timeout=1800)
    if not (d / "out.json").exists():
        return {"ok": False, "error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]}
    return json.loads((d / "out.json").read_text())


def shap_section(args) -> tuple[float, float, float, int]:
    """(ours s, shap s, pearson r, words): our Shapley sampling vs shap's Partition explainer."""
    import shap

    import llm_widgets as lw
    from llm_widgets.compute.attribution import attribute

    clf = lw.teaching.keyword_classifier()
    tok = clf.tokenizer
    cls = clf.class_labels.index("NEGATIVE")

    def f(texts):
        enc = tok([str(t) for t in texts], return_tensors="pt", padding=True, truncation=True)
        with torch.no_grad():
            return clf.model(**enc).logits[:, cls].float().numpy()

    masker = shap.maskers.Text(tok, mask_token=tok.mask_token)
    explainer = shap.Explainer(f, masker, algorithm="partition", seed=0)
    run_shap = lambda: explainer([SHAP_TEXT], max_evals=args.shap_evals, silent=True)  # noqa: E731
    run_ours = lambda: attribute(clf, SHAP_TEXT, target="NEGATIVE", method="shapley", baseline="mask",  # noqa: E731
                                 n_samples=args.shap_samples, compute_faithfulness=False)
    run_shap(), run_ours()  # warm-up (the first calls cost seconds more, on both sides)
    res = interleaved({"shap": run_shap, "ours": run_ours}, args.repeat)
    (ev, t_shap), (ours, t_ours) = res["shap"], res["ours"]
    theirs = np.asarray(ev.values[0], np.float64)
    mine = ours.scores[0].astype(np.float64)
    assert len(theirs) == len(mine), "shap's text masker split the text into other tokens than the model"
    keep = ~np.asarray(ours.special_mask, bool)
    r = float(np.corrcoef(mine[keep], theirs[keep])[0, 1])
    return t_ours, t_shap, r, len(SHAP_TEXT.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long", type=int, default=512, help="prompt length of the memory check")
    ap.add_argument("--captum-ibs", type=int, nargs="+", default=[0, 25],
                    help="captum internal_batch_size values of the memory check (0 = all steps at once)")
    ap.add_argument("--shap-evals", type=int, default=500, help="shap Partition max_evals (its default for text)")
    ap.add_argument("--shap-samples", type=int, default=25, help="our Shapley sampling: permutations")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["captum", "inseq", "occlusion", "memory", "shap"])
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--memory-probe", choices=["ours", "captum"], help=argparse.SUPPRESS)
    ap.add_argument("--ibs", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        return memory_probe(args)
    warnings.filterwarnings("ignore")
    from captum.attr import (FeatureAblation, LayerIntegratedGradients, LLMAttribution,
                             LLMGradientAttribution, TextTokenInput)

    from llm_widgets.compute.attribution import attribute

    rec = (lambda *a, **k: None) if args.no_record else record
    s, model, tok, cfg = build(args.threads)
    text = text_with_tokens(tok, args.prompt)
    k = args.targets
    print(f"GPT-2 from config: {cfg.n_layer} layers, d={cfg.n_embd}, vocab {cfg.vocab_size}; "
          f"prompt T={args.prompt}, {k} generated targets, {args.steps} IG steps; {machine_line()}; "
          f"{args.threads} threads, median of {args.repeat}")
    rows = []

    run_ig = lambda: attribute(s, text, generate=k, method="ig", steps=args.steps,  # noqa: E731
                               max_steps=args.steps, compute_faithfulness=False)
    ig = run_ig()  # warm-up; its generated targets serve every peer
    targets = torch.tensor(ig.target_ids)
    inp = TextTokenInput(text, tok, baselines=tok.pad_token_id,
                         skip_tokens=[tok.cls_token_id, tok.sep_token_id])
    bench = f"attribution IG, T={args.prompt}, {k} generated targets"
    if "captum" not in args.skip:
        lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte), tok)
        res = interleaved({"ours": run_ig, "captum": lambda: lig.attribute(inp, target=targets, n_steps=args.steps)},
                          args.repeat)  # in turn: the load on a shared machine varies
        (ig, t_ours), (ref, t_cap) = res["ours"], res["captum"]
        d_ig = rel_diff(ig.scores[:, ~ig.special_mask], ref.token_attr.numpy())
        rows.append(("generation IG vs captum", t_ours, t_cap, f"max rel diff {d_ig:.1e}", 3.0, d_ig <= 1e-5))
        rec(bench, "captum LLMGradientAttribution(LayerIntegratedGradients)", t_ours, t_cap,
            f"max rel diff {d_ig:.1e}", target=3.0)
    else:
        ig, t_ours = timed(run_ig, args.repeat)

    if "inseq" not in args.skip:
        res = inseq_peer(s, model, tok, text, ig, args)
        if res.get("ok"):
            theirs = np.asarray(res["scores"], np.float64)
            d_in = rel_diff(ig.scores[:, ~ig.special_mask], theirs[:, ~ig.special_mask])
            rows.append(("generation IG vs inseq", t_ours, res["seconds"], f"max rel diff {d_in:.1e}", 3.0,
                         d_in <= 1e-4))
            print(f"(inseq {res['inseq']} ran in bench/.venvs/inseq with transformers {res['transformers']}, "
                  f"torch {res['torch']}; its runs: {', '.join(f'{t:.2f}' for t in res['times'])} s)")
            rec(bench, f"inseq {res['inseq']} integrated_gradients (own venv)", t_ours, res["seconds"],
                f"max rel diff {d_in:.1e}", target=3.0)
        else:
            print(f"inseq did not run: {res.get('error')}")
            if res.get("traceback"):
                print(res["traceback"])
            rec(bench, "inseq 0.7.1 integrated_gradients (own venv)", t_ours, None, "did not run",
                target=3.0, note=str(res.get("error"))[:300])

    if "occlusion" not in args.skip:
        occ, t_occ = timed(lambda: attribute(s, text, target=ig.target_ids, method="occlusion",
                                             compute_faithfulness=False), args.repeat)
        fa = LLMAttribution(FeatureAblation(model), tok)
        ref_occ, t_cap_occ = timed(lambda: fa.attribute(inp, target=targets, use_cached_outputs=False), args.repeat)
        _, t_cap_cached = timed(lambda: fa.attribute(inp, target=targets), 1)
        d_occ = float(np.abs(occ.scores[:, ~occ.special_mask] - ref_occ.token_attr.numpy()).max())
        rows.append(("occlusion vs captum", t_occ, t_cap_occ, f"max abs diff {d_occ:.1e}", 5.0, d_occ <= 1e-4))
        rec(f"attribution occlusion, T={args.prompt}, {k} targets", "captum LLMAttribution(FeatureAblation), exact",
            t_occ, t_cap_occ, f"max abs diff {d_occ:.1e}", target=5.0,
            note=f"captum with its cached decoding: {t_cap_cached:.3f} s")

    if "shap" not in args.skip:
        t_sh_ours, t_sh, r, words = shap_section(args)
        rows.append((f"SHAP, {words} words vs shap", t_sh_ours, t_sh, f"pearson r {r:.2f}", None, True))
        rec(f"attribution SHAP, keyword classifier, {words} words",
            f"shap Partition explainer, Text masker, max_evals={args.shap_evals}", t_sh_ours, t_sh,
            f"pearson r {r:.2f} (Owen vs sampled Shapley values)",
            note=f"ours: Shapley sampling, {args.shap_samples} permutations, batched")

    print(f"\n{'':28}{'ours s':>9}{'peer s':>10}{'speed-up':>10}{'target':>8}   agreement")
    for name, a, b, agree, want, ok in rows:
        flag = "" if want is None else ("ok" if b / a >= want and ok else "MISSED")
        tgt = "" if want is None else f"{want:.0f}x"
        print(f"{name:28}{a:9.3f}{b:10.3f}{b / a:9.1f}x{tgt:>8}   {agree}  {flag}")
    if "occlusion" not in args.skip:
        print(f"(captum occlusion with its default cached decoding: {t_cap_cached:.3f} s)")

    if "memory" not in args.skip:
        print(f"\nmemory: IG on T={args.long}, 2 generated targets, {args.steps} steps, each in a fresh process "
              "(peak RSS above the RSS after loading the model)")
        ours_m = run_probe("ours", args)
        cap = {ibs: run_probe("captum", args, ibs) for ibs in args.captum_ibs}

        def line(name, m):
            if "error" in m:
                return f"  {name:42} failed: {m['error']}"
            return (f"  {name:42} {m['seconds']:7.1f} s   peak RSS +{m['rss_peak'] - m['rss_before']:6.0f} MB "
                    f"(total {m['rss_peak']:.0f} MB)")

        print(line("ours (automatic internal_batch_size)", ours_m))
        for ibs, m in cap.items():
            print(line(f"captum internal_batch_size={ibs or 'all ' + str(args.steps)}", m))
        ok = {ibs: m for ibs, m in cap.items() if "error" not in m}
        if ok and "error" not in ours_m:
            ibs, best = min(ok.items(), key=lambda kv: kv[1]["seconds"])
            mo, mb = ours_m["rss_peak"] - ours_m["rss_before"], best["rss_peak"] - best["rss_before"]
            print(f"  captum's fastest: internal_batch_size={ibs or args.steps}: ours {best['seconds'] / ours_m['seconds']:.1f}x "
                  f"faster, {mo:.0f} MB vs {mb:.0f} MB extra peak RSS")
            rec(f"attribution IG memory, T={args.long}, 2 targets",
                f"captum LayerIntegratedGradients, internal_batch_size={ibs or args.steps} (its fastest)",
                mo, mb, f"time: ours {ours_m['seconds']:.1f} s, captum {best['seconds']:.1f} s", unit="MB")


if __name__ == "__main__":
    main()
