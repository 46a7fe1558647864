"""Where the nnsight backend's views read, from the model's module tree: module paths as nnsight's
envoy tree spells them, the adapter of a model whose weights are elsewhere (discovery on a small
random replica of the same architecture, with the counts read from the real config and module
shapes), the order in which a layer's sites are reached, and the calls of transformers' attention
function that nnsight's `.source` can read (queries and keys as the model attends with them)."""
from __future__ import annotations

import ast
import copy
import inspect

import torch

from ..errors import BackendUnsupportedError, DoesNotApplyError, LLMWidgetsError, UnsupportedModelError
from ..execution.nnsight import envoy_path  # noqa: F401  (re-exported: the backend spells paths so)


# -- adapter facts without the weights ---------------------------------------------------------------
_SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
          "ffn_dim": 128, "n_inner": 128, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64,
          "word_embed_proj_dim": 64, "head_dim": 16, "num_local_experts": 4, "num_experts": 4,
          "num_experts_per_tok": 2, "rotary_dim": 8, "embedding_size": 32}


def replica(model: torch.nn.Module) -> torch.nn.Module:
    """A small model of the same class and layout as `model` (2 layers, width 64, random weights),
    built from a shrunk copy of its config: discovery runs its probe forward on this one."""
    cfg = copy.deepcopy(model.config)
    n_heads = getattr(cfg, "num_attention_heads", None)
    n_kv = getattr(cfg, "num_key_value_heads", None)
    for k, v in _SMALL.items():
        if k == "head_dim" and not isinstance(getattr(cfg, k, None), int):
            continue
        if hasattr(cfg, k) and getattr(cfg, k) is not None:
            try:
                setattr(cfg, k, v)
            except (AttributeError, TypeError, ValueError):
                pass
    if isinstance(n_kv, int) and isinstance(n_heads, int):
        cfg.num_key_value_heads = 4 if n_kv == n_heads else 2  # grouped-query attention stays grouped
    layers = getattr(cfg, "num_hidden_layers", 2)
    for k in ("layer_types", "sliding_window_pattern_list", "mlp_layer_types"):
        v = getattr(cfg, k, None)
        if isinstance(v, list) and isinstance(layers, int):
            setattr(cfg, k, v[:layers])
    torch.manual_seed(0)
    small = type(model)(cfg)
    with torch.no_grad():  # effects far above float noise, as in llm_widgets.testing
        for name, p in small.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
            elif "bias" in name:
                p.normal_(0.0, 0.05)
    return small.eval()


def _width(module, side: str) -> int:
    """in/out features of a linear map (nn.Linear, GPT-2's Conv1D: weight [in, out]), from shapes
    only (meta tensors)."""
    if hasattr(module, "in_features"):
        return int(module.in_features if side == "in" else module.out_features)
    if hasattr(module, "nf"):  # Conv1D
        return int(module.weight.shape[0] if side == "in" else module.nf)
    w = module.weight
    return int(w.shape[1] if side == "in" else w.shape[0])


def meta_adapter(model: torch.nn.Module, layout=None):
    """The Adapter of a model whose weights are elsewhere (meta tensors): discovery runs on a small
    replica (`replica`); the module paths carry over, the counts are read from `model`."""
    from ..adapter.discovery import _count, adapter_of
    from ..adapter.facts import Adapter, Ref, get_module

    small = replica(model)
    ad = adapter_of(small, layout)
    if ad.why_not("interventions"):
        raise UnsupportedModelError(f"{type(model).__name__} through nnsight without its weights: "
                                    f"{ad.why_not('interventions')}")
    if ad.shared:
        raise BackendUnsupportedError("models with one block shared by every layer (ALBERT) are not supported "
                                      "through the nnsight backend.")
    cfg = model.config
    prefix = ad.blocks[0].path.rsplit(".", 1)[0]
    blocks_list = get_module(model, prefix)
    if blocks_list is None:
        raise UnsupportedModelError(f"{prefix!r} (the blocks of the replica) is not in {type(model).__name__}.")
    blocks = [Ref(m, 0, f"{prefix}.{i}") for i, m in enumerate(blocks_list)]
    rel = lambda ref, l: ref.path[len(ad.blocks[l].path) + 1:]  # noqa: E731

    def refs(table):
        out = []
        for b in blocks:
            r = table[0]
            if r is None:
                out.append(None)
                continue
            path = f"{b.path}.{rel(r, 0)}"
            mod = get_module(model, path)
            if mod is None:
                raise UnsupportedModelError(f"{path} (found on the replica) is not in {type(model).__name__}.")
            out.append(Ref(mod, 0, path))
        return out

    attn_out, mlp, mlp_out = refs(ad.attn_out), refs(ad.mlp), refs(ad.mlp_out)
    att_path = ad.attn_out[0].path[len(ad.blocks[0].path) + 1:].rsplit(".", 1)[0]
    att_mod = get_module(blocks[0].module, att_path)
    n_heads = _count(att_mod, cfg, ("num_heads", "num_attention_heads", "n_head", "n_heads", "attention_heads"))
    width = _width(attn_out[0].module, "in")
    head_dim = (_count(att_mod, None, ("head_dim", "attention_head_size", "head_size", "dim_per_head"))
                or _count(None, cfg, ("head_dim",)) or width // n_heads)
    groups = getattr(att_mod, "num_key_value_groups", None)
    n_kv = (n_heads // groups if isinstance(groups, int) and groups > 0 else
            _count(att_mod, cfg, ("num_key_value_heads", "num_kv_heads", "n_head_kv")) or n_heads)
    d = _width(attn_out[0].module, "out")
    neurons = [_width(r.module, "in") if r is not None else 0 for r in mlp_out]
    out = Adapter(model, ad.kind, ad.causal, ad.output, len(blocks), n_heads, n_kv, head_dim, d, blocks, attn_out,
                  mlp, mlp_out, neurons, parallel=ad.parallel, shared=False, moe=ad.moe,
                  final_norm=list(ad.final_norm), head=ad.head, softcap=ad.softcap, logit_scale=ad.logit_scale,
                  reasons=dict(ad.reasons), attn_post=refs(ad.attn_post), mlp_post=refs(ad.mlp_post))
    out.replica = small  # its probe forward gives the order of the sites (`site_order`)
    return out


# -- where the views read: site order and attention calls ---------------------------------------------
def site_order(probe_model: torch.nn.Module, ad) -> dict:
    """{site: rank}: the order in which one layer's sites are reached in a forward pass (a site read
    at a module's input comes before its output), from a recorded probe forward."""
    from ..adapter.probe import probe_inputs, record

    _, calls, _ = record(probe_model, probe_inputs(probe_model))
    ranks = {}
    for site in ("heads", "attn", "mlp_in", "neurons", "mlp", "resid"):
        try:
            ref = ad.site(site, 0)
        except (DoesNotApplyError, LLMWidgetsError):
            continue
        rel = ref.path[len(ad.blocks[0].path) + 1:]
        path = f"{ad.blocks[0].path}.{rel}" if rel else ad.blocks[0].path
        c = calls.get(path, [None])[min(ref.call, len(calls.get(path, [None])) - 1)]
        if c is None:
            continue
        ranks[site] = c.start if site in ("heads", "neurons", "mlp_in") else c.end
    return ranks


def _attention_label(module) -> str | None:
    """The label nnsight's `.source` gives the call of transformers' attention function in
    `module`'s forward (`attention_interface(self, query, key, value, mask, ...)`), or None."""
    from nnsight.intervention.source import Instrument

    try:
        src = inspect.getsource(type(module).forward)
    except (OSError, TypeError):
        return None
    calls = []

    class Recorder(Instrument):
        def wrap(self, name, fn, args, keywords, node):
            out = super().wrap(name, fn, args, keywords, node)
            if isinstance(node, ast.Call) and len(node.args) >= 5 and isinstance(node.args[0], ast.Name) \
                    and node.args[0].id == "self":
                calls.append(self.names[-1])
            return out

    import textwrap

    tree = ast.parse(textwrap.dedent(src))
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    tree.body[0].decorator_list = []
    Recorder().visit(tree)
    named = [c for c in calls if c.startswith("attention_interface")]
    pick = named or calls
    return pick[0] if len(pick) == 1 else None


def attention_ops(lm, ad) -> tuple[list | None, str]:
    """[(attention module envoy path, source label)] per block, or (None, why not)."""
    from nnsight.intervention.source import install_source

    from ..adapter.facts import get_module

    block0 = ad.blocks[0]
    found = None
    for rel, mod in block0.module.named_modules():
        if not rel or any(x in rel.lower() for x in ("cross", "encdec")):
            continue
        label = _attention_label(mod)
        if label is not None:
            found = (rel, label)
            break
    if found is None:
        return None, ("this model's attention does not call transformers' attention functions (ALiBi models "
                      "such as BLOOM or Falcon, DeBERTa, custom code), so nnsight cannot read the queries and "
                      "keys it attends with")
    rel, label = found
    out = []
    for b in ad.blocks:
        path = f"{b.path}.{rel}"
        if get_module(ad.model, path) is None:
            return None, f"{path} is not in the model"
        env = lm.get(envoy_path(path))
        compiled = install_source(env)  # nnsight's own labels: check ours against them
        if label not in compiled.names:
            return None, f"nnsight's source of {path} has no operation {label!r}"
        out.append((envoy_path(path), label))
    return out, ""
