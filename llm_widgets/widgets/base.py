"""What every view shares: the JS bundle, binary array transport, progress for long work, HTML export.

Arrays travel as {"shape", "dtype", "scale", "offset", "data": bytes} (encode_array): ipywidgets sends
the bytes as binary buffers (no JSON lists of floats); js/src/lib/buffers.ts decodes them. Views hold
numpy arrays in `Array` traits (traits.py), which pack themselves when sent.
"""
from __future__ import annotations

import atexit
import base64
import functools
import html
import inspect
import json
import threading
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import anywidget
import numpy as np
import traitlets as t

from ..chat import Chat, chat_input
from ..fallback import block as fallback_block
from ..errors import LLMWidgetsError
from ..guards import intervening
from .routed_warnings import WarningRoute

STATIC = Path(__file__).resolve().parent.parent / "static"


@lru_cache(maxsize=None)
def bundle(name: str) -> str:
    """Text of the built JS bundle llm_widgets/static/<name>.js."""
    path = STATIC / f"{name}.js"
    if not path.exists():
        raise RuntimeError(
            f"The JS bundle {path.name} is not built. Run `npm install && npm run build` in the "
            f"llm-widgets checkout (pip install -e . does this when npm is present)."
        )
    return path.read_text(encoding="utf-8")


TRANSPORTS = ("uint8", "float16", "float32", "int32", "uint16")


def encode_array(arr, dtype: str = "uint8", lo: float | None = None, hi: float | None = None) -> dict:
    """Pack a numpy array for the front end.

    dtype 'uint8': values mapped linearly from [lo, hi] (default: the array's min and max) to 0..255,
    decoded as offset + q * scale (1 byte per value). 'float16' / 'float32': raw little-endian values.
    'int32' / 'uint16': exact integers (indices, cluster ids), raw little-endian.
    Non-finite values are an error: the front end must never draw garbage silently.
    """
    a = np.asarray(arr, dtype=np.float32)
    if a.size and not np.isfinite(a).all():
        from ..errors import NonFiniteError

        raise NonFiniteError("Cannot display non-finite values (NaN/inf) in an array of shape "
                             f"{a.shape}.")
    if dtype == "uint8":
        lo = float(a.min()) if lo is None and a.size else float(lo or 0.0)
        hi = float(a.max()) if hi is None and a.size else float(hi if hi is not None else 1.0)
        span = hi - lo if hi > lo else 1.0
        q = np.clip(np.rint((a - lo) / span * 255.0), 0, 255).astype(np.uint8)
        return {"shape": list(a.shape), "dtype": "uint8", "scale": span / 255.0, "offset": lo,
                "data": q.tobytes()}
    if dtype in ("float16", "float32"):
        return {"shape": list(a.shape), "dtype": dtype, "scale": 1.0, "offset": 0.0,
                "data": a.astype("<f2" if dtype == "float16" else "<f4").tobytes()}
    if dtype in ("int32", "uint16"):
        raw = np.asarray(arr)
        info = np.iinfo(dtype)
        if raw.size and (not np.array_equal(raw, np.round(raw)) or raw.min() < info.min or raw.max() > info.max):
            raise ValueError(f"{dtype} transport needs integers in {info.min}..{info.max}")
        return {"shape": list(raw.shape), "dtype": dtype, "scale": 1.0, "offset": 0.0,
                "data": raw.astype("<i4" if dtype == "int32" else "<u2").tobytes()}
    raise ValueError(f"unsupported transport dtype {dtype!r}; use one of {TRANSPORTS}")


class Cancelled(LLMWidgetsError):
    """Background work stopped by a newer run or by view.cancel()."""


def _kernel():
    """The running Jupyter kernel, or None outside one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return getattr(get_ipython(), "kernel", None)


def in_kernel() -> bool:
    """True inside a running Jupyter kernel (then long work goes to a background thread)."""
    return _kernel() is not None


def headless() -> bool:
    """True inside a kernel driven by a headless executor (nbconvert / nbclient / papermill), which
    saves widget state when the last cell returns: work must finish inside the cell there. They
    run cells with stdin disabled; JupyterLab, Notebook, VS Code and Colab enable it."""
    kernel = _kernel()
    return kernel is not None and getattr(kernel, "_allow_stdin", True) is False


_LIVE: "weakref.WeakSet" = weakref.WeakSet()  # views that started background work


@atexit.register
def _stop_background_work() -> None:
    """At interpreter exit, cancel and join background work, so the process does not abort
    inside torch (a daemon thread killed mid-operation ends it with SIGABRT)."""
    for view in list(_LIVE):
        view.cancel()
    for view in list(_LIVE):
        view.wait(timeout=30)


def unexpected_keyword(cls, name: str, also=()) -> TypeError:
    """TypeError for a misspelled keyword argument, naming the closest valid one."""
    import difflib
    import inspect

    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs", "args")]
    valid += [n for n in also if not n.startswith("_")]
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(sorted(set(valid)))}"
    return TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}{hint}")


def accepts_messages(init):
    """Wrap a view constructor `(self, session, text, ...)` so that it also takes
    `messages=[{'role': ..., 'content': ...}, ...]` and `chat_template=` (exactly one of text and
    messages): the messages become a `Chat` (Session.chat) passed on as the text, and the view's
    token_roles / token_markup / token_messages traits say the role of each input token."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, messages=None, chat_template=None, **kwargs):
        bound = sig.bind_partial(self, *args, **kwargs)
        session = bound.arguments.get("session")
        tokenizer = getattr(session, "tokenizer", None) if messages is not None else None
        text = chat_input(tokenizer, bound.arguments.get("text"), messages, chat_template)
        bound.arguments["text"] = text
        init(*bound.args, **bound.kwargs)
        truncate = bool(bound.arguments.get("truncate", bound.arguments.get("kwargs", {}).get("truncate", False)))
        if isinstance(text, Chat):
            self._show_roles(session, text, truncate)
        if isinstance(getattr(type(self), "text", None), t.TraitType):  # a view re-run on a new `text`
            self.observe(functools.partial(self._roles_follow_text, session, truncate), names=["text"])

    params = [p.replace(default=None) if p.name == "text" else p for p in sig.parameters.values()]
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in ("messages", "chat_template")]
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    try:
        __init__.__signature__ = sig.replace(parameters=params[:at] + extra + params[at:])
    except ValueError:  # text followed by a required positional parameter: it stays required
        pass
    return __init__


def routes_warnings(init):
    """Wrap a view constructor so that the warnings its work raises (`warnings.warn`, and the
    `transformers` / `llm_widgets` loggers' warning records), on its thread or on a worker it starts,
    go to the view's `notice` instead of stderr (routed_warnings). The outermost constructor of a
    subclass chain does it once."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_route" in self.__dict__:  # a subclass's constructor routes already
            return init(self, *args, **kwargs)
        with View._warning_route(self).building():
            init(self, *args, **kwargs)

    return __init__


class View(anywidget.AnyWidget):
    """Base of every llm-widgets view. Subclasses set `_bundle_name` and fill `.result`."""

    _bundle_name = ""
    # what `_export_extra` ships (a traits.Record of its keys; typed in the generated state as
    # `_export`); None: nothing ({}). Read from the class (a trait there; never synced)
    _export_record = None
    title = t.Unicode("").tag(sync=True)
    notice = t.Unicode("").tag(sync=True)  # non-fatal message shown above the view (e.g. truncation)
    error = t.Unicode("").tag(sync=True)  # fatal message from background work
    progress = t.Float(-1.0).tag(sync=True)  # 0..1 while working, -1 when idle
    progress_label = t.Unicode("").tag(sync=True)
    # a chat input (messages=): per input token, its message's role, whether the chat template wrote
    # it (markup) and its message index (llm_widgets.chat); empty for a plain text
    token_roles = t.List(t.Unicode()).tag(sync=True)
    token_markup = t.List(t.Bool()).tag(sync=True)
    token_messages = t.List(t.Int()).tag(sync=True)

    def __init_subclass__(cls, **kwargs):
        """A view whose constructor takes `text` also takes `messages=` and `chat_template=` (unless
        the class sets `_messages = False`); every view's constructor routes its warnings."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and "text" in inspect.signature(init).parameters and cls.__dict__.get("_messages", True):
            cls.__init__ = init = accepts_messages(init)
        if init is not None:
            cls.__init__ = routes_warnings(init)

    # -- warnings of the view's own work (routed_warnings): into `notice`, not to stderr -----------
    def _warning_route(self) -> WarningRoute:
        """This view's route (made on first use): it owns the thread building the view, the view's
        foreground runs and its background workers."""
        route = self.__dict__.get("_route")
        if route is None:
            route = self._route = WarningRoute(self._owns, self._warned_line)
        return route

    def _owns(self, thread: threading.Thread) -> bool:
        """True for a thread doing this view's background work."""
        return thread in self.__dict__.get("_workers", ())

    def _warned_line(self, line: str) -> None:
        """A warning of this view's work: once in the notice, after what the view itself says there."""
        lines = self.__dict__.setdefault("_warnings", [])
        if line in lines:
            return
        lines.append(line)
        if self.__dict__.get("_traits_up"):
            self.notice = self.notice  # the validator below appends it

    @t.validate("notice")
    def _notice_keeps_warnings(self, proposal) -> str:
        """Whatever the view writes in its notice, the warnings of its work stay in it."""
        value = proposal["value"]
        extra = [x for x in self.__dict__.get("_warnings", ()) if x not in value]
        return " ".join(x for x in (value, *extra) if x)

    def _show_roles(self, session, chat: Chat, truncate: bool) -> None:
        """Publish the roles of the chat's tokens that the model reads (the first max_length where
        truncated)."""
        n = session.encode(chat, truncate=truncate)[0]["input_ids"].shape[1]
        with self.hold_sync():  # one message to the front end
            self.token_roles = list(chat.roles[:n])
            self.token_markup = list(chat.markup[:n])
            self.token_messages = list(chat.message[:n])

    def _roles_follow_text(self, session, truncate: bool, change) -> None:
        """After a re-run on a new `text` (observed after the view's own re-run): the roles of the new
        chat, or none for a plain text; unchanged where the re-run failed (the old tokens stay)."""
        if self.error:
            return
        if isinstance(change["new"], Chat):
            self._show_roles(session, change["new"], truncate)
        else:
            with self.hold_sync():
                self.token_roles, self.token_markup, self.token_messages = [], [], []

    def __init__(self, **kwargs):
        unknown = [k for k in kwargs if not self.has_trait(k)]
        if unknown:
            raise unexpected_keyword(type(self), unknown[0], self.trait_names())
        self._esm = bundle(self._bundle_name)
        self._workers: list[threading.Thread] = []
        self._run_id = 0
        self._cancel = threading.Event()
        super().__init__(**kwargs)
        self._traits_up = True  # a warning routed from now on updates the notice itself
        if self.__dict__.get("_warnings"):
            self.notice = self.notice

    # -- long work -----------------------------------------------------------------------------
    def _report(self, fraction: float, label: str = "") -> None:
        self.progress = float(min(max(fraction, 0.0), 1.0))
        if label:
            self.progress_label = label

    def _run(self, work: Callable[[Callable[[float, str], None]], Any],
             done: Callable[[Any], None], background: bool | None) -> None:
        """Run work(report) then done(result). In the background the kernel stays free: the
        progress traits update the bar as it goes, and an error lands in `.error` (and is re-raised
        in the foreground). A new run supersedes (cancels) the previous one: only the newest run's
        result, error and progress are shown. In a notebook executed headless (nbconvert, nbclient)
        the work runs in the foreground, so the saved notebook holds finished views. background=None
        (every view's default): in the background inside a Jupyter kernel, in the foreground in
        scripts. Inside an `ablate(...)` block it always runs in the foreground: the block's hooks act
        on its own thread's forwards, and a worker could outlive the block."""
        self._cancel.set()  # the previous run, if any, stops at its next progress report
        self._run_id += 1
        rid, cancel = self._run_id, threading.Event()
        self._cancel = cancel
        background = (in_kernel() if background is None else bool(background)) and not headless() \
            and not intervening()

        def report(fraction: float, label: str = "") -> None:
            if cancel.is_set():
                raise Cancelled("cancelled: a newer run or view.cancel() stopped this work")
            if rid == self._run_id:
                self._report(fraction, label)

        def go():
            with self._warning_route().owning():  # warnings of a foreground run go to the notice too
                run()

        def run():
            if rid == self._run_id:
                self.error = ""
                self._report(0.0)
            try:
                result = work(report)
                if rid == self._run_id and not cancel.is_set():
                    done(result)
            except Exception as e:  # surface to the UI; nothing the user typed is lost
                if rid == self._run_id:
                    self.error = f"{type(e).__name__}: {e}"
                if not background:
                    raise
            finally:
                if rid == self._run_id:
                    self.progress = -1.0

        if background:
            worker = threading.Thread(target=go, daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            _LIVE.add(self)
            worker.start()
        else:
            go()

    @property
    def computing(self) -> bool:
        """True while background work of this view is running."""
        return any(w.is_alive() for w in self._workers)

    def cancel(self) -> "View":
        """Stop the background work at its next progress step; `.error` then says it was cancelled."""
        self._cancel.set()
        return self

    def wait(self, timeout: float | None = None) -> "View":
        """Block until background work finishes (for scripts and tests)."""
        for w in list(self._workers):
            w.join(timeout)
        return self

    # -- export --------------------------------------------------------------------------------
    def _export_extra(self) -> dict:
        """Data a view needs to work with no kernel (e.g. every head at full resolution)."""
        return {}

    def _static_figure(self) -> str:
        """HTML of the main figure without scripts (llm_widgets.fallback), for exports opened where
        scripts do not run; the message alone by default."""
        return ""

    def export_state(self) -> dict:
        state = {k: v for k, v in self.get_state().items()
                 if not k.startswith("_") and k not in ("layout", "tabbable", "tooltip")}
        extra = self._export_extra()
        declared = set(getattr(type(self)._export_record, "fields", {}))
        if set(extra) - declared:
            raise LLMWidgetsError(f"{type(self).__name__}._export_extra ships {sorted(set(extra) - declared)}, "
                                  f"which its _export_record does not declare ({sorted(declared)}): declare them")
        state["_export"] = extra
        return state

    def to_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write a self-contained HTML file (bundle and data inlined) that renders this view with
        no kernel and no network."""
        path = Path(path)
        self.wait()  # an export holds finished results (or the error that ended the work)
        page = render_html([(self._bundle_name, self.export_state())], title or self.title or type(self).__name__,
                           fallback_block(self._static_figure()))
        path.write_text(page, encoding="utf-8")
        return path


def _jsonable(obj):
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"__b64__": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def script_json(obj) -> str:
    """JSON safe to place inside <script type="application/json">: no '<', '>' or '&' survive."""
    text = json.dumps(_jsonable(obj), separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(views: list[tuple[str, dict]], title: str, fallback: str = "") -> str:
    """One page mounting each (bundle name, state) with the export host (js/src/export_host.ts).
    `fallback` (llm_widgets.fallback.block) is what shows where scripts do not run; the export host
    removes it once the views are mounted."""
    bundles = {name: base64.b64encode(bundle(name).encode()).decode("ascii") for name, _ in views}
    payload = {"bundles": bundles, "views": [{"bundle": n, "state": s} for n, s in views]}
    host = bundle("export_host").replace("</", "<\\/")  # cannot close the script element early
    csp = ("default-src 'none'; script-src 'unsafe-inline' blob:; style-src 'unsafe-inline'; "
           "img-src data: blob:")
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">"
        f"<title>{html.escape(title)}</title></head>\n"
        f"<body style=\"margin:12px;font-family:system-ui,sans-serif\">{fallback}<div id=\"lw-root\"></div>\n"
        f"<script type=\"application/json\" id=\"lw-payload\">{script_json(payload)}</script>\n"
        f"<script type=\"module\">{host}</script>\n</body></html>\n"
    )
