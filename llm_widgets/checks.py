"""Argument checks shared by compute functions and views: a bad value is a clear error, never a
silently different computation."""
from __future__ import annotations

import math
import unicodedata

import numpy as np

from .errors import LLMWidgetsError


def integer(value, name: str, *, low: int | None = None, allow_none: bool = False) -> int | None:
    """An int (not a bool, not 1.5) >= low."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise LLMWidgetsError(f"{name} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise LLMWidgetsError(f"{name} must be >= {low}, got {value}")
    return int(value)


def number(value, name: str, *, low: float | None = None) -> float:
    """A finite real number (not a bool) >= low."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise LLMWidgetsError(f"{name} must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise LLMWidgetsError(f"{name} must be >= {low}, got {value}")
    return float(value)


def fraction(value, name: str, *, open_low: bool = False) -> float:
    """A real number (not a bool) in [0, 1], or in (0, 1] with `open_low`."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and (
        0.0 < float(value) <= 1.0 if open_low else 0.0 <= float(value) <= 1.0)
    if not ok:
        raise LLMWidgetsError(f"{name} must be a number in {'(0' if open_low else '[0'}, 1], got {value!r}")
    return float(value)


def names(value, name: str) -> list:
    """A list (or tuple, set) of names; a single string is an error, not a list of letters."""
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of names, not one string: write [{value!r}]")
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of names, got {type(value).__name__}") from None


def one_token(session, text: str, what: str) -> int:
    """The single vocabulary token `text` encodes to; an error if it is several tokens or unknown
    to the vocabulary (it would silently become the unknown token)."""
    tok = session.tokenizer
    ids = tok.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise LLMWidgetsError(f"{what} {text!r} is {len(ids)} tokens for this tokenizer "
                              f"({tok.convert_ids_to_tokens(ids)}); pass exactly one token (or a token id).")
    no_unknowns(session, ids, text, what)
    return ids[0]


def no_unknowns(session, ids, text: str, what: str) -> None:
    """Raise when `text` encoded to the tokenizer's unknown token although it is not that token."""
    unk = getattr(session.tokenizer, "unk_token_id", None)
    if unk is not None and unk in list(ids) and text.strip() != session.tokenizer.unk_token:
        raise LLMWidgetsError(f"{what} {text!r} is not in this model's vocabulary: it would be read as "
                              f"{session.tokenizer.unk_token!r}. Use words the tokenizer knows.")


FORMULA_STARTS = ("=", "+", "-", "@")


def csv_cell(value):
    """A spreadsheet-safe CSV cell: text Excel/LibreOffice could run as a formula gets a leading
    apostrophe; numbers stay numbers. Neutralised: text whose first character is a control character
    (tab, CR, LF, ...), and text that starts with = + - @ once NFKC-normalised (fullwidth ＝＋－＠ are
    those characters) and stripped of leading whitespace and invisible characters."""
    if not isinstance(value, str) or not value:
        return value
    head = unicodedata.normalize("NFKC", value)
    head = head[next((i for i, c in enumerate(head) if not _blank(c)), len(head)):]
    if unicodedata.category(value[0]) == "Cc" or head.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _blank(c: str) -> bool:
    """Whitespace, a control character or an invisible format character (zero-width space, BOM)."""
    return c.isspace() or unicodedata.category(c) in ("Cc", "Cf")
