"""Finding a model's layout from a recorded probe forward, and checking it with invariants."""
from __future__ import annotations

import re
import weakref

import torch

from ..errors import LLMWidgetsError, UnsupportedModelError
from ..guards import model_lock
from .callhook import CallHook
from .facts import Adapter, Layout, Ref, get_module
from .attention_calls import observe_attention
from .probe import is_linear, is_within, probe_inputs, record, same_tensor

ATTENTION_NAME = re.compile(r"att", re.I)  # self_attn, attention, SelfAttention, self_attention, attn
CROSS_NAME = re.compile(r"cross|encdec|encoder_att", re.I)


def _find_blocks(model, calls, hs, layout: Layout | None) -> tuple[list[Ref], bool]:
    """Blocks: per layer the module call whose output is hidden_states[l + 1]."""
    n = len(hs) - 1
    if layout is not None and layout.blocks:
        lst = get_module(model, layout.blocks)
        if lst is None:
            raise UnsupportedModelError(f"Layout.blocks={layout.blocks!r}: no such module in {type(model).__name__}.")
        refs = [Ref(m, 0, f"{layout.blocks}.{i}") for i, m in enumerate(lst)]
        return refs, False
    matches: list[list[tuple[str, int]]] = []
    for l in range(1, n):  # the last hidden state may be after the final norm
        matches.append([(name, c.index) for name, cs in calls.items() for c in cs if same_tensor(c.out, hs[l])])
    if n == 1:  # one layer: the module producing hs[1] either raw or before the final norm
        matches = [[(name, c.index) for name, cs in calls.items() for c in cs
                    if c.out is not None and c.out.shape == hs[1].shape and name]]
    # a ModuleList whose item i produced hidden_states[i + 1]
    lists = {name: mod for name, mod in model.named_modules() if isinstance(mod, torch.nn.ModuleList)}
    for lname, lst in lists.items():
        if len(lst) != n:
            continue
        if all((f"{lname}.{i}", 0) in set(matches[i]) for i in range(len(matches))) and \
                all(len(calls.get(f"{lname}.{i}", [])) == 1 for i in range(n)):
            return [Ref(m, 0, f"{lname}.{i}") for i, m in enumerate(lst)], False
    # one module called once per layer (shared weights): the outermost such module
    if matches and matches[0]:
        cands = [name for name, idx in matches[0] if idx == 0 and len(calls[name]) == n]
        cands = [c for c in cands if all((c, i) in set(matches[i]) for i in range(len(matches)))]
        if cands:
            name = min(cands, key=len)
            mod = get_module(model, name)
            return [Ref(mod, i, name, n) for i in range(n)], True
    raise UnsupportedModelError(
        f"Could not find the transformer blocks of {type(model).__name__}: no list of {n} modules (and no "
        f"module called {n} times) produces the model's hidden states. Pass them explicitly: "
        f"llm_widgets.load(model, layout=llm_widgets.Layout(blocks='path.to.layers', attn_out=..., mlp_out=...)).")


def _embedding_first(model, calls, hs, layout: Layout | None) -> tuple[list, bool]:
    """The hidden states in the one convention every view reads: the embedding output first, then
    each block's output (the last may be after the final norm). Some models (Mamba, Falcon-Mamba)
    return the block outputs and then the final norm's output, without the embedding output: there,
    a list of len(hs) - 1 blocks whose item i outputs hs[i], read structurally from the probe. Their
    embedding output is block 0's input, which must be the input embeddings' own output (views
    recompute it from the token ids; `Adapter.hidden_states`). Returns (hidden states, shifted)."""
    n = len(hs) - 1
    if layout is not None and layout.blocks:
        lst = get_module(model, layout.blocks)
        lists = {layout.blocks: lst} if isinstance(lst, torch.nn.ModuleList) else {}
    else:
        lists = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)}
    for lname, lst in lists.items():
        if len(lst) != n or n < 1:
            continue
        own = [calls.get(f"{lname}.{i}", []) for i in range(n)]
        if not all(len(c) == 1 and same_tensor(c[0].out, hs[i]) for i, c in enumerate(own)):
            continue
        emb = own[0][0].inp
        if emb is None or same_tensor(emb, hs[0]):
            continue
        names = {m: k for k, m in model.named_modules()}
        ename = names.get(model.get_input_embeddings())
        got = calls.get(ename, []) if ename is not None else []
        if not (len(got) == 1 and same_tensor(got[0].out, emb)):
            raise UnsupportedModelError(
                f"{type(model).__name__}'s hidden states omit the embedding output (its hidden_states[0] is "
                f"block 0's output), and block 0's input is not the input embeddings' own output, so the "
                f"embedding output cannot be recomputed from the token ids: the residual stream before block 0 "
                f"is unknown. Views that read it (logit lens, probing, concepts) cannot be computed for it.")
        return [emb] + list(hs[:n - 1]) + [hs[n]], True
    return hs, False


def _block_parts(mods: dict, block: Ref, calls, order, d: int, layout: Layout | None, callers: dict):
    """Within one block's call: attention module, its output projection, the MLP site. The attention
    module is the outermost module named like attention that holds linear maps; where none is, the
    module that called transformers' attention function in this block (`callers`, observed)."""
    name = block.path
    win = calls[name][block.call]
    inside = [c for c in order if win.start < c.start and c.end <= win.end and is_within(c.name, name)
              and c.name != name]
    rel = lambda p: p[len(name) + 1:]  # noqa: E731

    def by_path(path, optional=False):
        full = f"{name}.{path}"
        hits = [c for c in inside if c.name == full]
        if not hits and not optional:
            raise UnsupportedModelError(f"Layout path {path!r} is not called inside block {name!r}.")
        return hits[-1] if hits else None

    att_mods = []  # the outermost module named like "attention" that holds linear maps
    for c in inside:
        if not is_linear(mods[c.name]):
            continue
        parts = rel(c.name).split(".")
        hit = next((i for i, p in enumerate(parts[:-1]) if ATTENTION_NAME.search(p)), None)
        if hit is not None and not any(CROSS_NAME.search(p) for p in parts[:hit + 1]):
            top = ".".join(parts[:hit + 1])
            if top not in att_mods:
                att_mods.append(top)
    if not att_mods:  # attention not named like attention: the module seen calling an attention function
        att_mods = [rel(p) for p in callers if is_within(p, name) and p != name
                    and any(c.name == p for c in inside)][:1]
    att_root = att_mods[0] if att_mods else None
    in_att = lambda c: att_root is not None and is_within(rel(c.name), att_root)  # noqa: E731
    # token mixers other than attention: a block's part holding a convolution over the sequence (a
    # Mamba / short-convolution / recurrent mixer); its linear maps are neither attention nor MLP
    block_mod = mods[name]
    mixer_roots = []
    for p, m in block_mod.named_modules():
        if p and isinstance(m, torch.nn.modules.conv._ConvNd) and not (att_root and is_within(p, att_root)):
            root = p.split(".")[0]
            if root not in mixer_roots:
                mixer_roots.append(root)
    in_mixer = lambda c: any(is_within(rel(c.name), r) for r in mixer_roots)  # noqa: E731
    linears = [c for c in inside if is_linear(mods[c.name])]
    if layout is not None and layout.attn_out:  # a hybrid stack: the blocks that do not call it have none
        attn_out = by_path(layout.attn_out, optional=True)
    else:
        outs = [c for c in linears if in_att(c) and c.out is not None and c.out.shape[-1] == d]
        attn_out = outs[-1] if outs else None
        # a block without attention is one whose tokens a convolution / state-space mixer mixes; a block
        # with neither found may hold attention under another name: refused, saying how to name it
        if attn_out is None and (att_mods or not mixer_roots):
            raise UnsupportedModelError(
                f"Block {name!r}: found no attention output projection (a linear map inside a module named "
                f"like 'attn'/'attention' that writes width {d}) and no other token mixer (a convolution over "
                f"the sequence); attention modules seen: {att_mods or 'none'}. Pass Layout(attn_out='path.in.block') "
                f"(in a hybrid stack, the blocks that do not call it have no attention).")
    # a block without attention whose tokens one mixer module mixes: that module's call is its "mixer" site
    mixer_call = None
    if attn_out is None and len(mixer_roots) == 1:
        hits = [c for c in inside if c.name == f"{name}.{mixer_roots[0]}"]
        mixer_call = hits[0] if len(hits) == 1 and hits[0].out is not None and hits[0].out.shape[-1] == d else None
    if attn_out is not None:
        mixer = f"attention {rel(attn_out.name).rsplit('.', 1)[0]!r}"
    elif mixer_roots:
        mixer = " and ".join(f"{r!r} ({type(get_module(block_mod, r)).__name__})" for r in mixer_roots)
    else:  # Layout(attn_out=...) names attention this block does not call
        mixer = "no module found (none named like 'attn'/'attention', no convolution over the sequence)"
    # mixture of experts: 3-D expert weights or a list of expert MLPs outside attention and the mixers
    # (a convolution's weight is 3-D too: a Mamba / short-convolution mixer's Conv1d is no expert tensor)
    moe_root = None
    for p, m in block_mod.named_modules():
        if not p or (att_root and is_within(p, att_root)) or any(is_within(p, r) for r in mixer_roots):
            continue
        if any(w.dim() >= 3 for w in m.parameters(recurse=False)) or (
                isinstance(m, torch.nn.ModuleList) and len(m) > 1 and any(is_linear(x) for x in m[0].modules())):
            moe_root = p.split(".")[0]
            break
    mlp_out = mlp = None
    if layout is not None and layout.mlp:
        mlp = by_path(layout.mlp)
    elif moe_root is not None:
        hits = [c for c in inside if c.name == f"{name}.{moe_root}"]
        mlp = hits[-1] if hits else None
    if layout is not None and layout.mlp_out:
        mlp_out = by_path(layout.mlp_out)
    elif moe_root is None:
        outs = [c for c in linears if not in_att(c) and not in_mixer(c) and c.out is not None
                and c.out.shape[-1] == d and c.inp is not None]
        mlp_out = outs[-1] if outs else None
    mlp_call = mlp if mlp is not None else mlp_out
    post = (_post_norm(mods, inside, attn_out, d), _post_norm(mods, inside, mlp_call, d))
    return att_root, attn_out, mlp, mlp_out, moe_root is not None, inside, mixer, mixer_call, post


def _post_norm(mods: dict, inside, branch, d: int):
    """The call, inside the block, that transforms a branch's output before the residual sum (a
    "sandwich" norm: Gemma 2's post_feedforward_layernorm, OLMo 2's post_attention_layernorm): a
    module with parameters, not a linear map, whose input is the branch's output tensor and whose
    output (width d) differs from it and is no other module's input (it goes into the residual
    sum). None where the branch's output is added as it is (dropout, which has no parameters and
    returns its input in eval mode, is not one)."""
    if branch is None or branch.out is None:
        return None
    for c in inside:
        if c.start <= branch.start or c.inp is None or c.out is None or c.inp is not branch.out:
            continue
        mod = mods[c.name]
        if (is_linear(mod) or not any(True for _ in mod.parameters(recurse=False))
                or c.out.shape[-1] != d or same_tensor(c.out, c.inp)):
            continue
        if any(o.start > c.start and o.inp is c.out for o in inside):
            continue  # its output feeds another module (Zamba's pre_ff_layernorm: the MLP's input), not the sum
        return c
    return None


HEAD_COUNTS = ("num_heads", "num_attention_heads", "n_head", "n_heads", "attention_heads")
HEAD_WIDTHS = ("head_dim", "attention_head_size", "head_size", "dim_per_head")
# a linear attention's output projection reads its value heads (Qwen3-Next's gated delta rule: 8 value
# heads of 8 where its 4 key heads are 16 wide)
VALUE_HEAD_COUNTS = ("num_v_heads", "num_value_heads", "linear_num_value_heads")
VALUE_HEAD_WIDTHS = ("head_v_dim", "v_head_dim", "value_head_dim", "linear_value_head_dim")


def _block_heads(block: Ref, att_root: str, call, layout: Layout | None, model_heads: tuple[int, int]):
    """(heads, width) of one block's attention, read from its own module: value heads where it names
    them, else its heads and head width; where the module says neither, the model's. Checked against
    the width its output projection reads (a layout that does not fit it is the model's, not a guess)."""
    if layout is not None and (layout.n_heads or layout.head_dim):
        return model_heads
    mod = get_module(block.module, att_root)
    width = int(call.inp.shape[-1])
    for counts, widths in ((VALUE_HEAD_COUNTS, VALUE_HEAD_WIDTHS), (HEAD_COUNTS, HEAD_WIDTHS)):
        n = _count(mod, None, counts)
        dh = _count(mod, None, widths)
        if n and not dh and width % n == 0:
            dh = width // n
        if n and dh and n * dh == width:
            return n, dh
    return model_heads


def _count(mod, config, names) -> int | None:
    for src in (mod, config):
        for k in names:
            v = getattr(src, k, None) if src is not None else None
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
    return None


def discover(model, layout: Layout | None = None) -> Adapter:
    """Find the model's layout from its module tree and one probe forward; check it."""
    config = getattr(model, "config", None)
    lock = model_lock(model)
    with lock:
        was_training = model.training
        model.eval()
        try:
            return _discover(model, config, layout)
        except LLMWidgetsError:
            raise
        except Exception as e:  # not a Hugging Face-style model, or one that fails on a probe
            raise UnsupportedModelError(
                f"Could not discover the layout of {type(model).__name__}: a probe forward pass (a few "
                f"tokens, output_hidden_states=True) failed with {type(e).__name__}: {e}. llm-widgets "
                f"needs a Hugging Face-style model (input embeddings, hidden states); pass "
                f"llm_widgets.Layout(...) for the parts discovery cannot find.") from e
        finally:
            model.train(was_training)


def _discover(model, config, layout: Layout | None) -> Adapter:
    inputs = probe_inputs(model)
    enc_dec = bool(getattr(config, "is_encoder_decoder", False))
    if enc_dec:
        n_layers = _count(None, config, ("num_layers", "encoder_layers", "num_hidden_layers"))
        n_heads = _count(None, config, ("num_heads", "encoder_attention_heads", "num_attention_heads"))
        d = _count(None, config, ("d_model", "hidden_size"))
        why = ("interventions (neurons, ablation, patching, logit lens) do not apply to encoder-decoder models "
               "yet; attention (encoder, decoder and cross) and probing of the encoder do")
        return Adapter(model, "encoder-decoder", False, "lm", n_layers or 0, n_heads or 0, n_heads or 0,
                       (d or 0) // max(n_heads or 1, 1), d or 0, reasons={"interventions": why})
    with observe_attention() as seen:  # the modules that call transformers' attention functions
        out, calls, order = record(model, inputs, output_hidden_states=True)
    names = {m: k for k, m in model.named_modules()}
    attention_callers: dict[str, list] = {}
    for c in seen:
        if c.module in names:
            attention_callers.setdefault(names[c.module], []).append(c)
    hs = getattr(out, "hidden_states", None)
    if not hs:
        raise UnsupportedModelError(f"{type(model).__name__} returns no hidden states "
                                    "(output_hidden_states=True); llm-widgets needs them to find its blocks.")
    raw = list(hs)  # the model's own convention (causality compares two of the model's own forwards)
    hs, shifted = _embedding_first(model, calls, raw, layout)
    d = int(hs[0].shape[-1])
    mods = dict(model.named_modules())
    blocks, shared = _find_blocks(model, calls, hs, layout)
    n = len(blocks)
    # per-block parts
    attn_out, mlp, mlp_out, n_neurons, att_roots, moe_any, insides, mixers = [], [], [], [], [], False, [], []
    sinks: list[bool] = []
    mixer_out: list = []
    attn_post: list = []
    mlp_post: list = []
    for ref in blocks:
        att_root, ao, m, mo, moe, inside, mixer, mx, (a_post, m_post) = _block_parts(
            mods, ref, calls, order, d, layout, attention_callers)
        sinks.append(ao is not None and any(c.sinks for p, cs in attention_callers.items()
                                            if is_within(p, f"{ref.path}.{att_root}") for c in cs))
        insides.append(inside)
        att_roots.append(att_root if ao is not None else None)
        mixers.append(mixer)
        ref_of = lambda c: Ref(mods[c.name], c.index, c.name, len(calls[c.name])) if c is not None else None  # noqa: E731
        attn_out.append(ref_of(ao))
        mixer_out.append(ref_of(mx))
        mlp_out.append(ref_of(mo))
        mlp.append(ref_of(m if m is not None else mo))
        attn_post.append(ref_of(a_post))
        mlp_post.append(ref_of(m_post))
        n_neurons.append(int(mo.inp.shape[-1]) if mo is not None and mo.inp is not None else 0)
        moe_any |= moe
    # heads: the model's (the first block with attention; its module, else the config), and each block's
    # own as the module computing them says (value heads of a linear attention), never one width assumed
    have = [l for l, a in enumerate(attn_out) if a is not None]
    if layout is not None and layout.attn_out and not have:
        raise UnsupportedModelError(f"Layout path {layout.attn_out!r} is not called inside any block "
                                    f"({blocks[0].path}, ...).")
    first = have[0] if have else None
    att_mod = get_module(blocks[first].module, att_roots[first]) if first is not None else None
    n_heads = (layout.n_heads if layout and layout.n_heads else
               _count(att_mod, config, HEAD_COUNTS))
    if n_heads is None and have:
        raise UnsupportedModelError("Could not tell the number of attention heads; pass Layout(n_heads=...).")
    n_heads = n_heads if have else 0  # a state-space stack: no attention heads
    heads: list = [None] * n
    head_dim = n_kv = 0
    if have:
        width = int(calls[attn_out[first].path][attn_out[first].call].inp.shape[-1])
        explicit_dh = (layout.head_dim if layout and layout.head_dim else
                       _count(att_mod, None, HEAD_WIDTHS) or _count(None, config, ("head_dim",)))
        head_dim = explicit_dh or (width // n_heads)
        if n_heads * head_dim != width:
            raise UnsupportedModelError(
                f"n_heads ({n_heads}) x head_dim ({head_dim}) = {n_heads * head_dim}, but the attention output "
                f"projection {attn_out[first].path} reads {width} features: the heads cannot be located. Pass "
                f"Layout(n_heads=..., head_dim=...) with n_heads * head_dim == {width}.")
        groups = getattr(att_mod, "num_key_value_groups", None)
        n_kv = (n_heads // groups if isinstance(groups, int) and groups > 0 else
                _count(att_mod, config, ("num_key_value_heads", "num_kv_heads", "n_head_kv")) or n_heads)
        for l in have:
            heads[l] = _block_heads(blocks[l], att_roots[l], calls[attn_out[l].path][attn_out[l].call], layout,
                                    (n_heads, head_dim))
    att = getattr(out, "attentions", None)
    att = [a for a in att or () if a is not None and a.dim() == 4]
    if att and n_heads and att[0].shape[1] != n_heads and not any(a.shape[1] == n_heads for a in att):
        raise UnsupportedModelError(f"The model's attention weights have {att[0].shape[1]} heads, but "
                                    f"{n_heads} were read from the modules; pass Layout(n_heads=...).")
    b0 = first if first is not None else 0
    parallel = first is not None and _is_parallel(model, mods, inputs, calls, blocks[b0], attn_out[b0], insides[b0],
                                                  att_roots[b0], mlp[b0])
    causal = _is_causal(model, inputs, raw)
    # outputs and readout
    logits = getattr(out, "logits", None)
    emb_out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    output = None
    if logits is not None:
        if logits.dim() == 2:
            output = "classes"
        elif emb_out is not None and logits.shape[-1] == getattr(emb_out, "weight", torch.empty(0)).shape[0]:
            output = "lm"
        else:
            output = "token-classes"
    kind = "decoder" if causal and output == "lm" else "encoder"
    ad = Adapter(model, kind, causal, output, n, n_heads, n_kv, head_dim, d, blocks, attn_out, mlp, mlp_out,
                 n_neurons, parallel=parallel, shared=shared, moe=moe_any, mixers=mixers, heads=heads,
                 embeddings_in_hidden_states=not shifted, sinks=sinks, mixer_out=mixer_out,
                 attn_post=attn_post, mlp_post=mlp_post)
    if moe_any:
        ad.reasons["neurons"] = ("its MLPs are mixtures of experts, which have no single neuron layer "
                                 "(the 'mlp' site is the whole expert block's output)")
    if output == "lm":
        _find_readout(ad, model, calls, order, blocks[-1], emb_out, logits, layout, config)
    _check(ad, hs, calls)
    return ad


def _is_parallel(model, mods, inputs, calls, block, attn_out, inside, att_root, mlp) -> bool:
    """True when the MLP does not read the attention output (GPT-J, Falcon, NeoX with
    use_parallel_residual): perturbing the attention output leaves the MLP's input unchanged."""
    if mlp is None:
        return False
    bname = block.path
    first = next((c for c in inside if is_linear(mods[c.name])
                  and not (att_root and is_within(c.name, f"{bname}.{att_root}"))
                  and is_within(c.name, bname)), None)
    if first is None:
        return False
    seen = []
    a = CallHook(model, attn_out, lambda m, args, out: out + 1.0, pre=False)
    b = CallHook(model, Ref(mods[first.name], first.index, first.name, len(calls[first.name])),
                 lambda m, args: seen.append(args[0].detach().clone()), pre=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        a.remove()
        b.remove()
    return bool(seen) and same_tensor(seen[0], first.inp)


CAUSAL_TOL = {torch.float32: 1e-4, torch.float64: 1e-8}  # relative change of an earlier position; else 2e-2


def declared_causal(model) -> bool | None:
    """What the modules say: True where every module with a boolean `is_causal` (transformers'
    attention modules) says True, False where one says False, None where none says."""
    said = {m.is_causal for m in model.modules() if isinstance(getattr(m, "is_causal", None), bool)}
    return None if not said else all(said)


def causal_change(model, inputs, hs) -> float:
    """Changing the last probe token: the largest change of an earlier position's hidden state,
    relative to that position's own norm, over every layer. 0 (or float noise: a mixture of
    experts routes a batch of other tokens with other sums, ~1e-7 in float32) for a causal model;
    an encoder moves earlier positions by a sizeable fraction (0.2 or more on tiny random models)."""
    ids = inputs["input_ids"].clone()
    ids[0, -1] = ids[0, 0] if ids[0, 0] != ids[0, -1] else ids[0, 1]
    with torch.no_grad():
        hs2 = model(input_ids=ids, attention_mask=inputs["attention_mask"], output_hidden_states=True,
                    return_dict=True).hidden_states
    worst = 0.0
    for a, b in zip(hs[1:], hs2[1:]):
        a, b = a[0, :-1].float(), b[0, :-1].float().to(a.device)
        moved = (a - b).norm(dim=-1)
        rel = torch.where(moved == 0, 0.0, moved / a.norm(dim=-1).clamp_min(torch.finfo(torch.float32).tiny))
        worst = max(worst, float(rel.max()))
    return worst


def _is_causal(model, inputs, hs) -> bool:
    """Changing the last token leaves every earlier position's hidden states unchanged within the
    model's precision (`causal_change` below a tolerance scaled to each position's norm: 1e-4 in
    float32, 2e-2 in half precision), never an exact comparison: expert routing moves earlier
    positions by float noise. Where the attention modules declare themselves causal the tolerance is
    ten times wider."""
    change = causal_change(model, inputs, hs)
    tol = CAUSAL_TOL.get(hs[0].dtype, 2e-2)
    if declared_causal(model):
        tol *= 10
    return change <= tol


def _find_readout(ad: Adapter, model, calls, order, last: Ref, emb_out, logits, layout, config):
    names = {m: n for n, m in model.named_modules()}
    out_path = names.get(emb_out)
    if layout is not None and layout.head:
        head = layout.head
    else:  # the outermost module (below the root) that holds the output embeddings
        head = out_path.split(".")[0] if out_path else None
    if head is None or head not in calls:
        ad.reasons["logit_lens"] = "could not find the language-model head that produces the logits"
        return
    end = calls[last.path][last.call].end
    start = calls[head][0].start
    tail = []
    for c in order:
        if not (end < c.start and c.end < start) or not c.name or is_within(last.path, c.name):
            continue
        if any(is_within(c.name, t) for t in tail):
            continue
        tail.append(c.name)
    if layout is not None and layout.final_norm:
        tail = [layout.final_norm]
    ad.final_norm, ad.head = tail, head
    soft = next((v for k in ("final_logit_softcapping", "logits_soft_cap")
                 if isinstance(v := getattr(config, k, None), (int, float)) and v), None)
    ad.softcap = float(soft) if isinstance(soft, (int, float)) and soft else None
    scale = getattr(config, "logit_scale", None)
    scale = scale if isinstance(scale, (int, float)) and not isinstance(scale, bool) else 1.0
    div = getattr(config, "logits_scaling", None)
    if isinstance(div, (int, float)) and div:
        scale = scale / div
    ad.logit_scale = float(scale)
    h = calls[last.path][last.call].out
    with torch.no_grad():
        got = ad.readout(h)
    if not _close(got, logits):
        diff = float((got.float() - logits.float()).abs().max())
        ad.reasons["logit_lens"] = (
            f"reading the last residual through {' -> '.join(tail + [head])} does not reproduce the model's "
            f"logits (max difference {diff:.3g}): the model does something after its last block that was "
            f"not found. Pass Layout(final_norm=..., head=...) to say which modules read it out")
        ad.head = None


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return False
    tol = 1e-4 if b.dtype == torch.float32 else 2e-2  # the model's own precision
    a, b = a.float().to(b.device), b.float()  # a model dispatched over devices: the head's and the output's
    return bool((a - b).abs().max() <= tol * max(1.0, float(b.abs().max())))


def _check(ad: Adapter, hs, calls) -> None:
    """The invariants: block outputs are the model's hidden states; widths agree."""
    for l, ref in enumerate(ad.blocks[:-1]):
        got = calls[ref.path][ref.call].out
        if not same_tensor(got, hs[l + 1]):
            raise UnsupportedModelError(f"Block {l} ({ref.path}) does not output hidden_states[{l + 1}]: "
                                        f"the blocks given or found are not the model's layers.")
    for l, ref in enumerate(ad.attn_out):
        if ref is None:
            continue
        w = int(calls[ref.path][ref.call].inp.shape[-1])
        n, dh = ad.heads[l]
        if w != n * dh:
            raise UnsupportedModelError(f"{ref.path} reads {w} features, not its {n} heads x {dh} = {n * dh}.")


_ADAPTERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def adapter_of(model, layout: Layout | None = None) -> Adapter:
    """The model's adapter, discovered on first use and cached (a new `layout` rediscovers)."""
    have = _ADAPTERS.get(model)
    if have is not None and (layout is None or have[1] == layout):
        return have[0]
    ad = discover(model, layout)
    _ADAPTERS[model] = (ad, layout)
    return ad
