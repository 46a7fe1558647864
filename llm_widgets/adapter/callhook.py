"""Forward hooks that fire on one call of a module per forward pass (a shared block runs once per layer)."""
from __future__ import annotations

from typing import Callable

from .facts import Ref


class CallHook:
    """A forward (pre-)hook on `ref.module` that runs `fn` only on call number `ref.call` of each
    forward pass (a shared block runs once per layer). Calls are counted modulo `ref.calls` and the
    count restarts with every forward of the model. `remove()` takes it off."""

    def __init__(self, model, ref: Ref, fn: Callable, *, pre: bool, with_kwargs: bool = False):
        self.count = 0
        self._handles = []
        if ref.calls > 1:
            self._handles.append(model.register_forward_pre_hook(self._reset))

            def wrapped(*args):
                n = self.count
                self.count = (n + 1) % ref.calls
                return fn(*args) if n == ref.call else None
        else:
            def wrapped(*args):
                return fn(*args)

        wrapped.__lw_hook__ = True
        reg = ref.module.register_forward_pre_hook if pre else ref.module.register_forward_hook
        self._handles.append(reg(wrapped, with_kwargs=with_kwargs))

    def _reset(self, module, args):
        self.count = 0

    def remove(self):
        for h in self._handles:
            h.remove()
