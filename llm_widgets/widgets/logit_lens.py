"""LogitLensView: the next token read from every layer's residual stream (logit lens, and the tuned
lens beside it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import traitlets as t

from .. import fallback
from ..compute.logit_lens import logit_lens
from ..compute.activations import check_texts
from ..compute.tuned_lens import TunedLens, compare_lenses, load_tuned_lens, require_local
from ..compute.tuned_lens_train import train_tuned_lens
from ..errors import LLMWidgetsError
from .base import View
from .traits import Array, Index, Layer

LENSES = ("logit", "tuned")


class LogitLensView(View):
    """Logit lens: the most likely next token read from every layer's residual stream.

    >>> LogitLensView(session, "The Eiffel Tower is in the city of")
    >>> LogitLensView(session, text, lens="tuned", tuned_lens=lw.train_tuned_lens(session, texts))

    Rows are the embeddings (`selected_layer` = lw.EMBEDDINGS) then the output of each block
    (`selected_layer` = block index), columns positions; cells show the top token and are coloured
    by its probability (or, with colour='next', by the probability of the actual next token).
    Click a cell for the top-k list; `selected_layer` and `selected_token` update.

    lens='tuned' (the default when `tuned_lens` or `train_texts` is given) shows the logit lens and
    the tuned lens side by side (`tuned_lens`: a TunedLens from lw.train_tuned_lens /
    lw.load_tuned_lens, or the folder of a saved one; or `train_texts`: train one on these texts
    here, cached, with progress, in the background inside a kernel, cancellable with .cancel()),
    with a chart of each row's KL divergence to the model's final distribution (averaged over
    positions; the `kl` trait, [2, rows]). `.result` is always the logit lens; `.comparison`
    (lens='tuned', once computed) holds both lenses and the KL per position, `.tuned_lens` the lens.
    """

    _bundle_name = "logit_lens"
    tokens = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    layer_names = t.List(t.Unicode()).tag(sync=True)  # row titles, embeddings first
    top_tokens = t.List(t.Unicode()).tag(sync=True)
    top_index = Array("int32", ndim=3).tag(sync=True)  # [R, T, k] into top_tokens
    top_probs = Array("float32", ndim=3).tag(sync=True)  # [R, T, k]
    next_prob = Array("float32", ndim=2).tag(sync=True)  # [R, T]
    lens = t.Enum(LENSES, default_value="logit").tag(sync=True)
    lens_names = t.List(t.Unicode()).tag(sync=True)  # the lenses drawn, in the order of kl's rows
    kl = Array("float32", ndim=2).tag(sync=True)  # [lenses, R] KL(final || row), nats, mean over positions
    tuned_top_tokens = t.List(t.Unicode()).tag(sync=True)  # lens='tuned': the tuned lens's arrays
    tuned_top_index = Array("int32", ndim=3).tag(sync=True)
    tuned_top_probs = Array("float32", ndim=3).tag(sync=True)
    tuned_next_prob = Array("float32", ndim=2).tag(sync=True)
    colour = t.Enum(["top", "next"], default_value="top").tag(sync=True)
    selected_layer = Layer(embeddings=True).tag(sync=True)  # row = selected_layer + 1
    selected_token = Index("tokens").tag(sync=True)

    def __init__(self, session, text: str, *, lens: str | None = None, tuned_lens=None, train_texts=None,
                 k: int = 5, truncate: bool = False, background: bool | None = None, **kwargs):
        wants_tuned = tuned_lens is not None or train_texts is not None
        lens = ("tuned" if wants_tuned else "logit") if lens is None else lens
        if lens not in LENSES:
            raise LLMWidgetsError(f"lens must be one of {LENSES}, got {lens!r}")
        if lens == "logit" and wants_tuned:
            raise LLMWidgetsError("tuned_lens / train_texts were given with lens='logit'; pass lens='tuned' to show "
                                  "the tuned lens.")
        if tuned_lens is not None and train_texts is not None:
            raise LLMWidgetsError("pass either tuned_lens= (a trained lens) or train_texts= (train one here), "
                                  "not both.")
        if lens == "tuned" and not wants_tuned:
            raise LLMWidgetsError("lens='tuned' needs tuned_lens=: train one with lw.train_tuned_lens(session, "
                                  "texts) (or pass train_texts= to train it here), or load a saved one with "
                                  "lw.load_tuned_lens(path, session).")
        self.comparison = None
        self.tuned_lens = None
        extra = {}
        if tuned_lens is not None:
            if isinstance(tuned_lens, (str, Path)):
                tuned_lens = load_tuned_lens(tuned_lens, session)
            if not isinstance(tuned_lens, TunedLens):
                raise LLMWidgetsError(f"tuned_lens must be a TunedLens or the folder of a saved one, "
                                      f"got {type(tuned_lens).__name__}")
            self.tuned_lens = tuned_lens
            self.comparison = c = compare_lenses(session, text, tuned_lens, k=k, truncate=truncate)
            self.result = r = c.logit
            extra = self._tuned_traits(c)
        else:
            self.result = r = logit_lens(session, text, k=k, truncate=truncate)
            if train_texts is not None:
                require_local(session, "The tuned lens")
                train_texts = check_texts(train_texts)
                extra = {"lens_names": ["logit lens", "tuned lens"]}
        super().__init__(title=kwargs.pop("title", f"{'Logit and tuned lens' if lens == 'tuned' else 'Logit lens'}"
                                                   f" \u00b7 {session.name}"),
                         notice=session.trace(text, truncate=truncate).notice, tokens=r.tokens, lens=lens,
                         n_layers=len(r.layer_names) - 1, layer_names=r.layer_names, top_tokens=r.top_tokens,
                         top_index=r.top_index, top_probs=r.top_probs, next_prob=r.next_prob, **extra, **kwargs)
        if train_texts is not None:
            def work(report):
                trained = train_tuned_lens(session, train_texts, truncate=truncate,
                                           report=lambda f, label: report(0.95 * f, label))
                report(0.95, "reading the text through both lenses")
                return trained, compare_lenses(session, text, trained, k=k, truncate=truncate)

            self._run(work, self._show_tuned, background)

    @staticmethod
    def _tuned_traits(c) -> dict:
        return dict(lens_names=["logit lens", "tuned lens"], kl=c.mean_kl, tuned_top_tokens=c.tuned.top_tokens,
                    tuned_top_index=c.tuned.top_index, tuned_top_probs=c.tuned.top_probs,
                    tuned_next_prob=c.tuned.next_prob)

    def _show_tuned(self, got) -> None:
        self.tuned_lens, self.comparison = got
        self.result = self.comparison.logit
        with self.hold_sync():
            for name, value in self._tuned_traits(self.comparison).items():
                setattr(self, name, value)

    def _static_figure(self) -> str:
        r = self.result
        rows = "rows = embeddings then each block, columns = positions"
        out = fallback.heatmap(r.top_probs[..., 0], f"Logit lens: probability of the top next token, {rows}", vmax=1.0)
        c = self.comparison
        if c is not None:
            kl = ", ".join(f"{name} {a:.2f} / {b:.2f}" for name, a, b in zip(r.layer_names, *np.asarray(c.mean_kl)))
            out += fallback.heatmap(c.tuned.top_probs[..., 0], f"Tuned lens: probability of the top next token, "
                                    f"{rows}. KL to the final distribution (logit / tuned lens, nats): {kl}", vmax=1.0)
        return out
