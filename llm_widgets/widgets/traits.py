"""Typed traits for views (in the spirit of lonboard's trait types and jupyter-scatter's Array):
an array trait that validates and packs itself for binary transport, so views assign numpy arrays
and never pack by hand."""
from __future__ import annotations

import numpy as np
import traitlets as t

from ..trace import EMBEDDINGS
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
    selected). `bound` names the trait holding the count ("n_layers") or a list whose length is the
    count ("tokens"); the range is checked once the count is known, after the other traits set in
    the same call (so `View(..., n_layers=4, selected_layer=3)` works in any order).
    `embeddings=True` also accepts EMBEDDINGS (views with a row for the embedding output);
    `optional=False` forbids None (a view that always shows one layer)."""

    info_text = "an index or None"

    def __init__(self, bound: str, *, default: int | None = None, embeddings: bool = False,
                 optional: bool = True, **kwargs):
        self.bound, self.embeddings = bound, embeddings
        super().__init__(default_value=default, allow_none=optional, **kwargs)

    def count(self, obj) -> int:
        n = getattr(obj, self.bound, 0)
        return len(n) if isinstance(n, (list, tuple)) else int(n)

    def validate(self, obj, value):
        if value is None and self.allow_none:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            none = " or None (nothing selected)" if self.allow_none else ""
            raise t.TraitError(f"{self.name} must be an integer index{none}, got {value!r}")
        return int(value)

    def _cross_validate(self, obj, value):
        if value is not None:
            n, low = self.count(obj), EMBEDDINGS if self.embeddings else 0
            if value < low or (n and value >= n):
                extra = " or lw.EMBEDDINGS (-1)" if self.embeddings else ""
                none = ", or None (nothing selected)" if self.allow_none else ""
                raise t.TraitError(f"{self.name} must be in 0..{n - 1}{extra}{none}; got {value}")
        return super()._cross_validate(obj, value)
