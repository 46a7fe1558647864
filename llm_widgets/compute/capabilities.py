"""Which views apply to a session's model, and why not, from the checks the views themselves make.

`capabilities(session)` (`lw.capabilities(s)`; `lw.load` prints its summary) runs no forward: each view's rule is the
structural check that view raises on (the adapter's `why_not`, the Explorer's panel rules, direct
logit attribution's structural reasons, the audit's and the surrogate's session checks), so a
reason here is the message the view's error carries. A view that applies may still refuse an input
(a text too long, a metric equal on both texts) or, for direct logit attribution, a final norm that
turns out not to be a LayerNorm / RMSNorm on the input.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, fields

from ..execution import executor_of
from .direct_logit import why_not_grid as direct_logit_why_not

NEEDS_TARGET = ("needs a classifier head or a causal LM; for other models pass "
                "options={'attribution': {'target': fn}} with fn(model_output) -> a score per row")


def audit_why_not(session) -> str:
    """Why a Session alone has no score to audit ('' where it has: a classifier's class probabilities,
    a causal LM's log-probability of a continuation); a callable task audits any model."""
    if session.class_labels is not None or session.kind == "decoder":
        return ""
    return (f"{session.name} has no classification head and is not a causal LM, so it has no score to audit. "
            "Pass task=<callable list[str] -> scores> (e.g. a probe), or a classifier Session.")


def surrogate_why_not(session) -> str:
    """Why SurrogateView does not apply to the session's model ('' where it does)."""
    if session.class_labels is None:
        return f"{session.name} is not a sequence classifier: SurrogateView imitates a classifier's predicted class."
    return ""


def _attribution(s) -> str:
    return "" if s.class_labels or s.kind == "decoder" else NEEDS_TARGET


def steering_why_not(s) -> str:
    """SteeringView writes to the residual stream and reads generations (causal LMs) or class
    probabilities (classifiers)."""
    why = s.adapter.why_not("interventions")
    if why or s.kind == "decoder" or s.class_labels is not None:
        return why
    return f"{s.name} is neither a causal LM nor a classifier: SteeringView shows generations or class probabilities."


def graph_why_not(s) -> str:
    """Why attribution graphs (lw.attribution_graph, GraphView(session, text, transcoders)) do not
    apply to the session ('' where they do): they need an executor with gradients and module hooks
    (the native one), a causal language model's head, and attention in every block (a recurrent mixer
    cannot be frozen at one input). Attention that does not go through transformers' attention
    functions (a linear attention) shows only in a forward: attribution_graph refuses it then.
    GraphView(graph) of a graph read from a file applies anywhere."""
    ex = executor_of(s)
    for cap in ("gradients", "module_hooks"):
        if not ex.has(cap):
            return str(ex.lacks(cap, "An attribution graph"))
    ad = s.adapter
    why = ad.why_not("logit_lens")
    if why:
        return why
    if not ad.causal or ad.output != "lm":
        return f"attribution graphs explain a causal language model's next-token logits; {s.name} is not one"
    mixers = [l for l in range(ad.n_layers) if ad.attn_out[l] is None]
    if mixers:
        return (f"blocks {mixers} mix tokens without attention ({ad.no_attention(mixers[0])}); their recurrences "
                f"cannot be frozen at one input, so attribution graphs do not apply")
    return ""


def _patching(s) -> str:
    return s.adapter.why_not("interventions") or s.adapter.why_not("patching")


# view -> why_not(session): '' where it applies; the Explorer's panels use the same rules
RULES = {
    "AttentionView": lambda s: s.adapter.why_not("attention"),
    "AttributionView": _attribution,
    "ProbeView": lambda s: "",  # hidden states: every model has them
    "ConceptView": lambda s: "",
    "NeuronView": lambda s: s.adapter.why_not("neurons"),
    "PatchingView": _patching,
    "LogitLensView": lambda s: s.adapter.why_not("logit_lens"),
    "DirectLogitView": direct_logit_why_not,
    "AuditView": audit_why_not,
    "SurrogateView": surrogate_why_not,
    "FeatureView": lambda s: s.adapter.why_not("interventions"),  # reads (and edits) one site per dictionary
    "SteeringView": steering_why_not,
    "GraphView": graph_why_not,
}


@dataclass(frozen=True)
class Capabilities:
    """Per view: '' where it applies to the model, else why not (the view's own message). `str()` and
    the notebook display are a table; `applies(view)`, `missing` (view -> why) read it."""

    model: str
    AttentionView: str
    AttributionView: str
    ProbeView: str
    ConceptView: str
    NeuronView: str
    PatchingView: str
    LogitLensView: str
    DirectLogitView: str
    AuditView: str
    SurrogateView: str
    FeatureView: str
    SteeringView: str
    GraphView: str
    Explorer: str

    @property
    def views(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}

    @property
    def missing(self) -> dict[str, str]:
        """The views that do not apply, with why."""
        return {v: why for v, why in self.views.items() if why}

    def applies(self, view) -> bool:
        """view: a view class or its name."""
        name = view if isinstance(view, str) else getattr(view, "__name__", str(view))
        if name not in self.views:
            raise KeyError(f"unknown view {name!r}; one of {list(self.views)}")
        return not self.views[name]

    def summary(self) -> str:
        """One line: which views do not apply ('' where all do)."""
        miss = list(self.missing)
        if not miss:
            return ""
        return (f"llm-widgets: {len(miss)} of {len(self.views)} views do not apply to {self.model}: "
                f"{', '.join(miss)} (see lw.capabilities(session) for why)")

    def __str__(self) -> str:
        width = max(len(v) for v in self.views)
        rows = [f"Views for {self.model}:"]
        rows += [f"  {v:<{width}}  {'yes' if not why else 'no: ' + why}" for v, why in self.views.items()]
        return "\n".join(rows)

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td><code>{html.escape(v)}</code></td><td>{'yes' if not why else 'no'}</td>"
            f"<td>{html.escape(why)}</td></tr>" for v, why in self.views.items())
        return (f"<table><caption>Views for {html.escape(self.model)}</caption><thead><tr><th>view</th>"
                f"<th>applies</th><th>why not</th></tr></thead><tbody>{cells}</tbody></table>")


def explorer_why_not(reasons: dict[str, str]) -> str:
    """The Explorer applies where one of its panels does; else why none does."""
    if any(not reasons[v] for v in EXPLORER_PANELS.values()):
        return ""
    return "none of its panels applies: " + "; ".join(f"{v}: {reasons[v]}" for v in EXPLORER_PANELS.values())


# the Explorer's panels (widgets.explorer.PANELS) by name -> their view
EXPLORER_PANELS = {"attention": "AttentionView", "attribution": "AttributionView", "neuron": "NeuronView",
                   "logit_lens": "LogitLensView"}


def capabilities(session) -> Capabilities:
    """Which views apply to `session`'s model, and why not (no forward pass)."""
    reasons = {view: rule(session) for view, rule in RULES.items()}
    return Capabilities(model=session.name, Explorer=explorer_why_not(reasons), **reasons)
