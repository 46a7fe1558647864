"""Model auditing: counterfactual bias, robustness/consistency, per-group metrics.

    import llm_widgets as lw
    lw.audit.templates.occupations          # shipped templates (editable; see templates.py)
    lw.audit.templates.ATTRIBUTES["gender"]  # shipped term lists
    lw.AuditView(s, templates=lw.audit.templates.occupations, attribute="gender")

The numbers come from llm_widgets.compute.audit (pure functions, usable from scripts).
"""
from . import demo, perturb, templates  # noqa: F401
from .templates import ATTRIBUTES, TemplateSet  # noqa: F401
