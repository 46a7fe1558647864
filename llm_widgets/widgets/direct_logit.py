"""DirectLogitView: every head's (and every other part's) direct share of one logit, at a chosen position."""
from __future__ import annotations

import numpy as np
import traitlets as t

from .. import fallback
from ..checks import integer
from ..compute.direct_logit import direct_logit_attribution, unresolved_note, why_not_grid
from ..compute.inputs import batch_inputs
from ..errors import DoesNotApplyError, LLMWidgetsError
from ..guards import model_state
from .base import View, encode_array, unexpected_keyword
from .traits import Array, Index, Layer, Record

# what the view says of the selected position: the metric, the model's value of it (logit), the sum
# of the shares (total), their relative error, the tolerance it was held to, the resolution below
# which the value is unresolved (and whether it is)
SUMMARY = Record({"metric": t.Unicode(), "position": t.Int(), "token": t.Unicode(),
                  **{k: t.Float() for k in ("logit", "total", "error", "tolerance", "resolution")},
                  "unresolved": t.Bool()}, allow_none=True)

CHANGED = ("The model changed since the first shares were computed (its weights were edited, or hooks act on it): "
           "every position shown is computed again on the model as it is now.")
ALL_AT_ONCE = 1 << 25  # parts x positions x vocabulary up to which every position is computed up front
EXPORT_ALL = 1 << 28  # ... and up to which an export computes the rest (token clicks then work without a kernel)


class DirectLogitView(View):
    """Direct logit attribution (lw.direct_logit_attribution) of one target, position by position.

    >>> DirectLogitView(session, "The cat sat on the", target=" mat", contrast="mean")

    For the selected position (`selected_token`; default the last) it shows every head's direct share
    of the logit of `target` (minus `contrast`'s: a token, "mean" or None) as a layers x heads heatmap,
    the other parts (embeddings, attention biases, each MLP, readout bias) as bars, and the model's own
    value next to the sum of the shares (they agree: the check is shown). Click a token to read
    another position; click a head cell to set `selected_layer` / `selected_head` (link them with
    AttentionView). Models where the logit is not such a sum raise DoesNotApplyError.
    """

    _bundle_name = "direct_logit"
    # every position's contributions when small enough; else partial
    _export_record = Record({"partial": t.Bool(), "heads": Array("float32"), "components": Array("float32"),
                             "logit": Array("float32")}, optional=("partial", "heads", "components", "logit"))
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_tokens = t.Int(0).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    n_heads = t.Int(0).tag(sync=True)
    components = t.List(t.Unicode()).tag(sync=True)  # the parts other than heads, in the function's order
    head_shares = Array("float32", ndim=2, of={"position": int}).tag(sync=True)  # [L, H] at the selected position
    component_shares = Array("float32", ndim=1, of={"position": int}).tag(sync=True)  # [K] the other parts there
    summary = SUMMARY.tag(sync=True)  # at the selected position; None: nothing selected
    selected_layer = Layer().tag(sync=True)
    selected_head = Index("n_heads").tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)

    def __init__(self, session, text: str, *, target, contrast=None, selected_token=None, **kwargs):
        unknown = [k for k in kwargs if not self.has_trait(k)]
        if unknown:  # before the work, not after it
            raise unexpected_keyword(type(self), unknown[0], self.trait_names())
        if not isinstance(text, str):
            raise LLMWidgetsError(f"text must be a string, got {type(text).__name__}")
        if isinstance(target, (list, tuple)) or np.ndim(target) != 0:  # an integer scalar (numpy, torch) is an id
            raise LLMWidgetsError("target must be one token (a string) or a token id: the view reads the same "
                                  "target at every position")
        why = why_not_grid(session)  # one layer x head grid: heads of one layout in every block
        if why:
            raise DoesNotApplyError(why)
        self._session, self._text, self._target, self._contrast = session, text, target, contrast
        T = batch_inputs(session, text)["input_ids"].shape[1]
        pos = T - 1 if selected_token is None else integer(selected_token, "selected_token")
        if not 0 <= pos < T:
            raise LLMWidgetsError(f"selected_token must be in 0..{T - 1} (the {T} tokens), got {pos}")
        # position -> (shares [C], the model's value, its resolution), all computed on the model state `_state`
        self._cache: dict[int, tuple[np.ndarray, float, float]] = {}
        self._state, self._changed = model_state(session.model), False
        self._T = T
        self._cost = (2 + session.n_layers * (session.n_heads + 2)) * T * len(session.tokenizer)
        self.result = self._compute(self._covering(pos))
        r = self.result
        self._heads = np.array([[r.components.index(f"L{l}H{h}") for h in range(r.n_heads)]
                                for l in range(r.n_layers)])
        heads = {r.components[i] for i in self._heads.ravel()}
        self._others = [i for i, c in enumerate(r.components) if c not in heads]
        super().__init__(title=kwargs.pop("title", f"Direct logit attribution \u00b7 {session.name}"),
                         tokens=r.tokens[0], n_tokens=T, n_layers=r.n_layers, n_heads=r.n_heads,
                         components=[r.components[i] for i in self._others], selected_token=pos, **kwargs)
        self._show()
        self.observe(self._show, names=["selected_token"])

    def _covering(self, position: int) -> list[int]:
        """The positions one computation covers: every one where that is cheap, else `position`."""
        return list(range(self._T)) if self._cost <= ALL_AT_ONCE else [position]

    def _compute(self, positions):
        r = direct_logit_attribution(self._session, self._text, target=self._target, contrast=self._contrast,
                                     positions=list(positions))
        for i, p in enumerate(r.positions):
            self._cache[p] = (r.values[:, 0, i].copy(), float(r.logit[0, i]), float(r.resolution[0, i]))
        return r

    def _same_model(self) -> None:
        """Every cached position comes from one state of the model: when its weights changed since (or
        hooks act on it, as in an ablate block: guards.model_state is None), the cache is dropped and
        positions are computed again on the model as it is now."""
        state = model_state(self._session.model)
        if state is None or state != self._state:
            self._changed = self._changed or (bool(self._cache) and state != self._state)  # said in the notice
            self._cache.clear()
        self._state = state

    def shares(self, position: int) -> tuple[np.ndarray, float]:
        """(shares of every component [C] in `.result.components` order, the model's value) at a position,
        on the model as it is now."""
        self._same_model()
        if position not in self._cache:
            self.result = self._compute(self._covering(position))
        return self._cache[position][:2]

    def _show(self, change=None):
        p = self.selected_token
        if p is None:  # nothing selected: nothing to draw
            with self.hold_sync():
                self.head_shares, self.component_shares, self.summary = None, None, None
            return
        values, logit = self.shares(p)
        resolution = self._cache[p][2]
        total = float(values.sum(dtype=np.float64))
        error = abs(total - logit) / max(float(np.abs(values).sum()), 1e-30)
        r = self.result
        unresolved = abs(logit) <= resolution
        notes = [CHANGED] if self._changed else []
        notes += [unresolved_note(r.metric, p, logit, resolution, r.tolerance)] if unresolved else []
        with self.hold_sync():
            self.head_shares = (values[self._heads], {"position": p})
            self.component_shares = (values[self._others], {"position": p})
            self.summary = {"metric": r.metric, "position": p, "token": self.tokens[p], "logit": logit,
                            "total": total, "error": error, "tolerance": r.tolerance, "resolution": resolution,
                            "unresolved": unresolved}
            self.notice = " ".join(notes)

    def _static_figure(self) -> str:
        p = self.selected_token
        if p is None:
            return ""
        values, logit = self.shares(p)
        metric = self.summary["metric"] if self.summary else ""
        caption = (f"Direct shares of {metric} at position {p} ({self.tokens[p]!r}) per head: rows = layers, "
                   f"columns = heads; red = raises it, blue = lowers it")
        rows = [{"part": self.components[j], "share": float(values[i])} for j, i in enumerate(self._others)]
        rows += [{"part": "model's value", "share": logit}, {"part": "sum of shares", "share": float(values.sum())}]
        return fallback.heatmap(values[self._heads], caption, signed=True) + \
            fallback.table(rows, ["part", "share"], "Other parts, the model's value and the sum of all shares")

    def export_state(self) -> dict:
        self._show()  # the selected position as the model is now (recomputed if it changed), like the rest
        return super().export_state()

    def _export_extra(self) -> dict:
        T = self.n_tokens
        self._same_model()
        missing = [p for p in range(T) if p not in self._cache]
        if missing and self._cost > EXPORT_ALL:
            return {"partial": True}
        if missing:
            self._compute(missing)
        vals = np.stack([self._cache[p][0] for p in range(T)])  # [T, C]
        return {"heads": encode_array(vals[:, self._heads], "float32"),
                "components": encode_array(vals[:, self._others], "float32"),
                "logit": encode_array(np.array([self._cache[p][1] for p in range(T)]), "float32")}
