"""ProbeView: which layer knows X? Probe accuracy, control accuracy and selectivity per layer, with
the confusion matrix and the most confidently wrong examples of a clicked layer."""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import traitlets as t

from .. import fallback
from ..compute.activations import check_labels, check_texts, extract, normalise_text, token_states
from ..compute.amnesic import amnesic
from ..compute.erasure import erase_concept
from ..compute.probing import probe_layers
from ..checks import integer, names as name_list, number
from ..errors import LLMWidgetsError
from ..layers import layer_of_row
from .traits import Array, Layer, Record, Rows
from .base import View

CURVES = ("accuracy", "ci95", "control", "control_ci95", "selectivity")
# amnesic probing (llm_widgets.compute.amnesic): can a fresh probe read the concept after LEACE erased
# it at that block (must fall to the majority baseline), and does the model's task metric change
# with it erased, against erasing a random subspace of the same rank
AMNESIC_ROWS = ("probe_after_erasure", "majority", "task_change", "random_change")


def as_texts_labels(texts, labels, level, text_column="text", label_column="label"):
    """Accept (texts, labels), a pandas DataFrame with text/label columns, or a built-in Dataset.
    Returns (texts, labels, level)."""
    if hasattr(texts, "texts") and hasattr(texts, "level") and labels is None:  # datasets.Dataset
        return list(texts.texts), list(texts.labels), level or texts.level
    if hasattr(texts, "columns"):  # pandas DataFrame
        df = texts
        if text_column not in df.columns:
            raise LLMWidgetsError(f"The DataFrame has no {text_column!r} column (columns: "
                                  f"{list(df.columns)}); pass text_column=.")
        if labels is None and label_column in df.columns:
            labels = df[label_column].tolist()
        texts = df[text_column].tolist()
    return texts, labels, level or "sentence"


def explain_mistakes(session, acts, res, truncate: bool = False, batch_size: int = 32,
                     report=lambda f, s: None) -> dict:
    """(layer, row) -> per-token contribution [T] to the wrong decision of each most confidently
    wrong sentence row (mean pooling, linear probe): ProbeResult.token_contributions on the hidden
    states of that text's tokens (one batched pass over the texts concerned; special tokens, which
    the mean pooling leaves out, get 0)."""
    wanted = [(layer_of_row(row), w) for row, ws in enumerate(res.wrong) for w in ws]
    if not wanted:
        return {}
    text_ids = sorted({int(acts.text_index[w["row"]]) for _, w in wanted})
    states = dict(zip(text_ids, token_states(session, [acts.texts[i] for i in text_ids],
                                             batch_size=batch_size, truncate=truncate)))
    out = {}
    for layer, w in wanted:
        hs, special = states[int(acts.text_index[w["row"]])]
        keep = ~special if (~special).any() else np.ones_like(special)
        c = np.zeros(len(special), np.float32)
        c[keep] = res.token_contributions(layer, w, hs[res.row(layer)][keep])
        out[(layer, int(w["row"]))] = c
    report(1.0, "explained the mistakes")
    return out


def amnesic_layers(session, texts, labels, positions, batch_size: int = 32, report=lambda f, s: None) -> list:
    """AmnesicResult per block (llm_widgets.compute.amnesic): LEACE fitted at that block's output at
    `positions`, a fresh probe after it, the task metric erased and with a random subspace."""
    L = session.adapter.n_layers
    out = []
    for layer in range(L):
        e = erase_concept(session, texts, labels, layer=layer, positions=positions, batch_size=batch_size)
        out.append(amnesic(session, e, texts, labels, splits=3, batch_size=batch_size))
        report((layer + 1) / L, f"amnesic probing: block {layer}")
    return out


class ProbeView(View):
    """Layer-wise linear probes with Hewitt & Liang control tasks.

    >>> ds = lw.datasets.tense(200)
    >>> v = lw.ProbeView(session, ds.texts, ds.labels)         # sentence level
    >>> lw.ProbeView(session, texts, word_labels, level="token")  # one label per word

    Click a layer (or set `selected_layer`: a block index, lw.EMBEDDINGS for the embedding output,
    None for none) to see its confusion matrix and most confidently wrong
    examples: at token level the mislabelled token is marked; at sentence level (linear probe, mean
    pooling) each token is coloured by its share of the wrong decision (`.contributions`, see
    ProbeResult.token_contributions; red: pushed towards the wrong class). `.result` is a
    ProbeResult (`.result.to_frame()` for pandas), `.activations` the
    hidden states, `.figure()` a bqplot chart of the same numbers. In a notebook the work runs in a
    background thread with a progress bar (`background=False` to block; `.wait()` to join).
    """

    _bundle_name = "probe"
    level = t.Unicode("sentence").tag(sync=True)
    classes = t.List(t.Unicode()).tag(sync=True)
    n_layers = t.Int(0).tag(sync=True)
    curves = Array("float32", ndim=2).tag(sync=True)  # [len(CURVES), L+1]: column = layer + 1
    curve_names = t.List(t.Unicode(), list(CURVES)).tag(sync=True)
    majority = t.Float(0.0).tag(sync=True)
    # 95% Wilson intervals counting the n_test held-out rows of a split: [4, L+1] rows accuracy low,
    # accuracy high, control low, control high (-1 where there is no control task)
    interval = Array("float32", ndim=2).tag(sync=True)
    n_test = t.Int(0).tag(sync=True)
    confusion = Array("int32", ndim=3).tag(sync=True)  # [L+1, C, C] counts
    # per layer + 1: the held-out mistakes (the text's tokens, which token was probed (-1: the whole
    # text), true and predicted class, confidence, row of the activations; sentence probes: each
    # token's contribution to the wrong margin)
    examples = Rows(t.List(Record({"tokens": t.List(t.Unicode()), "highlight": t.Int(), "true": t.Unicode(),
                                   "pred": t.Unicode(), "confidence": t.Float(), "row": t.Int(),
                                   "weights": Array("float32")}, optional=("weights",)))).tag(sync=True)
    probe_kind = t.Unicode("linear").tag(sync=True)
    seeds = t.Int(3).tag(sync=True)
    selected_layer = Layer(embeddings=True).tag(sync=True)
    # amnesic=...: the rows AMNESIC_ROWS per block (column = block index; no column for the embeddings)
    amnesic_rows = Array("float32", ndim=2).tag(sync=True)
    amnesic_names = t.List(t.Unicode(), list(AMNESIC_ROWS)).tag(sync=True)
    amnesic_metric = t.Unicode("").tag(sync=True)
    amnesic_positions = t.Unicode("").tag(sync=True)
    done = t.Bool(False).tag(sync=True)

    def __init__(self, session, texts, labels=None, *, level: str | None = None, seeds: int = 3,
                 control: bool = True, control_types=None, probe: str = "linear", pooling: str = "mean",
                 test_size: float = 0.25, batch_size: int = 32, truncate: bool = False,
                 background: bool | None = None, text_column: str = "text", label_column: str = "label",
                 groups=None, amnesic=False, **kwargs):
        # arguments first (cheap, and their error names the argument), then the data
        if probe not in ("linear", "mlp"):
            raise LLMWidgetsError(f"probe must be 'linear' or 'mlp', got {probe!r}")
        if pooling not in ("mean", "first"):
            raise LLMWidgetsError(f"pooling must be 'mean' or 'first', got {pooling!r}")
        seeds = integer(seeds, "seeds", low=1)
        batch_size = integer(batch_size, "batch_size", low=1)
        if not 0.0 < number(test_size, "test_size") < 1.0:
            raise LLMWidgetsError(f"test_size must be between 0 and 1 (a fraction of the rows), got {test_size}")
        texts, labels, level = as_texts_labels(texts, labels, level, text_column, label_column)
        if amnesic is not False and level != "sentence":
            raise LLMWidgetsError("amnesic=... erases a sentence-level concept: use level='sentence'")
        if amnesic is True:
            amnesic = "all"
        if amnesic is not False and not (amnesic in ("all", "readout") or isinstance(amnesic, int)):
            raise LLMWidgetsError(f"amnesic must be True ('all' positions), 'all', 'readout', a token index or False, "
                                  f"got {amnesic!r}")
        if labels is None:
            raise LLMWidgetsError("ProbeView needs labels: one per text (level='sentence') or one per "
                                  "word of each text (level='token').")

        texts = check_texts(texts)
        labels = check_labels(texts, labels, level)
        flat = [v for lab in labels for v in lab if v is not None] if level == "token" else labels
        counts = Counter(str(v) for v in flat)
        if len(counts) < 2:
            raise LLMWidgetsError(f"All labels are {str(flat[0]) if flat else None!r}: a probe needs at "
                                  f"least two classes.")
        rare = [c for c, n in counts.items() if n < 2]
        if level == "sentence" and rare:
            raise LLMWidgetsError(f"Class {rare[0]!r} has a single example; give at least two per class "
                                  f"so it can appear in both train and test sets.")
        if groups is not None:
            groups = [str(g) for g in name_list(groups, "groups")]
            if len(groups) != len(texts):
                raise LLMWidgetsError(f"Got {len(groups)} groups for {len(texts)} texts: one group per text.")
        dup = len(texts) - len({normalise_text(tx) for tx in texts})
        notice = (f"{dup} of {len(texts)} texts repeat another one: identical texts are kept on the same "
                  "side of the train/test split (pass groups= to choose the grouping)."
                  if dup and groups is None and level == "sentence" else "")
        self.result = None
        self.activations = None
        self.contributions: dict = {}
        super().__init__(title=kwargs.pop("title", f"Probe \u00b7 {session.name}"), level=level,
                         probe_kind=probe, seeds=seeds, notice=notice,
                         amnesic_positions="" if amnesic is False else str(amnesic), **kwargs)
        self.amnesic: list = []

        def work(outer):
            # with amnesic rows the probes take the first half of the bar, the erasure the second
            report = outer if amnesic is False else (lambda f, s: outer(0.5 * f, s))
            acts = extract(session, texts, labels, level=level, pooling=pooling, batch_size=batch_size,
                           truncate=truncate, report=lambda f, s: report(0.5 * f, s))
            rows = None if groups is None else [groups[i] for i in acts.text_index]
            with warnings.catch_warnings():  # the duplicate notice is shown in the view instead
                warnings.simplefilter("ignore", UserWarning)
                res = probe_layers(acts, seeds=seeds, test_size=test_size, control=control, groups=rows,
                                   control_types=control_types, probe=probe,
                                   report=lambda f, s: report(0.5 + 0.45 * f, s))
            contrib = {}
            if level == "sentence" and pooling == "mean" and res.weights is not None:
                contrib = explain_mistakes(session, acts, res, truncate, batch_size,
                                           report=lambda f, s: report(0.95 + 0.05 * f, s))
            erased = []
            if amnesic is not False:
                erased = amnesic_layers(session, texts, labels, amnesic, batch_size,
                                        report=lambda f, s: outer(0.5 + 0.5 * f, s))
            return acts, res, contrib, erased

        self._run(work, self._show, background)

    def _show(self, out) -> None:
        acts, res, contrib, erased = out
        self.amnesic = erased
        self.activations, self.result = acts, res
        self.contributions = contrib
        curves = np.stack([res.mean, res.ci, np.nan_to_num(res.control_mean, nan=-1.0),
                           np.nan_to_num(res.control_ci), np.nan_to_num(res.selectivity, nan=0.0)])
        interval = np.stack([*res.interval(), *(np.nan_to_num(b, nan=-1.0) for b in res.interval(control=True))])
        examples = []
        for row_, layer_wrong in enumerate(res.wrong):
            layer = layer_of_row(row_)
            rows = []
            for w in layer_wrong:
                r = w["row"]
                row = {"tokens": acts.tokens[int(acts.text_index[r])],
                       "highlight": int(acts.token_index[r]), "true": w["true"], "pred": w["pred"],
                       "confidence": round(float(w["confidence"]), 4), "row": int(r)}
                if (layer, int(r)) in contrib:
                    row["weights"] = contrib[(layer, int(r))]
                rows.append(row)
            examples.append(rows)
        with self.hold_sync():
            self.classes = res.classes
            self.n_layers = res.n_layers
            self.curves = curves
            self.interval = interval.astype(np.float32)
            self.n_test = res.n_test
            self.majority = res.majority
            self.confusion = res.confusion
            self.examples = examples
            if erased:
                rows = np.zeros((len(AMNESIC_ROWS), res.n_layers), np.float32)
                for r in erased:
                    rows[:, r.layer] = [r.probe_after, r.majority, r.task_change, r.random_change]
                self.amnesic_rows = rows
                self.amnesic_metric = erased[0].metric
            if self.selected_layer is None:
                self.selected_layer = res.best_layer
            self.done = True

    def figure(self):
        """A bqplot Figure of accuracy (with 95% CI band), control, selectivity and the majority
        baseline against layer: the numbers of `.result`."""
        import bqplot as bq

        if self.result is None:
            raise LLMWidgetsError("The probes are still running: call .wait() first.")
        res = self.result
        x = np.arange(-1, res.n_layers)
        low = min(0.0, float(np.nan_to_num(res.selectivity).min()), float(np.nan_to_num(res.mean - res.ci).min()))
        high = max(1.0, float(np.nan_to_num(res.mean + res.ci).max()))  # the CI band stays inside the axes
        xs, ys = bq.LinearScale(), bq.LinearScale(min=low, max=high + 0.25 * (high - low))  # room for the legend
        band = bq.Lines(x=[x, x], y=[res.mean - res.ci, res.mean + res.ci], scales={"x": xs, "y": ys},
                        fill="between", fill_colors=["#1f77b4"], fill_opacities=[0.15], colors=["#9ecae1"],
                        labels=["95% CI"])
        marks = [band]
        series = [("accuracy", res.mean, "#1f77b4")]
        if res.control is not None:
            series += [("control", res.control_mean, "#ff7f0e"), ("selectivity", res.selectivity, "#2ca02c")]
        series.append(("majority", np.full(res.n_layers + 1, res.majority), "#7f7f7f"))
        for name, y, color in series:
            marks.append(bq.Lines(x=x, y=y, scales={"x": xs, "y": ys}, colors=[color], labels=[name],
                                  display_legend=True, marker="circle"))
        axes = [bq.Axis(scale=xs, label="layer (-1: the embeddings)", tick_format="d", tick_values=list(x)),
                bq.Axis(scale=ys, orientation="vertical", label="held-out accuracy")]
        return bq.Figure(marks=marks, axes=axes, title=self.title, legend_location="top-right",
                         layout={"width": "560px", "height": "340px"})

    def _static_figure(self) -> str:
        r = self.result
        if r is None:
            return ""
        rows = r.to_frame().to_dict("records")
        return fallback.table(rows, ["layer", "accuracy", "ci95", "control", "selectivity", "majority"],
                              "Held-out probe accuracy per layer (-1 = embeddings)")

