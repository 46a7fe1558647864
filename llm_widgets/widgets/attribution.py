"""AttributionView: which input tokens drive an output, with how far to trust the answer."""
from __future__ import annotations

import traitlets as t

from .. import fallback
from ..compute.attribution import ALIASES, METHODS, attribute
from ..compute.answers import answer_tokens
from ..compute.attribution.methods import IG_RULES
from ..errors import EmptyInputError, LLMWidgetsError
from .base import View
from .traits import Array, Index, Map, Record

# the faithfulness panel's state (compute.attribution's Faithfulness): per output row, its summary
# (None where undefined), the deletion fractions, and the curves [K, P] (deletion_x: [P])
CURVES = ("comprehensiveness", "sufficiency", "deletion_x", "deletion", "deletion_random")
FAITH_ROW = Record({k: t.Float(allow_none=True) for k in ("fx", "fbase", "delta", "relative_delta", "comprehensiveness",
                                                          "sufficiency", "deletion_auc", "deletion_random_auc")})
FAITHFULNESS = Record({"rows": t.List(FAITH_ROW), "percents": t.List(t.Float()),
                       **{k: Array("float32") for k in CURVES}}, allow_none=True)
# the header: what was computed and how (AttributionResult's fields; target_tokens: the tokens of a
# text target of several tokens, [] otherwise)
INFO = Record({"method": t.Unicode(), "method_label": t.Unicode(), "signed": t.Bool(), "baseline": t.Unicode(),
               "output": t.Unicode(), "steps": t.Int(), "n_samples": t.Int(), "generated": t.Bool(),
               "contrast": t.Unicode(allow_none=True), "target_tokens": t.List(t.Unicode())}, empty=True)



class AttributionView(View):
    """Token attributions for a classifier label, generated tokens of a causal LM, or a custom target.

    >>> AttributionView(session, "This movie was surprisingly good", target="POSITIVE")
    >>> AttributionView(session, "The capital of France is", generate=8, method="occlusion")

    The prompt's tokens are coloured by their score for the selected output (red raises it, blue
    lowers it; saliency is unsigned). With several outputs (generation) a [output x input] matrix
    is shown: click an output token -> `selected_output` (its row colours the prompt); click an
    input token -> `selected_token` (None: none; its influence on every output). `selected_token` is
    always a token index: in word-level mode (`word_level`, sub-word scores summed per word) a
    click on a word selects its first token. The faithfulness panel shows the completeness delta,
    ERASER comprehensiveness / sufficiency (AOPC) and a deletion curve; `deletion_figure()` gives
    the same curve as a bqplot figure. `.result` is the AttributionResult (see
    llm_widgets.compute.attribution.attribute for every argument). In a notebook it computes in a
    thread (progress bar; `.wait()` blocks until done; errors land in `.error`). Setting `method`
    (or picking one in the view's menu) recomputes with the same arguments. `selected_output=` and
    `selected_token=` may be passed up front. `ig_rule='adaptive'` places the IG points where the
    output changes along the path (for saturated models; see attribute).
    """

    _bundle_name = "attribution"
    tokens = t.List(t.Unicode()).tag(sync=True)  # prompt tokens as read
    words = t.List(t.Unicode()).tag(sync=True)  # one label per word (word-level aggregation)
    groups = t.List(t.Int()).tag(sync=True)  # word index of each token
    special = t.List(t.Bool()).tag(sync=True)  # special tokens: never perturbed, score 0
    targets = t.List(t.Unicode()).tag(sync=True)  # one name per output row
    scores = Array("float16", ndim=2).tag(sync=True)  # [K, T]
    word_scores = Array("float16", ndim=2).tag(sync=True)  # [K, W]
    info = INFO.tag(sync=True)  # method, baseline, output, steps...: the header ({} until computed)
    faithfulness = FAITHFULNESS.tag(sync=True)  # per-row summaries + deletion curves; None: not computed
    selected_output = t.Int(0).tag(sync=True)  # a row of `targets`; checked below (known once computed)
    selected_token = Index("tokens").tag(sync=True)
    word_level = t.Bool(False).tag(sync=True)
    method = t.Unicode("ig").tag(sync=True)  # change it (or pick one in the view) to recompute
    methods = Map(t.Unicode(), default_value=dict(METHODS)).tag(sync=True)  # key -> label, for the method menu

    def __init__(self, session, text: str, target=None, *, method: str = "ig", generate: int | None = None,
                 contrast=None, baseline="auto", output: str | None = None, steps: int = 50,
                 n_samples: int | None = None, seed: int = 0, internal_batch_size: int | None = None,
                 truncate: bool = False, compute_faithfulness: bool = True, word_level: bool = False,
                 layer: int | None = None, ig_rule: str = "uniform", background: bool | None = None, **kwargs):
        # cheap checks before any work, so they raise right here even in the background
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise EmptyInputError("The text to attribute is empty: pass a sentence or a prompt.")
        if ALIASES.get(method, method) not in METHODS:
            raise LLMWidgetsError(f"Unknown method {method!r}; use one of {sorted(METHODS)}.")
        if ig_rule not in IG_RULES:
            raise LLMWidgetsError(f"Unknown ig_rule {ig_rule!r}; use one of {IG_RULES}.")
        self.result = None
        # a selection asked for up front is applied once the outputs and tokens are known
        self._initial = {k: kwargs.pop(k) for k in ("selected_output", "selected_token") if k in kwargs}
        # the prompt's tokens are known before any attribution (one cached forward): a linked
        # selection (e.g. from an Explorer) can be set while the work still runs
        trace = session.trace(text, truncate=truncate)
        super().__init__(title=kwargs.pop("title", f"Attribution \u00b7 {session.name}"),
                         word_level=word_level, method=method, tokens=list(trace.tokens), **kwargs)
        self._args = dict(session=session, text=text, target=target, contrast=contrast, generate=generate,
                          baseline=baseline, output=output, steps=steps, n_samples=n_samples, seed=seed,
                          internal_batch_size=internal_batch_size, truncate=truncate,
                          compute_faithfulness=compute_faithfulness, layer=layer, ig_rule=ig_rule)
        self._background = background
        self._compute()
        self.observe(lambda change: self._compute(), names="method")

    def _compute(self) -> None:
        """Run the attribution with the current `method`; a newer run supersedes an older one."""
        method = self.method

        def work(report):
            return attribute(method=method, report=report, **self._args)

        self._run(work, self._show, self._background)

    def _target_tokens(self) -> list[str]:
        """The tokens of a text target of several tokens on a causal LM (one output: the sum of their
        teacher-forced log-probs, llm_widgets.compute.answers), as the view names them; [] otherwise."""
        session, target = self._args["session"], self._args["target"]
        if not isinstance(target, str) or session.kind != "decoder":
            return []
        ids = answer_tokens(session, target, "target")
        return session.readable_tokens(session.tokenizer.convert_ids_to_tokens(ids)) if len(ids) > 1 else []

    def _show(self, r) -> None:
        # every array a click needs travels in the traits (all rows, words, deletion curves), so a
        # static export needs no _export_extra
        self.result = r
        state = dict(
            tokens=list(r.tokens), words=list(r.words), groups=[int(g) for g in r.groups],
            special=[bool(x) for x in r.special_mask], targets=list(r.targets),
            scores=r.scores, word_scores=r.word_scores(),
            info={"method": r.method, "method_label": METHODS[r.method], "signed": r.signed,
                  "baseline": r.baseline, "output": r.output, "steps": r.steps, "n_samples": r.n_samples,
                  "generated": r.generated, "contrast": r.contrast, "target_tokens": self._target_tokens()},
            faithfulness=_faithfulness_state(r.faithfulness),
            notice=r.notice,
        )
        with self.hold_sync():
            for key, value in state.items():
                setattr(self, key, value)
            for key, value in self._initial.items():
                setattr(self, key, value)
            self._initial = {}  # a later run (another method) keeps the user's selection

    @t.validate("method")
    def _valid_method(self, proposal):
        v = ALIASES.get(proposal["value"], proposal["value"])
        if v not in METHODS:
            raise t.TraitError(f"Unknown method {proposal['value']!r}; use one of {sorted(METHODS)}.")
        return v

    @t.validate("selected_output")
    def _valid_output(self, proposal):
        v, n = proposal["value"], len(self.targets)
        if n and not 0 <= v < n:
            raise t.TraitError(f"selected_output must be an output row in 0..{n - 1} "
                               f"(outputs: {list(self.targets)}), got {v}")
        if not n and v != 0:
            raise t.TraitError("selected_output can be set once the attribution is computed (call .wait()).")
        return v

    def deletion_figure(self, row: int | None = None):
        """The deletion curve of output `row` (default: `selected_output`) as a bqplot Figure."""
        from ..figures import deletion_figure

        self.wait()
        if self.result is None:
            raise LLMWidgetsError(f"No attribution to plot: {self.error or 'the computation did not finish'}")
        if self.result.faithfulness is None:
            raise LLMWidgetsError("Faithfulness was not computed (compute_faithfulness=False).")
        row = self.selected_output if row is None else row
        if not 0 <= row < len(self.result.targets):
            raise LLMWidgetsError(f"row must be in 0..{len(self.result.targets) - 1}, got {row}")
        return deletion_figure(self.result.faithfulness, row=row,
                               title=f"Deletion curve \u00b7 {self.result.targets[row]}")

    def _static_figure(self) -> str:
        r = self.result
        if r is None:
            return ""
        row = self.selected_output or 0
        what = f"{METHODS[r.method]} of \u201c{r.targets[row]}\u201d on each prompt token"
        return fallback.token_strip(list(r.tokens), r.scores[row], what, signed=r.signed)



def _faithfulness_state(faith) -> dict | None:
    """What the faithfulness panel draws: one summary per output row, the AOPC curves and the
    deletion curves (binary buffers, so a static export can switch rows with no kernel)."""
    if faith is None:
        return None
    return {"rows": [faith.summary(i) for i in range(len(faith.fx))], "percents": [float(p) for p in faith.percents],
            **{k: getattr(faith, k) for k in CURVES}}
