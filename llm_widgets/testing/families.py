"""Tiny random models of many Hugging Face families, built offline from their config classes.

Each: 2 layers, hidden 64, 4 heads (2 kv heads where the family has grouped-query attention),
MiniLM's WordPiece tokenizer (vocabulary 30522), seeded weights with a large initializer range so
that effects are well above float noise. `python -m llm_widgets.testing.families` prints the docs'
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

# Mixture-of-experts, hybrid (linear attention / state-space mixers) and other families outside the
# matrix above (tests/test_hybrid_moe.py): built the same way, `build(name)` alike. A name may carry a
# variant after "@" (the model type is what comes before it).
EXPERTS = dict(num_experts=4, num_local_experts=4, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
               shared_expert_intermediate_size=64, n_shared_experts=1, n_group=1, topk_group=1,
               expert_ffn_hidden_size=32)
MLA = dict(num_key_value_heads=4, qk_rope_head_dim=16, qk_nope_head_dim=16, v_head_dim=16, kv_lora_rank=32,
           q_lora_rank=32, head_dim=16)  # multi-head latent attention (DeepSeek): head_dim is the rotary part
# a gated-delta-rule linear attention whose 8 value heads (8 wide) differ from its 4 key heads (16 wide)
LINEAR = dict(layer_types=["linear_attention", "full_attention"], linear_num_key_heads=4, linear_key_head_dim=16,
              linear_num_value_heads=8, linear_value_head_dim=8)
# hybrid and state-space stacks: block 0 mixes tokens without attention (Mamba, short convolution,
# RG-LRU), block 1 with attention where the family has any (derived config fields set explicitly:
# `build` sets attributes after the config is made)
HYBRID = {
    # pure state-space stacks (no attention, no MLP: each block is a norm and a Mamba mixer); their
    # hidden_states omit the embedding output
    "mamba": {"state_size": 16, "expand": 2, "conv_kernel": 4, "time_step_rank": 8},
    "falcon_mamba": {"state_size": 16, "expand": 2, "conv_kernel": 4, "time_step_rank": 8},
    "mamba2": {"state_size": 16, "expand": 2, "conv_kernel": 4, "n_groups": 1, "head_dim": 16, "num_heads": 8,
               "chunk_size": 16},
    "jamba": {"attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2, "expert_layer_offset": 1,
              "num_experts": 4, "num_experts_per_tok": 2, "mamba_d_state": 16, "mamba_d_conv": 4,
              "mamba_expand": 2, "mamba_dt_rank": 8},
    "lfm2": {"layer_types": ["conv", "full_attention"], "conv_L_cache": 3, "block_ff_dim": 128,
             "block_auto_adjust_ff_dim": False},
    "zamba2": {"mamba_d_state": 16, "mamba_headdim": 16, "n_mamba_heads": 8, "mamba_ngroups": 1, "chunk_size": 16,
               "layers_block_type": ["linear_attention", "hybrid"], "hybrid_layer_ids": [1], "num_mem_blocks": 1,
               "use_mem_rope": False, "attention_head_dim": 32, "attention_hidden_size": 128, "kv_channels": 16,
               "num_query_groups": 4, "num_key_value_heads": 4, "adapter_rank": 8,
               "use_shared_attention_adapter": False},
    "recurrent_gemma": {"block_types": ["recurrent", "attention"], "lru_width": 64, "attention_window_size": 16,
                        "head_dim": 16, "num_key_value_heads": 1, "conv1d_width": 4},
    "bamba": {"mamba_d_state": 16, "mamba_n_heads": 8, "mamba_d_head": 16, "mamba_n_groups": 1,
              "mamba_chunk_size": 16, "attn_layer_indices": [1], "mamba_expand": 2},
    "granitemoehybrid": {"layer_types": ["linear_attention", "full_attention"], "mamba_d_state": 16,
                         "mamba_n_heads": 8, "mamba_d_head": 16, "mamba_n_groups": 1, "mamba_chunk_size": 16,
                         "mamba_expand": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
                         "shared_intermediate_size": 64},
    "nemotron_h": {"mamba_num_heads": 8, "mamba_head_dim": 16, "ssm_state_size": 16, "n_groups": 1,
                   "chunk_size": 16, "expand": 2, "layers_block_type": ["linear_attention", "full_attention"]},
    "zamba": {"attention_hidden_size": 128, "attn_layer_period": 2, "attn_layer_offset": 1,
              "layers_block_type": ["linear_attention", "hybrid"], "attention_head_dim": 32, "mamba_dt_rank": 8,
              "n_mamba_heads": 2, "num_key_value_heads": 4},
    "lfm3": {"layer_types": ["conv", "full_attention"], "head_dim": 16},
    "lfm2_moe": {**EXPERTS, "layer_types": ["conv", "full_attention"], "num_dense_layers": 1},
    # linear attention (gated delta rule, Kimi delta attention) in block 0, softmax attention in block 1
    "qwen3_5_text": {**LINEAR, "head_dim": 16},
    "qwen3_5_moe_text": {**EXPERTS, **LINEAR, "head_dim": 16},
    "olmo_hybrid": {"layer_types": ["linear_attention", "full_attention"], "linear_num_key_heads": 4,
                    "linear_num_value_heads": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16},
    "kimi_linear": {**EXPERTS, **MLA, "layer_types": ["linear_attention", "full_attention"],
                    "mlp_layer_types": ["dense", "sparse"], "num_experts_per_token": 2, "linear_head_dim": 16,
                    "linear_num_heads": 4, "qk_head_dim": 32, "q_lora_rank": None, "num_expert_group": 1},
    "bailing_hybrid": {**EXPERTS, **MLA, "layer_types": ["linear_attention", "full_attention"],
                       "mlp_layer_types": ["dense", "sparse"], "num_experts_per_token": 2, "num_expert_group": 1,
                       "linear_head_dim": 16, "linear_num_heads": 4, "qk_head_dim": 32, "q_lora_rank": None,
                       "layer_group_size": 2, "expert_swiglu_limit_list": [0, 0],
                       "share_expert_swiglu_limit_list": [0, 0], "num_nextn_predict_layers": 0},
}
# the hybrids whose feed-forward blocks are (some of them) mixtures of experts
HYBRID_MOE = ("jamba", "granitemoehybrid", "lfm2_moe", "qwen3_5_moe_text", "kimi_linear", "bailing_hybrid")
MORE = {
    # mixtures of experts whose tiny models run (seeds 0-4 must load as decoders)
    **{f: ("causal", EXPERTS) for f in (
        "olmoe", "granitemoe", "granitemoeshared", "phimoe", "gpt_oss", "mixtral", "qwen2_moe", "qwen3_moe",
        "afmoe", "aria_text", "cohere2_moe", "ernie4_5_moe", "exaone_moe", "flex_olmo", "hy_v3", "llama4_text",
        "mellum", "minicpm5_moe", "minimax_m2", "solar_open", "jetmoe")},
    "minimax": ("causal", {**EXPERTS, "layer_types": ["full_attention", "linear_attention"]}),
    "minimax@linear-first": ("causal", {**EXPERTS, "layer_types": ["linear_attention", "full_attention"]}),
    "granitemoe_swa": ("causal", {**EXPERTS, "layer_types": ["full_attention", "sliding_attention"],
                                  "layer_rope_theta": [10000.0, 10000.0], "sliding_window": 16}),
    "zaya": ("causal", {**EXPERTS, "layer_types": ["hybrid", "hybrid"], "head_dim": 16}),
    "dots1": ("causal", {**EXPERTS, "first_k_dense_replace": 1}),  # layer 0 dense, layer 1 experts
    "glm4_moe": ("causal", {**EXPERTS, "first_k_dense_replace": 1}),
    "deepseek_v3": ("causal", {**EXPERTS, **MLA, "first_k_dense_replace": 1}),
    "qwen3_next": ("causal", {**EXPERTS, **LINEAR, "head_dim": 16}),
    "falcon_h1": ("causal", {"mamba_d_ssm": 64, "mamba_n_heads": 8, "mamba_d_head": 8, "mamba_d_state": 16,
                             "mamba_chunk_size": 16, "mamba_n_groups": 1, "head_dim": 16}),
    "xglm": ("causal", {"ffn_dim": 128, "attention_heads": 4}),
    **{f: ("causal", cfg) for f, cfg in HYBRID.items()},
}

COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=128, max_position_embeddings=128, pad_token_id=0, bos_token_id=101,
              eos_token_id=102, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, dropout=0.0,
              attention_dropout=0.0, initializer_range=0.2, tie_word_embeddings=False,
              # encoder-decoder / other spellings
              d_model=64, num_layers=2, num_heads=4, d_ff=128, d_kv=16, encoder_layers=2, decoder_layers=2,
              encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
              num_decoder_layers=2, dim=64, pooler_hidden_size=64, n_layers=2, n_heads=4, hidden_dim=128,
              decoder_start_token_id=0)


def build(family: str, vocab_size: int = 30522, seed: int = 0, positions: int = 128):
    """A tiny random model of `family` (eager attention), in eval mode, for up to `positions` tokens."""
    import transformers as tf

    task, extra = FAMILIES[family] if family in FAMILIES else MORE[family]
    base = family.split("@")[0].split("-head_dim")[0].replace("-mlm", "")
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
    from llm_widgets.loading import default_model_path

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
