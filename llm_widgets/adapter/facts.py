"""The adapter's records: a user's Layout, one layer's module Ref, and the Adapter's model facts."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import DoesNotApplyError, LLMWidgetsError
from ..layers import block_index
from . import readout


def get_module(root, path: str | None):
    if path is None:
        return None
    obj = root
    for part in path.split(".") if path else []:
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def first_output(x):
    if isinstance(x, (tuple, list)):
        return x[0]
    if hasattr(x, "last_hidden_state") and not isinstance(x, torch.Tensor):
        return x.last_hidden_state
    return x


@dataclass(frozen=True)
class Layout:
    """Where a model keeps its parts, as module paths (dots; list items by number). Pass it as
    `llm_widgets.load(..., layout=Layout(...))` when discovery cannot resolve a model; every
    field left None is still discovered, and the result is checked with the same invariants.

    blocks: from the model root, the list of blocks (e.g. "model.layers").
    attn_out / mlp_out: inside a block, the attention output projection (input: heads
      concatenated) and the MLP output projection (input: neuron activations), e.g.
      "self_attn.o_proj" and "mlp.down_proj". mlp: inside a block, a module whose output is the
      MLP's contribution, for mixture-of-experts blocks (e.g. "block_sparse_moe").
    final_norm / head: from the root, the final norm and the language-model head ("model.norm",
      "lm_head"). n_heads / head_dim: when the modules do not say.
    """

    blocks: str | None = None
    attn_out: str | None = None
    mlp_out: str | None = None
    mlp: str | None = None
    final_norm: str | None = None
    head: str | None = None
    n_heads: int | None = None
    head_dim: int | None = None


@dataclass(frozen=True)
class Ref:
    """One layer's module and which of its calls in a forward pass is that layer (shared layers)."""

    module: torch.nn.Module
    call: int = 0
    path: str = ""
    calls: int = 1  # how often the module runs in one forward pass (n_layers for a shared block)


@dataclass
class Adapter:
    """Model facts for every view. Build with `adapter_of(model)` (cached per model)."""

    model: torch.nn.Module
    kind: str  # 'decoder' (causal LM), 'encoder' or 'encoder-decoder'
    causal: bool
    output: str | None  # what the logits are: 'lm' (per token, vocabulary), 'classes', 'token-classes', None
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_model: int
    blocks: list[Ref] = field(default_factory=list)
    attn_out: list[Ref | None] = field(default_factory=list)  # None: a block with no attention (a mixer)
    mlp: list[Ref | None] = field(default_factory=list)  # the "mlp" site: mlp_out, or the MoE block
    mlp_out: list[Ref | None] = field(default_factory=list)
    n_neurons: list[int] = field(default_factory=list)  # mlp_out input width per layer (0: none)
    parallel: bool = False  # attention and MLP read the same input
    shared: bool = False  # one block module serves several layers
    moe: bool = False
    final_norm: list[str] = field(default_factory=list)  # paths, applied in order before the head
    head: str | None = None
    softcap: float | None = None
    logit_scale: float = 1.0
    reasons: dict = field(default_factory=dict)  # what -> why it does not apply
    # per block: what computes its token mixing ("attention 'self_attn'", "mixer 'mamba'"), and its
    # heads (count, width) as the module computing them says (value heads of a linear attention);
    # None where the block has no attention
    mixers: list[str] = field(default_factory=list)
    heads: list[tuple[int, int] | None] = field(default_factory=list)
    # False where the model's hidden_states omit the embedding output (Mamba: the block outputs, then
    # the final norm's output); `hidden_states` puts them in the one convention every view reads
    embeddings_in_hidden_states: bool = True
    # per block: a norm applied to the attention's / the MLP's output before the residual sum (Gemma 2
    # and 3, OLMo 2: "sandwich" norms), as observed; the "attn" / "mlp" sites read its output, what the
    # branch adds to the residual. Empty or None: the branch's output is added as it is
    attn_post: list[Ref | None] = field(default_factory=list)
    mlp_post: list[Ref | None] = field(default_factory=list)
    # per block: its attention passes learned sinks to the attention function (gpt-oss), as observed
    sinks: list[bool] = field(default_factory=list)
    # per block without attention: the one token-mixer module (Mamba, short convolution, RG-LRU) whose
    # output is its contribution, the "mixer" site (None where the block has attention or no such module)
    mixer_out: list[Ref | None] = field(default_factory=list)

    def hidden_states(self, hidden, input_ids: torch.Tensor | None = None, *, embeddings=None) -> tuple:
        """The model's returned `hidden_states` in the convention every view reads: the embedding
        output (the residual stream before block 0), then each block's output (the last may be after
        the final norm), n_layers + 1 in all. Where the model omits the embedding output, it is
        `embeddings` where given (read at block 0's input, as an executor elsewhere does), else
        recomputed from `input_ids` by the input embeddings (discovery checked that block 0 reads
        exactly that); without either that is an error, never a shifted tuple."""
        hidden = tuple(hidden)
        if self.embeddings_in_hidden_states:
            return hidden
        if embeddings is not None:
            return (embeddings.to(device=hidden[0].device, dtype=hidden[0].dtype),) + hidden[:-2] + hidden[-1:]
        if input_ids is None:
            raise LLMWidgetsError(f"{type(self.model).__name__}'s hidden states omit the embedding output; pass "
                                  f"the token ids to recompute it (Adapter.hidden_states(hidden, input_ids)).")
        table = self.model.get_input_embeddings()
        with torch.set_grad_enabled(hidden[0].requires_grad):  # as the forward that gave `hidden` ran
            emb = table(input_ids.to(table.weight.device))
        return (emb.to(device=hidden[0].device, dtype=hidden[0].dtype),) + hidden[:-2] + hidden[-1:]

    # -- what applies ------------------------------------------------------------------------
    def require(self, what: str) -> None:
        """Raise DoesNotApplyError (one message for every view) unless `what` applies:
        'interventions' (hooks, ablation, patching), 'neurons', 'logit_lens', 'patching', 'attention'
        (some block has attention)."""
        why = self.why_not(what)
        if why:
            raise DoesNotApplyError(why)

    def why_not(self, what: str) -> str:
        if what == "attention":  # read from the model's own weights: also for encoder-decoder models
            if self.kind == "encoder-decoder" or not self.attn_out or self.attention_blocks:
                return ""
            mixers = sorted(set(self.mixers)) if self.mixers else ["modules other than attention"]
            return (f"no block of this model has attention (its tokens are mixed by {', '.join(mixers)}), so there "
                    f"are no attention weights or heads to show. The residual-stream views apply: logit lens, "
                    f"attribution, residual patching, probing, concepts")
        if "interventions" in self.reasons:
            return self.reasons["interventions"]
        if what == "neurons" and not any(self.n_neurons):
            if self.mlp and not any(self.mlp) and "neurons" not in self.reasons:  # a stack of token mixers only
                return (f"no block of this model has an MLP (a feed-forward layer writing the residual stream), so "
                        f"there are no neurons to show: its blocks are token mixers "
                        f"({', '.join(sorted(set(self.mixers)))}) and norms")
            return self.reasons.get("neurons", "this model's blocks have no MLP neuron layer")
        if what == "logit_lens" and self.head is None:
            return self.reasons.get("logit_lens", "this model has no language-model head (final norm + "
                                    "unembedding), which the logit lens and direct logit attribution read the "
                                    "residual stream through. Load a "
                                    "causal or masked LM, e.g. llm_widgets.load('gpt2').")
        if what == "patching" and self.output is None:
            return ("patching measures the model's output, and this model has no output head (no "
                    "logits). Load a causal LM or a classifier (task='causal-lm' / 'classification').")
        return ""

    @property
    def sites(self) -> tuple[str, ...]:
        """The residual/attention/MLP sites present in every layer (a hybrid or state-space stack
        whose blocks do not all have attention: no "attn")."""
        return (("resid",) + (("attn",) if all(a is not None for a in self.attn_out) else ())
                + (("mlp",) if all(self.mlp) else ()))

    @property
    def attention_blocks(self) -> list[int]:
        """The blocks with attention (softmax or linear), by block index."""
        return [l for l, a in enumerate(self.attn_out) if a is not None]

    def no_attention(self, layer: int) -> str:
        """Why block `layer` has no attention site ('' where it has one): what mixes its tokens
        instead, and which blocks have attention."""
        if self.attn_out[layer] is not None:
            return ""
        have = self.attention_blocks
        mixer = self.mixers[layer] if self.mixers else "no attention module"
        return (f"block {layer} has no attention: its tokens are mixed by {mixer}"
                + (f"; the blocks with attention are {have}" if have else "; no block of this model has attention"))

    def head_layout(self, layer: int) -> tuple[int, int]:
        """(heads, head width) of block `layer`'s attention, as its module computes them; raises
        DoesNotApplyError saying why where the block has no attention heads."""
        layer = self.check_layer(layer)
        why = self.no_attention(layer)
        if why:
            raise DoesNotApplyError(f"layer {layer} has no attention heads: {why}.")
        return self.heads[layer] if self.heads and self.heads[layer] else (self.n_heads, self.head_dim)

    def uniform_heads(self) -> str:
        """'' where every block has attention heads of the one global layout (n_heads x head_dim);
        else why not (the views that index heads by (layer, head) over one layout need it)."""
        for l in range(self.n_layers):
            why = self.no_attention(l)
            if why:
                return why
            n, dh = self.head_layout(l)
            if (n, dh) != (self.n_heads, self.head_dim):
                return (f"block {l}'s attention ({self.mixers[l] if self.mixers else 'its attention'}) has {n} "
                        f"heads of width {dh}, where the model's heads are {self.n_heads} of width {self.head_dim}")
        return ""

    # -- modules -----------------------------------------------------------------------------
    def check_layer(self, layer) -> int:
        """`layer` as a block index 0..n_layers-1 (negative indices count from the end, as in Python)."""
        return block_index(layer, self.n_layers)

    def site(self, site: str, layer: int) -> Ref:
        """The module (and call) whose output (resid/attn/mlp/mixer) or input (heads/neurons/mlp_in) is
        `site` ("mixer": the token mixer of a block without attention, as Mamba's; "mlp_in": the MLP's
        input, after its pre-MLP norm: `mlp_input`)."""
        self.require("interventions")
        layer = self.check_layer(layer)
        if site == "mlp_in":
            return self.mlp_input(layer)
        table = {"resid": self.blocks, "attn": _after(self.attn_out, self.attn_post), "heads": self.attn_out,
                 "mlp": _after(self.mlp, self.mlp_post), "neurons": self.mlp_out,
                 "mixer": self.mixer_out or [None] * self.n_layers}
        if site not in table:
            raise DoesNotApplyError(f"unknown site {site!r}; use one of {tuple(table)}")
        ref = table[site][layer]
        if ref is None:
            why = (self.no_neurons(layer) if site == "neurons" else self.no_attention(layer)
                   if site in ("attn", "heads") else self.no_mixer(layer) if site == "mixer"
                   else f"block {layer} has no MLP")
            raise DoesNotApplyError(f"layer {layer} has no {site!r} site: {why}.")
        return ref

    def mlp_input(self, layer: int) -> Ref:
        """The module whose first input is block `layer`'s MLP input (the "mlp_in" site, after the
        pre-MLP norm; TransformerLens's ln2.hook_normalized): the "mlp" module where it is the whole MLP
        (a mixture of experts, or Layout(mlp=...)), else the innermost module inside the block that
        holds the MLP output projection and another weight matrix reading the model's width (the up
        projection) but not the attention or the mixer. Raises saying why where there is none (an MLP
        whose linear maps sit directly in the block, or split over two modules)."""
        out, whole = self.mlp_out[layer], self.mlp[layer]
        if whole is not None and (out is None or whole.path != out.path):
            return whole
        if out is None:
            raise DoesNotApplyError(f"layer {layer} has no 'mlp_in' site: block {layer} has no MLP.")
        block = self.blocks[layer].path
        others = [r.path for r in (self.attn_out[layer], self.mixer_out[layer] if self.mixer_out else None) if r]
        parts = out.path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            path = ".".join(parts[:i])
            if len(path) <= len(block) or any(p.startswith(path + ".") for p in others):
                break
            mod = get_module(self.model, path)
            rel = out.path[len(path) + 1:]
            if any(p.dim() == 2 and self.d_model in p.shape and not name.startswith(rel + ".")
                   for name, p in mod.named_parameters()):
                return Ref(mod, out.call, path, out.calls)
        raise DoesNotApplyError(
            f"layer {layer} has no 'mlp_in' site: no one module of block {block!r} holds its MLP (its output "
            f"projection {out.path!r} and an up projection, without the attention), so there is no module whose "
            f"input is the MLP's input. Pass llm_widgets.Layout(mlp='path.in.block') naming the MLP module.")

    def no_mixer(self, layer: int) -> str:
        """Why block `layer` has no "mixer" site ('' where it has one): its tokens are mixed by attention
        (the "attn" site), or by no single module whose output is the block's mixing contribution."""
        if self.mixer_out and self.mixer_out[layer] is not None:
            return ""
        if self.attn_out[layer] is not None:
            return f"block {layer} mixes its tokens with attention (its 'attn' site)"
        mixer = self.mixers[layer] if self.mixers else "no module found"
        return (f"block {layer}'s tokens are mixed by {mixer}, not one module called once whose output is "
                f"the model's width")

    def no_neurons(self, layer: int) -> str:
        """Why block `layer` has no neuron layer ('' where it has one); names the blocks that do."""
        if self.n_neurons and self.n_neurons[layer]:
            return ""
        dense = [i for i, n in enumerate(self.n_neurons) if n]
        if self.mlp and self.mlp[layer] is not None:
            why = (f"block {layer}'s MLP is a mixture of experts, which has no single neuron layer (its 'mlp' "
                   f"site is the whole expert block's output)")
        else:
            why = self.reasons.get("neurons") or f"block {layer} has no MLP neuron layer"
        return why + (f"; the blocks with dense MLP neurons are {dense}" if dense else "")

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The model's own logits from a residual-stream state h [..., D]: final norm, head,
        soft-capping and scaling, as the model does after its last block."""
        self.require("logit_lens")
        return readout.logits(h, lambda path, x: get_module(self.model, path)(x), self.final_norm, self.head,
                              self.logit_scale, self.softcap)

    def describe(self) -> str:
        if "interventions" in self.reasons:
            return f"{self.kind} model, {self.n_layers} layers x {self.n_heads} heads; {self.reasons['interventions']}"
        b = self.blocks[0]
        mlp = "MoE" if self.moe else (self.mlp_out[0].path if self.mlp_out[0] else "none")
        have = self.attention_blocks
        others = sorted({self.mixers[l] for l in range(self.n_layers) if l not in have}) if self.mixers else []
        att = (self.attn_out[have[0]].path if have else "none") + (
            f" (blocks {have}; the others: {', '.join(others)})" if others else "")
        return (f"{self.kind}, {self.n_layers} layers x {self.n_heads} heads ({self.n_kv_heads} kv, head_dim "
                f"{self.head_dim}), d_model {self.d_model}; blocks {b.path}{' (shared)' if self.shared else ''}, "
                f"attention out {att}, MLP out {mlp}, "
                f"{'parallel' if self.parallel else 'sequential'}; readout "
                f"{' -> '.join(self.final_norm + [self.head]) if self.head else 'none'}"
                f"{f', soft-cap {self.softcap}' if self.softcap else ''}")


def _after(branch: list, post: list) -> list:
    """Per block: the branch's post-norm where it has one (what the branch adds to the residual),
    else the branch's own output module."""
    return [p if i < len(post) and (p := post[i]) is not None else b for i, b in enumerate(branch)]
