"""One description of a model run: what to read, what to write, which outputs come back.

    run(session, Program(enc, reads=[Read("neurons", l) for l in range(L)], logits=None, stop=True))

Compute functions write a Program once; an executor (`llm_widgets.execution.executor_of`) runs
it: with torch hooks on the model here (native), or as one nnsight trace (here, or on a server).

Sites (per block; where they are comes from the adapter, llm_widgets.adapter):
- "resid": the residual stream after the block (the block's output); layer EMBEDDINGS: before the
  first block (its input: the embedding output),
- "attn": the attention output added to the residual (the attention output projection's output),
- "mlp": the MLP output added to the residual (a mixture of experts: the whole block's output),
- "heads": the per-head attention outputs, the input of the output projection, [.., H * d_head],
- "neurons": the MLP neuron activations, the input of the MLP output projection,
- "mlp_in": the MLP's input, after its pre-MLP norm (the input of the MLP module),
- "mixer": a block's token mixer other than attention (state-space, linear attention, convolution):
  its output.
A write acts where the site is (the output, or the input of the modules named), before the rest
of the forward sees it; a read at the same site sees the written value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ..layers import EMBEDDINGS

SITES = ("resid", "attn", "mlp", "heads", "neurons", "mixer", "mlp_in")
INPUT_SITES = ("heads", "neurons", "mlp_in")  # read at a module's input; the others at an output


def is_input_site(site: str, layer=None) -> bool:
    """Whether `site` is read at a module's input (the embedding output: the first block's input)."""
    return site in INPUT_SITES or layer == EMBEDDINGS


@dataclass(frozen=True)
class Read:
    """An activation read at (site, layer), reduced where it is by `reduce` (an op of
    llm_widgets.execution.ops: positions, pooling, readout; None: the whole [B, T, F])."""

    site: str
    layer: Any  # a block index, or EMBEDDINGS with site "resid"
    reduce: Any = None
    name: Optional[str] = None  # the key of the result (default: (site, layer))

    @property
    def key(self):
        return self.name if self.name is not None else (self.site, self.layer)


@dataclass(frozen=True)
class Write:
    """The activation at (site, layer) replaced by `op(activation)` (an op of
    llm_widgets.execution.ops) in batch rows `rows` (None: all)."""

    site: str
    layer: Any
    op: Any
    rows: Optional[Sequence[int]] = None


@dataclass
class Program:
    """A run: `inputs` (the tokenizer's tensors, [B, T]), `writes` and `reads` at sites,
    `logits` (positions whose output logits come back: [B, P, V] (or [B, C] for a classifier);
    "all": every position; "model_output": the whole output object, for `output` to read; None:
    none), `output` (an op applied to those logits where they are, so only its result travels),
    `hidden` (every hidden state, [L + 1, B, T, D], reduced by
    `hidden_reduce`, from the base model when `base_only`) and `stop` (the forward may end after the
    last read: nothing after it is needed). `grad`: run with autograd (what comes back keeps its
    graph: native runs only). `gradients`: the gradient of each of the K columns of `output`'s [B, K]
    result with respect to the value of the write whose op is a leaf (`ops.Replace(leaf=True)`),
    taken where the model runs: `Result.grads` [K, B, T, F]."""

    inputs: dict
    reads: Sequence[Read] = ()
    writes: Sequence[Write] = ()
    logits: Any = None
    output: Any = None
    hidden: bool = False
    hidden_reduce: Any = None
    base_only: bool = False
    stop: bool = False
    grad: bool = False
    gradients: bool = False
    label: str = "run"
    extra: dict = field(default_factory=dict)  # keyword arguments the model's forward takes as they are


@dataclass
class Result:
    """What a program's run returned: `reads` by key, `logits` (or the output op's result), `hidden`."""

    reads: dict
    logits: Any = None
    hidden: Any = None
    output: Any = None  # the model output object (native runs only; None through a remote executor)
    grads: Any = None  # [K, B, T, F] (Program.gradients)

