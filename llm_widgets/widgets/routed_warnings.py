"""Warnings raised by a view's own work, on any thread, routed into the view instead of stderr.

Two kinds of warnings are routed, by one mechanism: `warnings.warn` and the warning (and error)
records of the `transformers` and `llm_widgets` loggers (e.g. transformers' "Token indices sequence
length is longer than the specified maximum sequence length", which it writes with `logger.warning`).

`warnings.catch_warnings` swaps process-wide state and is not thread-safe, and a logging handler
sees every thread's records: a view that caught warnings with either while a panel computes in a
background thread would catch (or lose) the warnings of every thread. Here one `warnings.showwarning`
wrapper and one wrapper of `logging.Logger.callHandlers` (where a record goes to the handlers: the
stderr handler transformers installs, the root logger's, logging's last resort), installed on first
use, ask the live `WarningRoute`s whether one owns the thread that is warning: the owner takes the
warning as one line, e.g. into a view's notice, and no handler or `showwarning` sees it; every other
thread's warning goes on as before. A route made while another one is building on the same thread
(a panel an Explorer builds) is nested in it: what it owns goes to the outermost route. The warnings
filters and logger levels are left as they are: a warning they hide is not routed either; records
below WARNING and of other loggers are never routed.
"""
from __future__ import annotations

import itertools
import logging
import threading
import warnings
import weakref
from contextlib import contextmanager
from typing import Callable

# live routes, by creation order (the oldest owner of a thread takes its warnings)
_ROUTES: "weakref.WeakValueDictionary[int, WarningRoute]" = weakref.WeakValueDictionary()
_ORDER = itertools.count()
_LOCK = threading.Lock()
_BUILDING = threading.local()  # .stack: the routes building on this thread, innermost last

LOGGERS = ("transformers", "llm_widgets")  # the loggers (and their children) whose records are routed


def warning_line(message, category) -> str:
    """One line for a warning: its category and the first line of its message ('' for an empty one)."""
    return _line(message, category.__name__)


def record_line(record: logging.LogRecord) -> str:
    """One line for a log record: its library, its level and the first line of its message, e.g.
    'transformers warning: Token indices sequence length is longer than ...' ('' for an empty one)."""
    return _line(record.getMessage(), f"{record.name.split('.')[0]} {record.levelname.lower()}")


def _line(message, label: str) -> str:
    text = str(message).strip()
    first = text.splitlines()[0] if text else ""
    return f"{label}: {first}" if first else ""


class WarningRoute:
    """Takes the warnings raised on the threads `owns(thread)` accepts: `take(line)` gets one line each.

    While `building()` runs, its thread is owned too, and warnings of threads not known to be owned yet
    (a worker a view starts while it is built can warn before the view is reachable) are held; when the
    block ends they are taken where a route now owns their thread, or shown as usual. `owning()`
    owns its thread for the block without holding other threads' warnings (a view's foreground work)."""

    def __init__(self, owns: Callable[[threading.Thread], bool], take: Callable[[str], None]):
        self._owns, self._take = owns, take
        stack = getattr(_BUILDING, "stack", [])
        self._outer = weakref.ref(stack[-1]) if stack else None  # made while that route builds
        self._mine: dict[threading.Thread, int] = {}  # thread -> depth of building() / owning() blocks
        self._builders = 0  # building() blocks open (while > 0, unknown threads' warnings are held)
        self._held: list[tuple[threading.Thread, str, Callable[[], None]]] = []
        install()
        with _LOCK:
            _ROUTES[next(_ORDER)] = self

    def owns(self, thread: threading.Thread) -> bool:
        return thread in self._mine or bool(self._owns(thread))

    def take(self, line: str) -> None:
        """Take one warning line ('' -- an empty message -- is dropped)."""
        if line:
            self._take(line)

    def outermost(self) -> "WarningRoute":
        """The route this one was made inside (while it was building), and so on out; itself if none."""
        route = self
        while route._outer is not None and route._outer() is not None:
            route = route._outer()
        return route

    @contextmanager
    def owning(self):
        """Own the current thread for the block (blocks nest)."""
        install()  # again: a catch_warnings block entered since may have put the original back
        me = threading.current_thread()
        with _LOCK:
            self._mine[me] = self._mine.get(me, 0) + 1
        try:
            yield self
        finally:
            with _LOCK:
                self._mine[me] -= 1
                if not self._mine[me]:
                    del self._mine[me]

    @contextmanager
    def building(self):
        """Own the current thread and hold unknown threads' warnings for the block (blocks nest)."""
        with self.owning():
            with _LOCK:
                self._builders += 1
            stack = _BUILDING.__dict__.setdefault("stack", [])
            stack.append(self)
            try:
                yield self
            finally:
                stack.pop()
                with _LOCK:
                    self._builders -= 1
                    held, self._held = (self._held, []) if not self._builders else ([], self._held)
                for thread, line, show in held:
                    owner = next((r for r in _routes() if r.owns(thread)), None)
                    if owner is not None:
                        owner.outermost().take(line)
                    else:
                        show()

    def _hold(self, thread, line: str, show: Callable[[], None]) -> bool:
        with _LOCK:
            if not self._builders:
                return False
            self._held.append((thread, line, show))
        return True


def _routes() -> list[WarningRoute]:
    with _LOCK:
        return [r for _, r in sorted(_ROUTES.items())]


def _dispatch(line: str, show: Callable[[], None]) -> None:
    """A warning (as `line`) raised on the current thread: to the oldest route that owns the thread,
    else held by a route being built, else shown with `show()` as it would have been."""
    thread = threading.current_thread()
    routes = _routes()
    for route in routes:
        if route.owns(thread):
            route.outermost().take(line)
            return
    for route in routes:
        if route._hold(thread, line, show):
            return
    show()


def _routed_logger(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in LOGGERS)


def install() -> None:
    """Put the routing wrappers in front of the current `warnings.showwarning` and of
    `logging.Logger.callHandlers` (each once: a no-op where it is there already)."""
    previous = warnings.showwarning
    if not getattr(previous, "_lw_routed", False):
        def showwarning(message, category, filename, lineno, file=None, line=None):
            _dispatch(warning_line(message, category),
                      lambda: previous(message, category, filename, lineno, file, line))

        showwarning._lw_routed = True  # type: ignore[attr-defined]
        warnings.showwarning = showwarning

    handlers = logging.Logger.callHandlers
    if not getattr(handlers, "_lw_routed", False):
        def callHandlers(self, record):
            if record.levelno >= logging.WARNING and _routed_logger(record.name):
                _dispatch(record_line(record), lambda: handlers(self, record))
            else:
                handlers(self, record)

        callHandlers._lw_routed = True  # type: ignore[attr-defined]
        logging.Logger.callHandlers = callHandlers  # type: ignore[method-assign]
