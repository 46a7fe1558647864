"""inseq peer of bench/attribution.py; runs in bench/.venvs/inseq (inseq 0.7.1 pins typeguard 2,
which transformer-lens in the project's venv cannot share).

    bench/.venvs/inseq/bin/python bench/peers/inseq_ig.py SPEC.json OUT.json

SPEC: {"model_dir", "ids" (prompt token ids), "targets" (generated token ids), "steps", "repeat",
"threads", "baseline_id", "internal_batch_size"}. The model and its tokenizer's vocabulary come from
model_dir (save_pretrained of the same weights). inseq takes texts, so the prompt and the
generation are given as their tokens joined by spaces to a word-level tokenizer over the same
vocabulary (WhitespaceSplit, no added special tokens): every token maps back to its own id, so the
model sees exactly the ids it sees in the main process (checked).

Method: inseq "integrated_gradients" (captum IntegratedGradients on the input embeddings, one
attribution per generated token over prompt + generated prefix), attributed_fn "probability" with
logprob=True (the log-prob of each target, as ours), n_steps = steps, gauss-legendre (captum's
default, as ours). Baselines: inseq puts the UNK embedding at every position but EOS; ours keeps
special tokens and the generated prefix as they are and puts the baseline token (pad) at the
prompt's other tokens. To compare the same integral, encode() is wrapped to return that baseline;
this changes the baseline ids only, nothing of inseq's work.

OUT: {"ok", "seconds" (median), "times", "scores" [k, T] (summed over the embedding), "inseq",
"transformers", "torch"} or {"ok": false, "error"}.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
import warnings


def main(spec_path: str, out_path: str):
    spec = json.load(open(spec_path))
    try:
        out = run(spec)
    except Exception as e:  # the main process prints the reason
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
    json.dump(out, open(out_path, "w"))


def run(spec: dict) -> dict:
    warnings.filterwarnings("ignore")
    import importlib.metadata as md
    import logging

    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    import inseq

    logging.getLogger("inseq").setLevel(logging.ERROR)
    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(int(spec["threads"]))
    d = spec["model_dir"]
    ids, targets = list(spec["ids"]), list(spec["targets"])
    src = AutoTokenizer.from_pretrained(d)
    wl = Tokenizer(models.WordLevel(vocab=src.get_vocab(), unk_token=src.unk_token))
    wl.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=wl, unk_token=src.unk_token, pad_token=src.pad_token,
                                  cls_token=src.cls_token, sep_token=src.sep_token, bos_token=src.cls_token,
                                  eos_token=src.sep_token, mask_token=src.mask_token)
    prompt = " ".join(tok.convert_ids_to_tokens(ids))
    full = " ".join(tok.convert_ids_to_tokens(ids + targets))
    assert tok(full)["input_ids"] == ids + targets, "word-level tokenizer must give back the same ids"
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
    im = inseq.load_model(model, "integrated_gradients", tokenizer=tok)

    special = set(src.all_special_ids)
    n_prompt = len(ids)
    encode = im.encode

    def aligned_encode(texts, *a, **kw):
        batch = encode(texts, *a, **kw)
        if kw.get("return_baseline") and batch.baseline_ids is not None:
            inp = batch.input_ids
            base = torch.full_like(inp, int(spec["baseline_id"]))
            keep = torch.zeros_like(inp, dtype=torch.bool)
            keep[:, n_prompt:] = True
            for t in special:
                keep |= inp == t
            batch.baseline_ids = torch.where(keep, inp, base)
        return batch

    im.encode = aligned_encode
    kwargs = dict(n_steps=int(spec["steps"]), attributed_fn="probability", logprob=True, show_progress=False)
    if spec.get("internal_batch_size"):
        kwargs["internal_batch_size"] = int(spec["internal_batch_size"])
    im.attribute(prompt, full, **kwargs)  # warm-up
    times, res = [], None
    for _ in range(int(spec["repeat"])):
        t0 = time.perf_counter()
        res = im.attribute(prompt, full, **kwargs)
        times.append(time.perf_counter() - t0)
    attr = res.sequence_attributions[0].target_attributions  # [prompt + generated, k, d]
    scores = attr.sum(-1)[:n_prompt].T.float()  # [k, T prompt]
    return {"ok": True, "seconds": statistics.median(times), "times": times, "scores": scores.tolist(),
            "inseq": md.version("inseq"), "transformers": transformers.__version__, "torch": torch.__version__}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
