"""FeatureView: a sparse dictionary's features on a text, sent sparsely (top features per token)."""
from __future__ import annotations

import traitlets as t

from ..checks import integer
from ..compute.corpus_top import contexts
from ..dictionaries.analysis import (edit_effect, feature_activations, feature_over_text, logit_effect,
                                     loss_recovered)
from ..dictionaries.corpus import EDGES, corpus_stats
from ..dictionaries.patching import feature_patching
from ..errors import LLMWidgetsError
from .base import View
from .neuron import CONTEXT_ROW
from .traits import Array, Fixed, Index, Map, Record

CONTEXT = 6  # tokens shown either side of a top-activating context's token
# the dictionary's fit on the text; loss (causal LMs at writable sites) or why not (loss_note)
LOSS = Record({k: t.Float() for k in ("original", "spliced", "zero", "recovered")})
QUALITY = Record({"fvu": t.Float(), "mean_l0": t.Float(), "loss": LOSS, "loss_note": t.Unicode()},
                 optional=("loss", "loss_note"), empty=True)
# a feature's direct effect on the logits (dictionaries.analysis.logit_effect): (output, value) pairs
LOGITS = Record({k: t.List(Fixed(t.Unicode(), t.Float())) for k in ("promoted", "suppressed")})
TOKEN_FEATURE = Record({"feature": t.Int(), "activation": t.Float(), "promoted": t.List(t.Unicode()),
                        "suppressed": t.List(t.Unicode())})
# the selected feature over the text; its logits (a model with an output head); its corpus statistics
# (with a corpus): contexts, histogram over EDGES, how often and how high it fires
_CORPUS = ("contexts", "hist", "edges", "fires", "density", "max")
FEATURE = Record({"id": t.Int(), "over_text": t.List(t.Float()), "logits": LOGITS, "contexts": t.List(CONTEXT_ROW),
                  "hist": t.List(t.Int()), "edges": t.List(t.Float()), "fires": t.Int(), "density": t.Float(),
                  "max": t.Float()}, optional=("logits", *_CORPUS), empty=True)
EDIT = Record({"outputs": t.List(t.Unicode()), "ids": t.List(t.Int()), "before": t.List(t.Float()),
               "after": t.List(t.Float()), "position": t.Int(), "description": t.Unicode()}, empty=True)
# the last .patch(): per patched position (str) its top (feature, score) pairs and the error term's score
PATCHING = Record({"metric": t.Unicode(), "clean_metric": t.Float(), "corrupted_metric": t.Float(),
                   "position": t.Int(), "corrupted_tokens": t.List(t.Unicode()), "positions": t.List(t.Int()),
                   "note": t.Unicode(), "top": Map(t.List(Fixed(t.Int(), t.Float()))), "error": Map(t.Float())},
                  empty=True)


class FeatureView(View):
    """The features of `dictionary` (lw.load_dictionary) on `text`.

    >>> FeatureView(session, "The cat sat on the mat", sae, corpus=texts)

    Sends each token's `k` most active features (indices and values: never tokens x features
    dense) with the reconstruction's quality per token (error norm, L0) and overall (FVU, loss
    recovered for causal LMs). Click a token (`selected_token`): its top features with their
    activations and direct logit effects. Click a feature (`selected_feature`): its activation over
    the text, its top promoted / suppressed tokens and, with `corpus=` (a list of texts, scanned once
    in the background with a progress bar and cached on disk), its top-activating contexts, an
    activation histogram and the corpus's dead features.
    """

    _bundle_name = "features"
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_features = t.Int(0).tag(sync=True)
    k = t.Int(16).tag(sync=True)
    site = t.Unicode("").tag(sync=True)
    top_ids = Array("int32", ndim=2).tag(sync=True)  # [T, k]
    top_values = Array("float32", ndim=2).tag(sync=True)  # [T, k]
    error_norm = Array("float32", ndim=1).tag(sync=True)  # [T]
    l0 = Array("int32", ndim=1).tag(sync=True)  # [T]
    quality = QUALITY.tag(sync=True)  # fvu, mean_l0, loss: original / spliced / zero / recovered (or why not)
    token_features = t.List(TOKEN_FEATURE).tag(sync=True)  # the selected token's features with their logit effects
    feature = FEATURE.tag(sync=True)  # the selected feature: over the text, logits, contexts, histogram ({}: none)
    # n_texts, n_tokens, dead (count), dead_ids (first 200) once the corpus is scanned ({}: no corpus)
    corpus_summary = Record({"n_texts": t.Int(), "n_tokens": t.Int(), "dead": t.Int(), "dead_ids": t.List(t.Int())},
                            empty=True).tag(sync=True)
    edit_probs = EDIT.tag(sync=True)  # the last edit's next-token probabilities before / after (see .edit)
    patching = PATCHING.tag(sync=True)  # the last .patch(): per position its features that restore most
    selected_token = Index("tokens").tag(sync=True)
    selected_feature = t.Int(None, allow_none=True).tag(sync=True)

    def __init__(self, session, text: str, dictionary, *, corpus=None, k: int = 16, logits: int = 8,
                 truncate: bool = False, background: bool | None = None, **kwargs):
        k = integer(k, "k", low=1)
        self._n_logits = integer(logits, "logits", low=1)
        if not isinstance(text, str):
            raise LLMWidgetsError(f"text must be a string, got {type(text).__name__}")
        self._session, self._text, self._dict, self._truncate = session, text, dictionary, truncate
        self._corpus, self._stats = (list(corpus) if corpus is not None else None), None
        unknown = [n for n in kwargs if not self.has_trait(n)]
        if unknown:
            from .base import unexpected_keyword
            raise unexpected_keyword(type(self), unknown[0], self.trait_names())
        r = feature_activations(session, text, dictionary, k=k, truncate=truncate)
        self.result = r
        self.patch_result = None  # the last .patch()'s FeaturePatchingResult
        quality = {"fvu": r.fvu, "mean_l0": float(r.l0.mean())}
        try:
            quality["loss"] = loss_recovered(session, text, dictionary, truncate=truncate)
        except LLMWidgetsError as e:
            quality["loss_note"] = str(e)
        super().__init__(title=kwargs.pop("title", f"Features \u00b7 {dictionary.name} \u00b7 {session.name}"),
                         tokens=r.tokens, n_features=r.n_features, k=k, site=r.site, **kwargs)
        with self.hold_sync():
            self.top_ids, self.top_values = r.ids, r.values
            self.error_norm, self.l0, self.quality = r.error_norm, r.l0, quality
        self.observe(self._show_token, names=["selected_token"])
        self.observe(self._show_feature, names=["selected_feature"])
        self._show_token()
        self._show_feature()
        if self._corpus is not None:
            self._run(lambda report: corpus_stats(session, dictionary, self._corpus, report=report),
                      self._corpus_done, background)

    @t.validate("selected_feature")
    def _valid_feature(self, proposal):
        f = proposal["value"]
        if f is not None and not (0 <= f < self.n_features):
            raise t.TraitError(f"selected_feature must be in 0..{self.n_features - 1}, got {f}")
        return f

    def _corpus_done(self, stats) -> None:
        self._stats = stats
        dead = stats.dead
        self.corpus_summary = {"n_texts": len(stats.tokens), "n_tokens": stats.n_tokens, "dead": int(len(dead)),
                               "dead_ids": dead[:200].tolist()}
        self._show_feature()

    def _show_token(self, change=None) -> None:
        p = self.selected_token
        if p is None:
            self.token_features = []
            return
        r = self.result
        rows = []
        for f, v in zip(r.ids[p].tolist(), r.values[p].tolist()):
            if v <= 0:
                continue
            eff = logit_effect(self._session, self._dict, f, k=3) if self._session.adapter.head else None
            rows.append({"feature": f, "activation": v,
                         "promoted": [tok for tok, _ in eff["promoted"]] if eff else [],
                         "suppressed": [tok for tok, _ in eff["suppressed"]] if eff else []})
        self.token_features = rows

    def _show_feature(self, change=None) -> None:
        f = self.selected_feature
        if f is None:
            self.feature = {}
            return
        out: dict = {"id": f, "over_text": feature_over_text(self._session, self._text, self._dict, f,
                                                             truncate=self._truncate).tolist()}
        if self._session.adapter.head:
            out["logits"] = logit_effect(self._session, self._dict, f, k=self._n_logits)
        st = self._stats
        if st is not None:
            ctx = contexts(st.tokens, st.top_text[f], st.top_pos[f], st.top_value[f], width=CONTEXT)
            out.update(contexts=ctx, hist=st.hist[f].tolist(), edges=EDGES.tolist(), fires=int(st.fires[f]),
                       density=float(st.fires[f]) / max(1, st.n_tokens), max=float(st.max[f]))
        self.feature = out

    def edit(self, ablate=(), clamp=None, add=None, positions=None, position: int = -1, k: int = 10) -> dict:
        """Apply a feature edit (as lw.edit_features: ablate=[...], clamp={f: v}, add={f: alpha}) and
        show the next-token probabilities at `position` before and after it (the k that change most).
        Returns what is shown."""
        out = edit_effect(self._session, self._text, self._dict, position=position, k=k, truncate=self._truncate,
                          ablate=ablate, clamp=clamp, add=add, positions=positions)
        out["description"] = ", ".join([f"ablate {list(ablate)}"] * bool(ablate) + [f"clamp {clamp}"] * bool(clamp)
                                       + [f"add {add}"] * bool(add)) or "no edit"
        self.edit_probs = out
        return out

    def patch(self, corrupted: str, *, answers=None, metric="logit_diff", position: int = -1, positions=None,
              k: int = 10, background: bool | None = None) -> None:
        """Feature-level patching (lw.feature_patching) from this view's text, the clean input, into
        `corrupted` (as many tokens): every feature active on either input at each of `positions`
        (None: every token) patched alone, and the error term alone, scored on `metric` of `answers`
        at output `position`. When done, `patch_result` is the FeaturePatchingResult and the view
        shows, for the selected token, its `k` features with the largest |score| and the error term's
        score. Runs as the view's work (progress, cancellable; background in a kernel: `.wait()`); it
        supersedes an unfinished corpus scan, so start it after `.wait()` when a corpus is given."""
        k = integer(k, "k", low=1)

        def done(r) -> None:
            self.patch_result = r
            self.patching = {
                "metric": r.metric, "clean_metric": r.clean_metric, "corrupted_metric": r.corrupted_metric,
                "position": r.position, "corrupted_tokens": r.tokens, "positions": r.positions, "note": r.note,
                "top": {str(p): [[f, v] for f, v in r.top(p, k)] for p in r.positions},
                "error": {str(p): float(v) for p, v in zip(r.positions, r.error_scores)}}

        self._run(lambda report: feature_patching(
            self._session, self._text, corrupted, self._dict, positions=positions, metric=metric, answers=answers,
            position=position, report=report), done, background)

    def _static_figure(self) -> str:
        from .. import fallback

        r = self.result
        rows = [{"token": tok,
                 "top features": ", ".join(f"{i}:{v:.2f}" for i, v in zip(r.ids[p], r.values[p]) if v > 0),
                 "L0": int(r.l0[p]), "error norm": float(r.error_norm[p])} for p, tok in enumerate(r.tokens)]
        return fallback.table(rows, ["token", "top features", "L0", "error norm"],
                              f"Top features per token at {r.site} (FVU {r.fvu:.3f})")

    def bytes_sent(self) -> int:
        """Bytes of the per-token arrays this view sends (the sparse top features and quality)."""
        sent = self.get_state(["top_ids", "top_values", "error_norm", "l0"])
        return int(sum(len(record.get("data", b"")) for record in sent.values()))


