"""Warnings raised by a view's own work, on any thread, routed into the view instead of stderr.

`warnings.catch_warnings` swaps process-wide state and is not thread-safe: a view that records
warnings with it while a panel computes in a background thread catches (or loses) the warnings of
every thread. Here one `warnings.showwarning` wrapper, installed on first use, asks each live
`WarningRoute` whether it owns the thread that is warning: the owner takes the warning (e.g. into a
view's notice), every other thread's warning goes on to whatever `showwarning` was there before.
The warnings filters are left as they are: a warning the filters hide is not routed either.
"""
from __future__ import annotations

import threading
import warnings
import weakref
from contextlib import contextmanager
from typing import Callable

_ROUTES: "weakref.WeakSet[WarningRoute]" = weakref.WeakSet()
_LOCK = threading.Lock()


def warning_line(message, category) -> str:
    """One line for a warning: its category and the first line of its message ('' for an empty one)."""
    text = str(message).strip()
    first = text.splitlines()[0] if text else ""
    return f"{category.__name__}: {first}" if first else ""


class WarningRoute:
    """Takes the warnings raised on the threads `owns(thread)` accepts: `take(line)` gets one line each.

    While `building()` runs, its thread is owned too, and warnings of threads not known to be owned yet
    (a worker a view starts while it is built can warn before the view is reachable) are held; when the
    block ends they are taken where `owns` now accepts their thread, or shown as usual."""

    def __init__(self, owns: Callable[[threading.Thread], bool], take: Callable[[str], None]):
        self._owns, self._take = owns, take
        self._builders: set[threading.Thread] = set()
        self._held: list[tuple[threading.Thread, tuple, Callable]] = []
        install()
        with _LOCK:
            _ROUTES.add(self)

    def owns(self, thread: threading.Thread) -> bool:
        return thread in self._builders or bool(self._owns(thread))

    def take(self, message, category) -> None:
        line = warning_line(message, category)
        if line:
            self._take(line)

    @contextmanager
    def building(self):
        install()  # again: a catch_warnings block entered since may have put the original back
        me = threading.current_thread()
        self._builders.add(me)
        try:
            yield self
        finally:
            self._builders.discard(me)
            with _LOCK:
                held, self._held = self._held, []
            for thread, args, show in held:
                if self.owns(thread):
                    self.take(args[0], args[1])
                else:
                    show(*args)

    def _hold(self, thread, args, show) -> bool:
        if not self._builders:
            return False
        with _LOCK:
            self._held.append((thread, args, show))
        return True


def install() -> None:
    """Put the routing wrapper in front of the current `warnings.showwarning` (once: no-op where it is)."""
    previous = warnings.showwarning
    if getattr(previous, "_lw_routed", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        thread = threading.current_thread()
        routes = list(_ROUTES)
        for route in routes:
            if route.owns(thread):
                route.take(message, category)
                return
        args = (message, category, filename, lineno, file, line)
        for route in routes:
            if route._hold(thread, args, previous):
                return
        previous(*args)

    showwarning._lw_routed = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning
