"""Typed traits for views (in the spirit of lonboard's trait types and jupyter-scatter's Array):
an array trait that validates and packs itself for binary transport, so views assign numpy arrays
and never pack by hand."""
from __future__ import annotations

import numpy as np
import traitlets as t

from ..layers import EMBEDDINGS, is_index
from .base import TRANSPORTS, encode_array


class Array(t.TraitType):
    """A numpy array sent to the browser as binary: `dtype` is the transport ('uint8' with
    scale/offset over [lo, hi], 'float16', 'float32', or 'int32' / 'uint16' for exact integers
    such as indices and cluster ids); `ndim` is checked when given. Reading the trait gives the
    packed record (what the front end decodes); `decode_array` turns it back into numpy. An empty
    dict means "not computed yet". Assign `(array, {"layer": 2})` to send what the array is of
    with it (the front end checks it matches its selection before drawing)."""

    info_text = "a numpy array"

    def __init__(self, dtype: str = "float32", *, ndim: int | None = None, lo: float | None = None,
                 hi: float | None = None, **kwargs):
        if dtype not in TRANSPORTS:
            raise ValueError(f"transport dtype must be one of {TRANSPORTS}, got {dtype!r}")
        self.dtype, self.ndim, self.lo, self.hi = dtype, ndim, lo, hi
        super().__init__(default_value={}, **kwargs)

    def validate(self, obj, value):
        meta = {}
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            value, meta = value
        if isinstance(value, dict):
            if value and (value.get("dtype") != self.dtype or "shape" not in value or "data" not in value):
                self.error(obj, value, info=f"a packed {self.dtype} array")
            shape = value.get("shape")
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                self.error(obj, value)
            shape = list(arr.shape)
            value = encode_array(arr, self.dtype, self.lo, self.hi)
        if meta:
            value = {**value, **meta}
        if value and self.ndim is not None and len(shape) != self.ndim:
            raise t.TraitError(f"The '{self.name}' trait of {type(obj).__name__} takes a {self.ndim}-D array, "
                               f"got shape {tuple(shape)}")
        return value



class Index(t.TraitType):
    """A selection (`selected_*`): an index into something the view counts, or None (nothing
    selected; a negative index is an error, never "none"). `bound` names the trait holding the
    count ("n_heads") or a list whose length is the count ("tokens"); the range is checked once the
    count is known, after the other traits set in the same call (so `View(..., n_heads=4,
    selected_head=3)` works in any order). `optional=False` forbids None (a view that always shows
    one)."""

    info_text = "an index or None"
    from_end = False  # negative indices count from the end (layers, as in Python)
    embeddings = False  # lw.EMBEDDINGS is a value too (views with a row for the embedding output)

    def __init__(self, bound: str, *, default: int | None = None, optional: bool = True, **kwargs):
        self.bound = bound
        super().__init__(default_value=default, allow_none=optional, **kwargs)

    def count(self, obj) -> int:
        n = getattr(obj, self.bound, 0)
        return len(n) if isinstance(n, (list, tuple)) else int(n)

    def _accepted(self) -> str:
        return ((" or lw.EMBEDDINGS (the embedding output)" if self.embeddings else "")
                + (", or None (nothing selected)" if self.allow_none else ""))

    def validate(self, obj, value):
        if value is None and self.allow_none:
            return None
        if self.embeddings and isinstance(value, str) and value == EMBEDDINGS:
            return EMBEDDINGS
        if not is_index(value):
            raise t.TraitError(f"{self.name} must be an integer index{self._accepted()}, got {value!r}")
        return int(value)

    def _cross_validate(self, obj, value):
        if value is not None and value != EMBEDDINGS:
            n = self.count(obj)
            low = -n if self.from_end else 0
            if value < low or (n and value >= n):
                end = " (negative: from the end)" if self.from_end else ""
                raise t.TraitError(f"{self.name} must be in 0..{n - 1}{end}{self._accepted()}; got {value}")
            value = value % n if n and value < 0 else value
        return super()._cross_validate(obj, value)


class Layer(Index):
    """`selected_layer`: a block index (0 = first block; negative indices count from the end as in
    Python and are stored as the block they name: -1 selects the last block), or None.
    `embeddings=True` also accepts lw.EMBEDDINGS, in views with a row for the embedding output."""

    from_end = True

    def __init__(self, *, default: int | None = None, embeddings: bool = False, optional: bool = True, **kwargs):
        self.embeddings = embeddings
        super().__init__("n_layers", default=default, optional=optional, **kwargs)
