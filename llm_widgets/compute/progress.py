"""Progress callbacks: report(fraction in 0..1, label) from long compute functions to the views."""
from __future__ import annotations

from typing import Callable

Report = Callable[[float, str], None]


def no_progress(fraction: float, label: str = "") -> None:
    """The default Report: ignore progress."""
