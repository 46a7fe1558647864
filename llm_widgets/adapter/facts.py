"""The adapter's records: a user's Layout, one layer's module Ref, and the Adapter's model facts."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DoesNotApplyError, LLMWidgetsError


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
    attn_out: list[Ref] = field(default_factory=list)
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

    # -- what applies ------------------------------------------------------------------------
    def require(self, what: str) -> None:
        """Raise DoesNotApplyError (one message for every view) unless `what` applies:
        'interventions' (hooks, ablation, patching), 'neurons', 'logit_lens', 'patching'."""
        why = self.why_not(what)
        if why:
            raise DoesNotApplyError(why)

    def why_not(self, what: str) -> str:
        if "interventions" in self.reasons:
            return self.reasons["interventions"]
        if what == "neurons" and not any(self.n_neurons):
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
        """The residual/attention/MLP sites present in every layer."""
        return ("resid", "attn") + (("mlp",) if all(self.mlp) else ())

    # -- modules -----------------------------------------------------------------------------
    def check_layer(self, layer) -> int:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < self.n_layers:
            raise LLMWidgetsError(f"layer {layer!r} is out of range: this model has layers 0..{self.n_layers - 1}.")
        return int(layer)

    def site(self, site: str, layer: int) -> Ref:
        """The module (and call) whose output (resid/attn/mlp) or input (heads/neurons) is `site`."""
        self.require("interventions")
        layer = self.check_layer(layer)
        table = {"resid": self.blocks, "attn": self.attn_out, "heads": self.attn_out, "mlp": self.mlp,
                 "neurons": self.mlp_out}
        if site not in table:
            raise DoesNotApplyError(f"unknown site {site!r}; use one of {tuple(table)}")
        ref = table[site][layer]
        if ref is None:
            why = self.why_not("neurons") if site == "neurons" else "this model's blocks have no MLP"
            raise DoesNotApplyError(f"layer {layer} has no {site!r} site: {why}.")
        return ref

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The model's own logits from a residual-stream state h [..., D]: final norm, head,
        soft-capping and scaling, as the model does after its last block."""
        self.require("logit_lens")
        for path in self.final_norm:
            h = first_output(get_module(self.model, path)(h))
        logits = first_output(get_module(self.model, self.head)(h))
        return self._post(logits)

    def _post(self, logits: torch.Tensor) -> torch.Tensor:
        if self.logit_scale != 1.0:
            logits = logits * self.logit_scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def describe(self) -> str:
        if "interventions" in self.reasons:
            return f"{self.kind} model, {self.n_layers} layers x {self.n_heads} heads; {self.reasons['interventions']}"
        b = self.blocks[0]
        mlp = "MoE" if self.moe else (self.mlp_out[0].path if self.mlp_out[0] else "none")
        return (f"{self.kind}, {self.n_layers} layers x {self.n_heads} heads ({self.n_kv_heads} kv, head_dim "
                f"{self.head_dim}), d_model {self.d_model}; blocks {b.path}{' (shared)' if self.shared else ''}, "
                f"attention out {self.attn_out[0].path}, MLP out {mlp}, "
                f"{'parallel' if self.parallel else 'sequential'}; readout "
                f"{' -> '.join(self.final_norm + [self.head]) if self.head else 'none'}"
                f"{f', soft-cap {self.softcap}' if self.softcap else ''}")
