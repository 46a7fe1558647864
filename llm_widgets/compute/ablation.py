"""Ablation: attention heads and MLP neurons switched off (zero) or set to their mean while inside a
`with ablate(...)` block, and what that does to the output probabilities.

    with ablate(session, heads=[(1, 3)]):          # zero head 3 of layer 1
        out = session.forward(**enc)
"""
from __future__ import annotations

import operator
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..checks import integer
from ..errors import LLMWidgetsError
from ..guards import clean
from ..execution import Program, Read, Write, intervene, ops, run
from ..execution.hooks import check_layer
from .outputs import output_names
from .inputs import batch_inputs
from .patching import output_position

MODES = ("zero", "mean", "resample")


def _index(value) -> int:
    """An integer (a Python, numpy or 0-d torch one), never a bool, 1.5 or "1" read as one."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(value)
    return operator.index(value)


def _check_units(session, units, what: str, size_of: Callable[[int], int]) -> list[tuple[int, int]]:
    if isinstance(units, (str, bytes)) or not (units is None or isinstance(units, Iterable)):
        raise LLMWidgetsError(f"{what} must be a list of (layer, index) pairs, got {units!r}")
    out = []
    for item in () if units is None else units:
        try:
            layer, unit = (_index(v) for v in item)
        except (TypeError, ValueError):
            raise LLMWidgetsError(f"{what} must be (layer, index) pairs of integers, got {item!r}") from None
        check_layer(session.model, layer)
        n = size_of(layer)
        if not 0 <= unit < n:
            raise LLMWidgetsError(f"{what[:-1]} {unit} is out of range in layer {layer}: valid 0..{n - 1}.")
        out.append((layer, unit))
    return out


def num_neurons(session, layer: int) -> int:
    ad = session.adapter
    ad.site("neurons", layer)  # says why, where there are none
    return ad.n_neurons[layer]


def unit_columns(session, heads, neurons) -> dict:
    """{(site, layer): [columns]} of the units to ablate, checked: a head's columns of the attention
    output before its projection (its block's own head width: `Adapter.head_layout`), a neuron's
    column. Shared by `ablate` and `ablation_effect`."""
    ad = session.adapter
    heads = _check_units(session, heads, "heads", lambda l: ad.head_layout(l)[0])
    neurons = _check_units(session, neurons, "neurons", lambda l: num_neurons(session, l))
    by_site: dict = {}
    for layer, hd in heads:
        dh = ad.head_layout(layer)[1]
        by_site.setdefault(("heads", layer), []).extend(range(hd * dh, (hd + 1) * dh))
    for layer, n in neurons:
        by_site.setdefault(("neurons", layer), []).append(n)
    return by_site


def unit_writes(by_site: dict, mode: str, values=None, rows=None) -> list[Write]:
    """The writes that ablate the units `by_site` ({(site, layer): columns}, from `unit_columns`) in
    `mode`; 'resample' takes `values` {(site, layer): [B, T, F] activation} (the donor's)."""
    writes = []
    for (site, layer), cols in by_site.items():
        idx = torch.tensor(sorted(set(cols)))
        if mode == "resample":
            op = ops.Columns(idx, "set", values[(site, layer)][..., idx.to(values[(site, layer)].device)])
        else:
            op = ops.Columns(idx, mode)
        writes.append(Write(site, layer, op, rows))
    return writes


@contextmanager
def ablate(session, heads=(), neurons=(), mode: str = "zero", donor=None):
    """Ablate attention heads and/or MLP neurons, given as (layer, index) pairs, while inside.

    mode 'zero' sets their output to 0; 'mean' replaces it with its mean over the positions (and
    batch) of the current input; 'resample' replaces it with the same units' output on `donor`
    (a text, texts with the same number of tokens, or token ids [batch, tokens]: the same shape as
    every input run inside the block; another shape raises), computed once on entry on the clean
    model: without this thread's other ablations, also inside an outer `ablate` block (as in causal
    scrubbing, Chan et al. 2022). Heads are cut at the attention output before the output
    projection, so the head's contribution (and only it) is removed.

    The ablation acts on the forwards of the thread that entered the block (nested blocks compose),
    and the model lock is not held inside it: a background view started before the block keeps
    computing on the unablated model, and waiting for it inside the block (`v.wait()`,
    `v.to_html(...)`) does not hang; a view started inside the block computes in this thread, on the
    ablated model. The same on every executor (`llm_widgets.execution.intervene`): on one that runs the
    model elsewhere the ablation travels with every run this thread sends while inside.
    """
    check_mode(mode, donor)
    session.adapter.require("interventions")
    by_site = unit_columns(session, heads, neurons)
    given = None
    if mode == "resample":
        given = _donor_activations(session, batch_inputs(session, donor, "donor"), list(by_site))
    with intervene(session, unit_writes(by_site, mode, given)):
        yield


def check_mode(mode, donor) -> None:
    """An ablation's mode and donor go together: 'resample' needs a donor, the others take none."""
    if mode not in MODES:
        raise LLMWidgetsError(f"mode must be 'zero', 'mean' or 'resample', got {mode!r}")
    if (mode == "resample") != (donor is not None):
        raise LLMWidgetsError("mode='resample' needs donor=... (text(s) or input_ids shaped like the input whose "
                              "units take the donor's values)" if donor is None else
                              f"donor is only used with mode='resample', not mode={mode!r}")


def donor_mismatch(donor_shape, input_shape) -> LLMWidgetsError:
    return LLMWidgetsError(f"resample ablation: the donor is [batch, tokens] = {list(donor_shape[:2])}, this run's "
                           f"input is {list(input_shape[:2])}; give a donor with the same shape as the input.")


def _donor_activations(session, inputs: dict, sites: list) -> dict:
    """{(site, layer): activation [B, T, F]} of the units' sites on the donor's `inputs` (resample
    ablation), on the clean model (no ablation of an enclosing block)."""
    with clean():
        res = run(session, Program(inputs, reads=[Read(s, l) for s, l in sites], stop=True, label="donor"))
    return res.reads


@dataclass
class AblationEffect:
    """Output probabilities at one position before and after an ablation."""
    outputs: list[str]  # the candidate outputs (tokens or classes) shown, most changed first
    ids: list[int]  # their vocabulary / class indices
    before: np.ndarray  # [k] probabilities without the ablation
    after: np.ndarray  # [k] with it
    position: int
    note: str = ""

    @property
    def change(self) -> np.ndarray:
        return self.after - self.before


def ablation_effect(session, text: str, heads=(), neurons=(), mode: str = "zero", position: int = -1,
                    k: int = 10, donor=None) -> AblationEffect:
    """Probabilities of the `k` outputs whose probability changes most when ablating, at `position`
    (default: the last token, i.e. the next-token prediction; the class for classifiers).
    mode='resample' takes the units' outputs on `donor`, a text with as many tokens as `text`.
    One run of two rows (row 0 as it is, row 1 ablated); resample: one more for the donor."""
    position = integer(position, "position")
    session.adapter.require("interventions")
    k = integer(k, "k", low=1)
    check_mode(mode, donor)
    if session.adapter.output is None:
        raise LLMWidgetsError(f"{session.name} has no output head (no logits): there are no output "
                              f"probabilities to compare. Use a causal LM or a classifier.")
    enc, _, _ = session.encode(text)
    output_position(position, enc["input_ids"].shape[1])
    by_site = unit_columns(session, heads, neurons)
    given = None
    if mode == "resample":
        donor_inputs = batch_inputs(session, donor, "donor")
        if tuple(donor_inputs["input_ids"].shape) != tuple(enc["input_ids"].shape):
            raise donor_mismatch(donor_inputs["input_ids"].shape, enc["input_ids"].shape)
        given = _donor_activations(session, donor_inputs, list(by_site))
    two = {key: v.expand(2, *v.shape[1:]) for key, v in enc.items()}
    res = run(session, Program(two, writes=unit_writes(by_site, mode, given, rows=(1,)),
                               logits=[position], label="ablation"))
    lg = res.logits[:, 0] if res.logits.dim() == 3 else res.logits
    before, after = torch.softmax(lg[0].float(), -1), torch.softmax(lg[1].float(), -1)
    order = torch.argsort((after - before).abs(), descending=True)[:k].tolist()
    return AblationEffect(outputs=output_names(session, order), ids=order, before=before[order].cpu().numpy(),
                          after=after[order].cpu().numpy(), position=position)
