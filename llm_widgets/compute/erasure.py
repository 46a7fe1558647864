"""Concept erasure: LEACE (Belrose et al. 2023, the `concept-erasure` package) fitted on one block's
output states, applied in the forward as an affine op; a random projection of the same rank as the
control; and the amnesic-probing numbers (Elazar et al. 2021): a fresh probe trained after erasure,
and the model's own task metric with the concept erased.

    e = erase_concept(s, texts, labels, layer=-1, positions="readout")
    with e:                                  # every forward of this thread sees the erased states
        ...
    amnesic(s, e, texts, labels)             # probe before / after, task metric erased vs random

"linearly erasable here" is not "used here": erasing at every token of a block can leave the
model's output unchanged while erasing at the one position its head reads does not.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..checks import integer
from ..errors import LLMWidgetsError
from ..execution import Program, Read, Write, intervene, ops, run
from ..layers import block_index
from .activations import batch_plan, check_texts, padded_batch
from .progress import Report, no_progress
from .steering_ops import Affine

POSITIONS = ("all", "readout")


def readout_position(session) -> int:
    """The position of the last block's output that the model's head reads: -1 (the last token) for
    a language model, else found by a test: the one position whose change moves the classifier's
    logits (0 for BERT's [CLS], -1 for a causal classifier). Heads that pool several positions are
    refused: they have no single readout position."""
    ad = session.adapter
    if ad.output is None:
        raise LLMWidgetsError(f"{session.name} has no output head: there is no readout position. Use positions='all' "
                              "or a token index.")
    if ad.output == "lm":
        return -1
    enc, _, _ = session.encode("the quick brown fox jumps over it")
    T = enc["input_ids"].shape[1]
    rows = {k: v.expand(T + 1, *v.shape[1:]) for k, v in enc.items()}
    g = torch.Generator().manual_seed(0)
    push = torch.randn(ad.d_model, generator=g) * 10.0
    writes = [Write("resid", ad.n_layers - 1, ops.Add(push, positions=[t]), rows=(t + 1,)) for t in range(T)]
    lg = run(session, Program(rows, writes=writes, logits=[0], label="readout position")).logits
    lg = lg.reshape(T + 1, -1).float()
    moved = [t for t in range(T) if float((lg[t + 1] - lg[0]).abs().max()) > 1e-4 * max(1.0, float(lg[0].abs().max()))]
    if moved == [0]:
        return 0
    if moved == [T - 1]:
        return -1
    raise LLMWidgetsError(f"{session.name}'s head reads positions {moved} of the last block's output (of {T}): "
                          "there is no single readout position. Use positions='all' or a token index.")


def _positions(session, positions):
    if isinstance(positions, str):
        if positions not in POSITIONS:
            raise LLMWidgetsError(f"positions must be 'all', 'readout' or a token index, got {positions!r}")
        return readout_position(session) if positions == "readout" else None
    return integer(positions, "positions")


def block_states(session, texts, layer: int, position, *, writes=(), batch_size: int = 32,
                 report: Report = no_progress) -> tuple[np.ndarray, np.ndarray]:
    """(states [N, D] float32 of block `layer`'s output, the text of each row [N]) at `position`
    (None: every non-padding token of each text; an int: that token of each text, negative from its
    end), read after `writes` act (a read at a written site sees the written value). With a negative
    position every text runs alone (no padding: a write at -1 lands on the text's last token)."""
    if position is not None and position < 0:
        batch_size = 1
    tok = session.tokenizer
    encs = [tok(t) for t in texts]
    keys, batches = batch_plan(encs, batch_size)
    rows, owner = [], []
    for k, chunk in enumerate(batches):
        batch, width = padded_batch(session, encs, chunk, keys)
        b_idx, t_idx = [], []
        for b, i in enumerate(chunk):
            n = len(encs[i]["input_ids"])
            if position is None:
                ts = list(range(n))
            else:
                if not -n <= position < n:
                    raise LLMWidgetsError(f"position {position} is outside texts[{i}] ({n} tokens)")
                ts = [position % n]
            b_idx += [b] * len(ts)
            t_idx += ts
            owner += [i] * len(ts)
        res = run(session, Program(batch, writes=list(writes), stop=True, label="erasure states",
                                   reads=[Read("resid", layer, reduce=ops.Pick(b_idx, t_idx), name="x")]))
        rows.append(res.reads["x"].float().cpu().numpy())
        report((k + 1) / len(batches), "block states")
    return np.concatenate(rows), np.asarray(owner)


@dataclass
class Erasure:
    """An affine eraser x -> x - ((x - bias) @ right.T) @ left.T at block `layer`'s output, at
    `position` (None: every position; an int: that position of each input). A negative position
    counts from the end of the input as the model gets it: with right-padded batches that is a
    padding token, so run such an eraser on unpadded (or left-padded) inputs; this library's own
    runs of it do (one text per run). A context: `with e: ...`."""

    layer: int
    position: int | None
    left: np.ndarray  # [D, k]
    right: np.ndarray  # [k, D]
    bias: np.ndarray | None
    rank: int
    kind: str = "leace"  # or "random"
    classes: tuple = ()
    session: Any = field(default=None, repr=False, compare=False)
    _stack: list = field(default_factory=list, repr=False, compare=False)

    def op(self) -> Affine:
        pos = None if self.position is None else [self.position]
        bias = None if self.bias is None else torch.as_tensor(self.bias, dtype=torch.float32)
        return Affine(torch.as_tensor(self.left, dtype=torch.float32), torch.as_tensor(self.right, dtype=torch.float32),
                      bias, pos)

    def writes(self) -> list[Write]:
        return [Write("resid", self.layer, self.op())]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The eraser on states [N, D] here (what the op does in the forward)."""
        x = np.asarray(x, np.float64)
        delta = x - self.bias if self.bias is not None else x
        return x - (delta @ self.right.T) @ self.left.T

    def __enter__(self):
        stack = ExitStack()
        stack.enter_context(intervene(self.session, self.writes()))
        self._stack.append(stack)
        return self

    def __exit__(self, *exc):
        self._stack.pop().close()
        return False


def _rank(left: np.ndarray, right: np.ndarray) -> int:
    s = np.linalg.svd(left.astype(np.float64) @ right.astype(np.float64), compute_uv=False)
    return int((s > 1e-4 * max(1.0, float(s.max(initial=0.0)))).sum())


def erase_concept(session, texts, labels, *, layer, positions="readout", batch_size: int = 32,
                  report: Report = no_progress) -> Erasure:
    """Fit LEACE on block `layer`'s output states of `texts` at `positions` ('all': every token,
    each with its text's label; 'readout': the position the model's head reads, see
    `readout_position`; an int: that token of each text) and return the eraser: a context that
    applies it there in every forward of this thread while inside (composes with steer/ablate)."""
    session.adapter.require("interventions")
    texts = check_texts(texts)
    labels = [str(v) for v in labels]
    if len(labels) != len(texts):
        raise LLMWidgetsError(f"got {len(labels)} labels for {len(texts)} texts: one label per text")
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        raise LLMWidgetsError("erasing a concept needs texts of at least two classes")
    layer = block_index(layer, session.adapter.n_layers)
    pos = _positions(session, positions)
    X, owner = block_states(session, texts, layer, pos, batch_size=batch_size, report=report)
    return fit_erasure(session, X, [labels[i] for i in owner], layer, pos)


def fit_erasure(session, X: np.ndarray, labels, layer: int, position) -> Erasure:
    """The LEACE eraser of states X [N, D] (block `layer`'s output at `position`) and their labels."""
    from concept_erasure import LeaceFitter

    labels = [str(v) for v in labels]
    classes = tuple(sorted(set(labels)))
    y = np.asarray([classes.index(v) for v in labels])
    Z = np.eye(len(classes))[y][:, 1:] if len(classes) == 2 else np.eye(len(classes))[y]
    eraser = LeaceFitter.fit(torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(Z, dtype=torch.float64)).eraser
    left, right = eraser.proj_left.numpy(), eraser.proj_right.numpy()
    return Erasure(layer=layer, position=position, left=left, right=right, bias=eraser.bias.numpy(),
                   rank=_rank(left, right), classes=classes, session=session)


def random_erasure(erasure: Erasure, seed: int = 0) -> Erasure:
    """The control: an orthogonal projection out of `erasure.rank` random directions (about the same
    mean), at the same layer and positions."""
    D = erasure.left.shape[0]
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((D, erasure.rank)))
    e = Erasure(layer=erasure.layer, position=erasure.position, left=q, right=q.T.copy(), bias=erasure.bias,
                rank=erasure.rank, kind="random", classes=erasure.classes, session=erasure.session)
    return e
