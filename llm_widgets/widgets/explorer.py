"""Explorer: several views of one text around one shared token strip, with one linked selection."""
from __future__ import annotations

import threading
from importlib import import_module

import ipywidgets
import traitlets as t

from ..checks import names as name_list
from ..compute.capabilities import EXPLORER_PANELS, NEEDS_TARGET, RULES  # noqa: F401  (NEEDS_TARGET: public)
from ..errors import LLMWidgetsError
from .base import View
from .traits import Index, Record

GENERATE = 4  # tokens a causal model's attribution panel generates and explains by default

# name -> (module, class, why_not(session) -> "" where it applies); tried in this order, skipped
# where they do not apply, with the same reason the view itself would give (the rules of
# compute.capabilities, which lw.load reports at load time)
PANELS = {name: (f".{name}", view, RULES[view]) for name, view in EXPLORER_PANELS.items()}


class Explorer(View):
    """Linked views of one text: a click on a token anywhere selects it everywhere.

    >>> ex = Explorer(session, "The keys to the cabinet are on the table")
    >>> ex.selected_token = 3          # Python drives every view; clicks drive Python

    `panels` picks views by name ({"attention", "attribution", "neuron", "logit_lens"}); those that
    do not apply to the model (e.g. logit lens on an encoder) are left out. `options` passes
    keyword arguments per panel, e.g. {"attribution": {"target": "POSITIVE"}}. Set `text` (or type
    in the box) to re-run every view on new text. Warnings raised by the panels' work, while they are
    built or later in their background threads, are shown once each in the view's `notice`.
    """

    _bundle_name = "explorer"
    # the panels' own export states, with the bundle that draws each (a child's state is that view's
    # State interface: open here, read by the child's bundle)
    _export_record = Record({"children": t.List(Record({"bundle": t.Unicode(), "state": t.Dict()}))})
    text = t.Unicode("").tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)
    selected_token = Index("tokens").tag(sync=True)
    views = t.List(t.Instance(ipywidgets.Widget)).tag(sync=True, **ipywidgets.widget_serialization)
    view_names = t.List(t.Unicode()).tag(sync=True)
    skipped = t.Dict(value_trait=t.Unicode(), key_trait=t.Unicode()).tag(sync=True)  # panel -> why it is not shown
    # cut texts longer than the model's context instead of refusing them (the view's checkbox sets it)
    truncate = t.Bool(False).tag(sync=True)

    def __init__(self, session, text: str, *, panels=tuple(PANELS), options: dict | None = None,
                 truncate: bool = False, **kwargs):
        panels = name_list(panels, "panels")
        unknown = [p for p in panels if p not in PANELS]
        if unknown:
            raise LLMWidgetsError(f"Unknown panels {unknown}; choose from {list(PANELS)}")
        if options is not None and (not isinstance(options, dict) or
                                    not all(isinstance(v, dict) for v in options.values())):
            raise TypeError("options must be a dict of keyword arguments per panel, e.g. "
                            "{'attribution': {'target': 'POSITIVE'}}")
        bad = [k for k in options or {} if k not in PANELS]
        if bad:
            raise LLMWidgetsError(f"options for unknown panels {bad}; choose from {list(PANELS)}")
        self._session, self._panels, self._options = session, panels, options or {}
        self._links: list = []
        self._truncate = bool(truncate)
        # warnings raised by the Explorer's own work (building the panels, and every panel's
        # background work, on whatever thread) go into the notice, not to stderr
        self._warned: list[str] = []
        self._collect: list[str] = self._warned
        self._building: list[View] = []
        self._trace_notice = ""
        self._shown = False  # the traits exist (after __init__): a late warning updates the notice
        views, names, trace, skipped = self._build(text)
        super().__init__(title=kwargs.pop("title", f"Explorer \u00b7 {session.name}"), text=text,
                         tokens=trace.tokens, views=views, view_names=names, notice=self._notice(trace),
                         skipped=skipped, truncate=self._truncate, **kwargs)
        self._shown = True
        self._link()
        self.observe(self._rerun, names=["text"])
        self.observe(self._retruncate, names=["truncate"])

    @property
    def panels(self) -> dict[str, View]:
        return dict(zip(self.view_names, self.views))

    @property
    def result(self) -> dict:
        """Each panel's `.result`, by panel name."""
        return {name: v.result for name, v in self.panels.items()}

    def _build(self, text: str):
        """The panels for `text`; warnings libraries print meanwhile (e.g. transformers on a truncated
        input), here or in a panel's background work, go to the view's notice instead of red stderr."""
        self._collect = []
        try:
            with self._warning_route().building():
                out = self._build_panels(text)
        except BaseException:
            self._collect = self._warned  # the previous text's views stay, and their warnings
            raise
        finally:
            self._building = []
        self._warned = self._collect
        return out

    def _owns(self, thread: threading.Thread) -> bool:
        """True for a thread doing a panel's work (its background workers; the panels being built too)."""
        return any(thread in getattr(v, "_workers", ()) for v in [*getattr(self, "_building", ()), *self.views])

    def _warned_line(self, line: str) -> None:
        """A warning of the Explorer's work: once in the notice, after what the trace says."""
        if not hasattr(self, "_collect"):  # raised before the Explorer's own bookkeeping exists
            return super()._warned_line(line)
        if line in self._collect:
            return
        self._collect.append(line)
        if self._collect is self._warned and self._shown:  # after the build: a panel's background work
            self.notice = self._notice(None)

    def _build_panels(self, text: str):
        trace = self._session.trace(text, truncate=self._truncate)  # validates the text once
        skipped: dict[str, str] = {}
        views, names = [], []
        self._building = views
        for name in self._panels:
            module, cls, why_not = PANELS[name]
            why = why_not(self._session)
            if why and "target" not in self._options.get(name, {}):
                skipped[name] = why
                continue
            try:
                view_cls = getattr(import_module(module, __package__), cls)
            except (ImportError, AttributeError) as e:
                skipped[name] = f"unavailable: {e}"
                continue
            kwargs = dict(self._options.get(name, {}))
            kwargs.setdefault("truncate", self._truncate)
            if name == "attribution" and self._session.kind == "decoder" and "target" not in kwargs:
                kwargs.setdefault("generate", GENERATE)  # explain the next few tokens
            try:
                views.append(view_cls(self._session, text, **kwargs))
            except LLMWidgetsError as e:  # e.g. neurons of a model without MLPs: say so, show the rest
                skipped[name] = str(e)
                continue
            except Exception as e:  # a panel's own work failed (e.g. a user's target): show the rest
                skipped[name] = f"{type(e).__name__}: {e}"
                continue
            names.append(name)
        return views, names, trace, skipped

    def _notice(self, trace) -> str:
        """The trace's notice (e.g. what truncation kept; None: the last trace's) and the warnings of
        the panels' work."""
        if trace is not None:
            self._trace_notice = trace.notice or ""
        return " ".join(x for x in [self._trace_notice, *self._warned] if x)

    def _link(self):
        for link in self._links:
            link.unlink()
        self._links = [ipywidgets.link((self, "selected_token"), (v, "selected_token"))
                       for v in self.views if v.has_trait("selected_token")]
        for v in self.views:
            v.observe(lambda change: self._panel_failed(change["owner"]), names="error")
        for v in list(self.views):  # work that failed before the observer was there
            self._panel_failed(v)

    def _panel_failed(self, view):
        """A panel whose (background) work failed is taken out and listed in `skipped` with why."""
        if not view.error or view not in self.views or getattr(view, "result", None) is not None:
            return
        name = self.view_names[self.views.index(view)]
        with self.hold_sync():
            self.skipped = {**self.skipped, name: view.error}
            keep = [(n, v) for n, v in zip(self.view_names, self.views) if v is not view]
            self.views, self.view_names = [v for _, v in keep], [n for n, _ in keep]
        view.close()

    def wait(self, timeout: float | None = None) -> "Explorer":
        """Block until every panel's background work has finished."""
        for v in list(self.views):
            v.wait(timeout)
            self._panel_failed(v)
        return self

    def cancel(self) -> "Explorer":
        for v in self.views:
            v.cancel()
        return self

    def _retruncate(self, change):
        """The truncate box was ticked (or unticked): run the current text again with it."""
        self._truncate = bool(change["new"])
        self._rerun({"new": self.text})

    def _rerun(self, change):
        try:
            views, names, trace, skipped = self._build(change["new"])
        except Exception as e:  # keep the views of the previous text; say what went wrong
            self.error = f"{type(e).__name__}: {e}"
            return
        self.error = ""
        old = list(self.views)
        with self.hold_sync():
            self.selected_token = None
            self.tokens = trace.tokens
            self.notice = self._notice(trace)
            self.views, self.view_names, self.skipped = views, names, skipped
        self._link()
        for v in old:  # the replaced panels: stop their work and free their front ends
            v.cancel()
            v.close()

    def _export_extra(self) -> dict:
        return {"children": [{"bundle": v._bundle_name, "state": v.export_state()} for v in self.views]}
