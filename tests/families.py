"""Tiny random models of many Hugging Face families, built offline from their config classes.

Each: 2 layers, hidden 64, 4 heads (2 kv heads where the family has grouped-query attention),
MiniLM's WordPiece tokenizer (vocabulary 30522), seeded weights with a large initializer range so
that effects are well above float noise. `python tests/families.py` prints the README's
supported-families table from the same matrix.
"""
from __future__ import annotations

import sys

import torch

FAMILIES = {
    # family: (auto class, extra config)
    "gpt2": ("causal", {}),
    "llama": ("causal", {}),
    "llama-head_dim": ("causal", {"head_dim": 32}),  # head_dim != hidden / heads (Gemma, Qwen3 style)
    "gpt_neox": ("causal", {}),
    "mistral": ("causal", {}),
    "qwen2": ("causal", {}),
    "qwen3": ("causal", {"head_dim": 32}),
    "gemma": ("causal", {"head_dim": 16}),
    "gemma2": ("causal", {"head_dim": 16, "final_logit_softcapping": 3.0}),
    "gemma3_text": ("causal", {"head_dim": 16, "final_logit_softcapping": 3.0}),
    "phi": ("causal", {}),
    "phi3": ("causal", {}),
    "opt": ("causal", {"word_embed_proj_dim": 64, "ffn_dim": 128}),
    "bloom": ("causal", {}),
    "gptj": ("causal", {"rotary_dim": 8}),
    "falcon": ("causal", {}),
    "olmo": ("causal", {}),
    "olmo2": ("causal", {}),
    "stablelm": ("causal", {}),
    "mixtral": ("causal", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    "qwen2_moe": ("causal", {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                             "shared_expert_intermediate_size": 64}),
    "bert": ("classifier", {}),
    "roberta": ("classifier", {}),
    "distilbert": ("classifier", {}),
    "electra": ("classifier", {}),
    "deberta-v2": ("classifier", {}),
    "xlm-roberta": ("classifier", {}),
    "albert": ("classifier", {"embedding_size": 32}),
    "bert-mlm": ("masked", {}),
    "t5": ("seq2seq", {}),
    "bart": ("seq2seq", {}),
}

COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=128, max_position_embeddings=128, pad_token_id=0, bos_token_id=101,
              eos_token_id=102, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, dropout=0.0,
              attention_dropout=0.0, initializer_range=0.2, tie_word_embeddings=False,
              # encoder-decoder / other spellings
              d_model=64, num_layers=2, num_heads=4, d_ff=128, d_kv=16, encoder_layers=2, decoder_layers=2,
              encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
              num_decoder_layers=2, dim=64, pooler_hidden_size=64, n_layers=2, n_heads=4, hidden_dim=128, decoder_start_token_id=0)


def build(family: str, vocab_size: int = 30522, seed: int = 0, positions: int = 128):
    """A tiny random model of `family` (eager attention), in eval mode, for up to `positions` tokens."""
    import transformers as tf

    task, extra = FAMILIES[family]
    base = family.split("-head_dim")[0].replace("-mlm", "")
    cfg = tf.AutoConfig.for_model(base)
    for k, v in {**COMMON, "vocab_size": vocab_size, "max_position_embeddings": positions, **extra}.items():
        if k in ("num_key_value_heads",) and not hasattr(cfg, k):
            continue
        try:
            setattr(cfg, k, v)
        except (AttributeError, TypeError):
            pass
    if "head_dim" not in extra and isinstance(getattr(cfg, "head_dim", None), int):
        try:
            cfg.head_dim = 16  # hidden / heads, as the family's default would be at this size
        except (AttributeError, TypeError):
            pass
    if base == "bloom":
        cfg.n_head = 4
    cls = {"causal": tf.AutoModelForCausalLM, "classifier": tf.AutoModelForSequenceClassification,
           "masked": tf.AutoModelForMaskedLM, "seq2seq": tf.AutoModelForSeq2SeqLM}[task]
    if task == "classifier":
        cfg.num_labels = 2
        cfg.id2label, cfg.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
    torch.manual_seed(seed)
    model = cls.from_config(cfg, attn_implementation="eager")
    _widen(model)
    return model.eval()


def _widen(model):
    """Re-draw weights with std 0.2 so that every effect is far above float noise (some families
    ignore initializer_range); norms keep their weights."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
            elif "bias" in name:
                p.normal_(0.0, 0.05)


def table() -> str:
    """Markdown rows: family, model class, layout found by discovery, views that apply."""
    from transformers import AutoTokenizer

    import llm_widgets as lw
    from llm_widgets.session import default_model_path

    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    rows = ["| family | model class | blocks | attention out | MLP | kind | logit lens |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for fam in FAMILIES:
        s = lw.load((build(fam), tok), device="cpu")
        ad = s.adapter
        if ad.why_not("interventions"):
            rows.append(f"| {fam} | {type(s.model).__name__} | - | - | - | {ad.kind} | "
                        f"interventions do not apply yet |")
            continue
        mlp = "MoE block" if ad.moe else (ad.mlp_out[0].path.split(".", len(ad.blocks[0].path.split(".")))[-1]
                                          if ad.mlp_out[0] else "none")
        rows.append(f"| {fam} | {type(s.model).__name__} | `{ad.blocks[0].path.rsplit('.', 1)[0]}`"
                    f"{' (shared)' if ad.shared else ''} | "
                    f"`{ad.attn_out[0].path[len(ad.blocks[0].path) + 1:]}` | `{mlp}` | {ad.kind}"
                    f"{', parallel' if ad.parallel else ''} | {'yes' if not ad.why_not('logit_lens') else 'no head'} |")
    return "\n".join(rows)


def observed_parallel(model, mlp: torch.nn.Module, attn_out: torch.nn.Module, input_ids) -> bool:
    """Parallel blocks, observed on the model rather than known from a family list: the MLP reads
    the same input whether or not the attention's output in its block is doubled."""
    seen = []

    def grab(module, args, kwargs):
        x = args[0] if args else next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
        seen.append(x.detach().clone())

    h1 = mlp.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
            h2 = attn_out.register_forward_hook(lambda m, a, out: out * 2)
            try:
                model(input_ids=input_ids)
            finally:
                h2.remove()
    finally:
        h1.remove()
    return torch.equal(seen[0], seen[1])


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
