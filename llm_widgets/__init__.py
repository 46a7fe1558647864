"""llm-widgets: interactive interpretability and auditing views for transformer models in Jupyter.

    import llm_widgets as lw
    s = lw.load()                       # offline default: all-MiniLM-L6-v2
    lw.AttentionView(s, "The cat sat on the mat because it was tired.")
"""
from importlib import import_module

from .adapter import Layout  # noqa: F401
from .errors import (  # noqa: F401
    AttentionUnavailableError,
    BackendUnsupportedError,
    DoesNotApplyError,
    EmptyInputError,
    InputTooLongError,
    LLMWidgetsError,
    ModelNotFoundError,
    NonFiniteError,
    OutOfMemoryError,
    UnsupportedModelError,
)
from .entry import load  # noqa: F401
from .layers import EMBEDDINGS  # noqa: F401
from .session import Session, Trace  # noqa: F401

__version__ = "0.1.0"

# Public name -> module that defines it. Imported on first use, so `import llm_widgets` stays fast
# and each view module stands alone.
_LAZY = {
    "AttentionView": ".widgets.attention",
    "AttributionView": ".widgets.attribution",
    "ProbeView": ".widgets.probing",
    "ConceptView": ".widgets.concepts",
    "NeuronView": ".widgets.neuron",
    "PatchingView": ".widgets.patching",
    "LogitLensView": ".widgets.logit_lens",
    "AuditView": ".widgets.audit",
    "SurrogateView": ".widgets.surrogate",
    "DirectLogitView": ".widgets.direct_logit",
    "Explorer": ".widgets.explorer",
    "direct_logit_attribution": ".compute.direct_logit",
    "path_patching": (".compute.path_patching", "path_patching"),  # the function, not its module
    "neuron_top_examples": ".compute.neuron_corpus",
    "neuron_corpus": (".compute.neuron_corpus", "neuron_corpus"),
    "capabilities": (".compute.capabilities", "capabilities"),  # the function, not its module
    "message_totals": ".chat",
    "train_tuned_lens": ".compute.tuned_lens_train",
    "load_tuned_lens": ".compute.tuned_lens",
    "TunedLens": ".compute.tuned_lens",
    "load_dictionary": ".dictionaries.readers",
    "edit_features": ".dictionaries.edit",
    "feature_patching": ".dictionaries.patching",
    "FeatureView": ".widgets.features",
    "GraphView": ".widgets.graph",
    "attribution_graph": ".circuits.attribution",
    "read_graph_json": ".circuits.ctjson",
    "write_graph_json": ".circuits.ctjson",
    "suggest_supernodes": ".circuits.supernodes",
    "graph_intervention": ".circuits.intervene",
    "steering_vector": ".compute.steering",
    "steer": ".compute.steering",
    "SteeringView": ".widgets.steering",
    "erase_concept": ".compute.erasure",
    "teaching": ".teaching",
    "audit": ".audit",
    "datasets": ".datasets",
    "exercises": ".exercises",
    "testing": ".testing",
}


def __getattr__(name):
    if name in _LAZY:
        where, attr = _LAZY[name] if isinstance(_LAZY[name], tuple) else (_LAZY[name], name)
        module = import_module(where, __name__)
        value = getattr(module, attr) if isinstance(_LAZY[name], tuple) or not where.endswith("." + name) else module
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llm_widgets' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
