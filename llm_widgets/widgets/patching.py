"""PatchingView: activation patching (which activations carry the difference between two inputs)."""
from __future__ import annotations

import numpy as np
import traitlets as t

from .. import fallback
from ..compute.patching import SITES, patching
from ..errors import LLMWidgetsError
from .base import View
from .traits import Array, Fixed, Index, Layer, Record

DIRECTIONS = ("denoising", "noising")


class PatchingView(View):
    """Activation patching: which activations carry the difference between two inputs.

    >>> PatchingView(session, clean="When Mary and John went to the store, John gave a drink to",
    ...              corrupted="When Mary and John went to the store, Mary gave a drink to",
    ...              metric="logit_diff", answers=(" Mary", " John"))

    Three heatmaps (residual stream, attention output, MLP output; layer x position) and one per
    head show the normalized metric after restoring that clean activation into the corrupted run
    (0 = corrupted, 1 = clean). Click a cell: `selected_site`, `selected_layer`, `selected_token`
    (the position; or `selected_head`) update, and the patched run's top outputs are shown.
    In a notebook it computes in a thread (progress bar; `.wait()` blocks until done).

    direction: "denoising" (default, as above: run the corrupted input, restore one clean
    activation; a high score means that activation is enough to bring the clean answer back) or
    "noising": run the clean input and insert one corrupted activation. Noising is patching with
    the two texts swapped and `answers` reversed (a pair (correct, wrong) becomes (wrong, correct)):
    the score is then 0 = the clean output, 1 = the corrupted output; a high score means corrupting
    that one activation is enough to break the clean behaviour (it needs that activation to be
    clean; with logit_diff the same scores as reading the answers unswapped). In `.result` "clean"
    then names the source of the inserted activations, the corrupted text, and `tokens` are the
    clean text's; the view (its traits and labels) keeps the user's names: `clean_tokens` and
    `summary["clean"]` are the clean text's in both directions.
    """

    _bundle_name = "patching"
    direction = t.Enum(DIRECTIONS, default_value="denoising", read_only=True).tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)  # the corrupted text's (in both directions); columns: positions
    clean_tokens = t.List(t.Unicode()).tag(sync=True)  # the clean text's
    sites = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_heads = t.Int(0).tag(sync=True)
    scores = Array("float32", ndim=3).tag(sync=True)  # [sites, L, T]
    head_scores = Array("float32", ndim=2).tag(sync=True)  # [L, H]
    top_index = Array("int32", ndim=4).tag(sync=True)  # [sites, L, T, k] into top_tokens
    top_probs = Array("float32", ndim=4).tag(sync=True)
    head_top_index = Array("int32", ndim=3).tag(sync=True)  # [L, H, k]
    head_top_probs = Array("float32", ndim=3).tag(sync=True)
    top_tokens = t.List(t.Unicode()).tag(sync=True)
    # metric name, the clean/corrupted texts' values and top outputs ({} until computed)
    summary = Record({"metric": t.Unicode(), "clean": t.Float(), "corrupted": t.Float(), "position": t.Int(),
                      "changed": t.List(t.Int()), "clean_top": t.List(Fixed(t.Unicode(), t.Float())),
                      "corrupted_top": t.List(Fixed(t.Unicode(), t.Float()))}, empty=True).tag(sync=True)
    selected_site = t.Enum(SITES + ("heads",), default_value=None, allow_none=True).tag(sync=True)
    selected_layer = Layer().tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)
    selected_head = Index("n_heads").tag(sync=True)

    def __init__(self, session, clean: str, corrupted: str, *, metric="logit_diff", answers=None,
                 position: int = -1, sites=None, per_head: bool = True, batch_size: int | None = None,
                 background: bool | None = None, direction: str = "denoising", **kwargs):
        self.result = None
        if not isinstance(direction, str) or direction not in DIRECTIONS:
            raise LLMWidgetsError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if direction == "noising":  # the clean run, corrupted activations: the same sweep, swapped
            clean, corrupted = corrupted, clean
            if isinstance(answers, (list, tuple)):
                answers = tuple(answers)[::-1]
            kwargs.setdefault("notice", "Noising: the run is the clean text and each cell inserts one activation "
                                        "from the corrupted text. 0 = the clean output, 1 = the corrupted output.")
        self.set_trait("direction", direction)
        kind = " (noising)" if direction == "noising" else ""
        self._session_adapter = session.adapter
        super().__init__(title=kwargs.pop("title", f"Activation patching{kind} \u00b7 {session.name}"),
                         n_layers=session.n_layers, n_heads=session.n_heads, **kwargs)

        def work(report):
            return patching(session, clean, corrupted, metric=metric, answers=answers, position=position,
                            sites=sites, per_head=per_head, batch_size=batch_size, report=report)

        self._run(work, self._show, background)

    def _show(self, r):
        self.result = r
        clean = (r.clean_tokens, r.clean_metric, r.clean_top)
        corrupted = (r.tokens, r.corrupted_metric, r.corrupted_top)
        if self.direction == "noising":  # r was computed with the texts swapped: show the user's
            clean, corrupted = corrupted, clean
        state = dict(tokens=corrupted[0], clean_tokens=clean[0], sites=list(r.sites), top_tokens=r.top_tokens,
                     scores=r.scores, top_index=r.top_index, top_probs=r.top_probs,
                     summary={"metric": r.metric, "clean": clean[1], "corrupted": corrupted[1],
                              "position": r.position, "changed": r.changed,
                              "clean_top": [[a, p] for a, p in clean[2]],
                              "corrupted_top": [[a, p] for a, p in corrupted[2]]})
        if r.head_scores is not None:  # NaN in .result where a block has no (or fewer) heads: 0 on screen
            state.update(head_scores=np.nan_to_num(r.head_scores, nan=0.0), head_top_index=r.head_top_index,
                         head_top_probs=np.nan_to_num(r.head_top_probs, nan=0.0), n_heads=r.head_scores.shape[1])
            empty = np.isnan(r.head_scores)
            if empty.any():
                why = [self._session_adapter.no_attention(l) or f"block {l} has {int((~empty[l]).sum())} heads"
                       for l in range(empty.shape[0]) if empty[l].any()]
                state["notice"] = " ".join(x for x in (self.notice, f"Heads: {'; '.join(why)} (empty cells)."
                                                      ) if x)
        with self.hold_sync():
            for key, value in state.items():
                setattr(self, key, value)

    def _static_figure(self) -> str:
        r = self.result
        if r is None:
            return ""
        run, source = ("clean", "corrupted") if self.direction == "noising" else ("corrupted", "clean")
        return "".join(fallback.heatmap(r.scores[i], f"Patching {site}: rows = blocks, columns = positions; the "
                                        f"{run} run, one {source} activation patched in: 0 = {run} output, "
                                        f"1 = {source} output", signed=True, vmax=1.0)
                       for i, site in enumerate(r.sites))

