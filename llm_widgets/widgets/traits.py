"""Typed traits for views, in the spirit of lonboard's trait types: each trait owns its value and
its serializer, so views assign numpy arrays, read numpy arrays back, and never pack by hand.

`Array` holds a validated numpy array (or None: not computed yet) and sends it to the browser as a
packed binary record (llm_widgets.widgets.base.encode_array; js/src/lib/buffers.ts decodes it).
What an array is of (the layer, head or position it was computed for) is declared on the trait
(`of=`), checked in Python, and emitted into the TypeScript state types (schema.py), so the front
end's reads of it are typechecked like its reads of traits. `Record` is a dict with declared,
typed fields (tables' rows, nested results), emitted as a TypeScript interface."""
from __future__ import annotations

from typing import Any

import numpy as np
import traitlets as t

from ..errors import NonFiniteError
from ..layers import EMBEDDINGS, is_index
from .base import TRANSPORTS, encode_array

HELD = {"uint8": np.float32, "float16": np.float32, "float32": np.float32, "int32": np.int32, "uint16": np.uint16}
OF_TYPES = (int, float, str, bool)


class ArrayOf(np.ndarray):
    """A numpy array with what it is of: `.of`, the keys its trait declares (`Array(of=...)`), e.g.
    `view.acts.of == {"layer": 2}`. Otherwise an ordinary (read-only) numpy array."""

    of: dict

    def __array_finalize__(self, obj) -> None:
        self.of = getattr(obj, "of", {})


def _unpack(record: dict) -> np.ndarray:
    """The array a packed record holds, as the front end decodes it (float32; uint8 records mapped
    back through offset + q * scale; int32 / uint16 exact). The inverse of encode_array, used by
    `Array`'s deserializer (and by tests of the wire format)."""
    raw = bytes(record["data"])
    kind = {"uint8": np.uint8, "float16": "<f2", "float32": "<f4", "int32": "<i4", "uint16": "<u2"}[record["dtype"]]
    a = np.frombuffer(raw, dtype=kind).astype(np.float32).reshape(record["shape"])
    return (record["offset"] + a * record["scale"]).astype(np.float32) if record["dtype"] == "uint8" else a


def _check_of(trait: t.TraitType, obj, of: dict, meta) -> dict:
    """`meta` checked against the declared keys and types of `of` (every key present, no other)."""
    if not isinstance(meta, dict):
        raise t.TraitError(f"{trait.name}: what the array is of must be a dict, got {type(meta).__name__}")
    missing, unknown = sorted(set(of) - set(meta)), sorted(set(meta) - set(of))
    if missing or unknown:
        raise t.TraitError(f"The '{trait.name}' trait of {type(obj).__name__} is sent with {sorted(of)}; "
                           + (f"missing {missing}" if missing else "") + ("; " if missing and unknown else "")
                           + (f"unknown {unknown}" if unknown else ""))
    out = {}
    for key, kind in of.items():
        v = meta[key]
        if isinstance(kind, tuple):  # one of these strings
            ok = isinstance(v, str) and v in kind
        elif kind is int:
            ok = is_index(v)
            v = int(v) if ok else v
        elif kind is float:
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            v = float(v) if ok else v
        else:
            ok = isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))
        if not ok:
            want = " or ".join(map(repr, kind)) if isinstance(kind, tuple) else kind.__name__
            raise t.TraitError(f"{trait.name}: {key!r} must be {want}, got {v!r}")
        out[key] = v
    return out


class Array(t.TraitType):
    """A numpy array sent to the browser as binary. `dtype` is the transport: 'uint8' (values mapped
    onto 0..255 over [lo, hi], default the array's range), 'float16', 'float32', or 'int32' /
    'uint16' for exact integers such as indices and cluster ids. `ndim` is checked when given.

    The value is the array itself, held read-only at float32 (int32 / uint16 for the integer
    transports; the wire may round it further: uint8, float16). None, the default, means "not
    computed yet" (the front end receives `{}` and draws nothing). Non-finite values, object or
    complex arrays, and non-integers (or values out of range) for an integer transport are errors
    when assigned.

    `of={"layer": int, ...}` declares what the array is of: assign `(array, {"layer": 2})`, read
    `view.acts.of["layer"]`. Every declared key must be given, with its type (int, float, str,
    bool, or a tuple of allowed strings); the keys travel in the packed record, typed in the
    generated TypeScript state (so a renamed key fails the front end's typecheck)."""

    info_text = "a numpy array"

    def __init__(self, dtype: str = "float32", *, ndim: int | None = None, lo: float | None = None,
                 hi: float | None = None, of: dict[str, Any] | None = None, **kwargs):
        if dtype not in TRANSPORTS:
            raise ValueError(f"transport dtype must be one of {TRANSPORTS}, got {dtype!r}")
        for key, kind in (of or {}).items():
            if not (kind in OF_TYPES or (isinstance(kind, tuple) and kind and all(isinstance(s, str) for s in kind))):
                raise ValueError(f"of[{key!r}]: use int, float, str, bool or a tuple of strings, got {kind!r}")
        self.dtype, self.ndim, self.lo, self.hi, self.of = dtype, ndim, lo, hi, dict(of or {})
        super().__init__(default_value=None, allow_none=True, **kwargs)
        self.tag(to_json=self._to_json, from_json=self._from_json)

    def validate(self, obj, value):
        if value is None:
            return None
        meta = None
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            value, meta = value
        elif isinstance(value, ArrayOf) and self.of:  # an array that carries what it is of
            meta = value.of
        if self.of and meta is None:
            raise t.TraitError(f"The '{self.name}' trait of {type(obj).__name__} is sent with what it is of: "
                               f"assign (array, {{{', '.join(repr(k) + ': ...' for k in self.of)}}})")
        if meta is not None and not self.of:
            raise t.TraitError(f"The '{self.name}' trait of {type(obj).__name__} declares nothing it is of "
                               f"(Array(of=...)); assign the array alone")
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            self.error(obj, value, info=f"a real numeric array for {self.dtype} transport")
        if self.ndim is not None and arr.ndim != self.ndim:
            raise t.TraitError(f"The '{self.name}' trait of {type(obj).__name__} takes a {self.ndim}-D array, "
                               f"got shape {arr.shape}")
        held = HELD[self.dtype]
        if np.issubdtype(held, np.integer) and arr.size:
            info = np.iinfo(held)
            if not np.array_equal(arr, np.round(arr)) or arr.min() < info.min or arr.max() > info.max:
                raise t.TraitError(f"The '{self.name}' trait of {type(obj).__name__} sends {self.dtype}: "
                                   f"integers in {info.min}..{info.max}")
        with np.errstate(over="ignore"):  # beyond float32's range is reported as non-finite below
            out = np.asarray(arr, dtype=held)
        if out.size and held is np.float32 and not np.isfinite(out).all():
            raise NonFiniteError(f"Cannot display non-finite values (NaN/inf, or beyond float32) in '{self.name}' "
                                 f"of {type(obj).__name__} (shape {arr.shape}).")
        out = out.view(ArrayOf) if self.of else (out.view() if out is value else out)
        if self.of:
            out.of = _check_of(self, obj, self.of, meta)
        out.flags.writeable = False
        return out

    def set(self, obj, value) -> None:
        """Assign, notifying observers (and the front end) unless the new array equals the old one
        in shape, values and what it is of (numpy's `==` is elementwise, so traitlets' own test
        cannot tell)."""
        new = self._validate(obj, value)
        old = obj._trait_values.get(self.name, self.default_value)
        obj._trait_values[self.name] = new
        same = (old is None and new is None) or (
            old is not None and new is not None and old.shape == new.shape and np.array_equal(old, new)
            and getattr(old, "of", None) == getattr(new, "of", None))
        if not same:
            obj._notify_trait(self.name, old, new)

    def _to_json(self, value, widget=None) -> dict:
        """The packed record the front end decodes ({} while not computed), with the `of` keys."""
        if value is None:
            return {}
        return {**encode_array(value, self.dtype, self.lo, self.hi), **getattr(value, "of", {})}

    def _from_json(self, record, widget=None):
        """The array of a packed record (a state set from the front end or read from an export)."""
        if not record:
            return None
        arr = _unpack(record)
        return (arr, {k: record[k] for k in self.of}) if self.of else arr


def to_wire(trait: t.TraitType | None, value, widget=None):
    """A value as its trait sends it: `Array`s packed (wherever they sit inside `Record`s, `Map`s
    and Lists), everything else as is."""
    if value is None or trait is None:
        return value
    if isinstance(trait, Array):
        return trait._to_json(value, widget)
    if isinstance(trait, Record):
        return {k: to_wire(trait.fields.get(k), v, widget) for k, v in value.items()}
    if isinstance(trait, (t.List, t.Tuple)) and isinstance(getattr(trait, "_trait", None), t.TraitType):
        return [to_wire(trait._trait, v, widget) for v in value]
    if isinstance(trait, t.Dict) and isinstance(getattr(trait, "_value_trait", None), t.TraitType):
        return {k: to_wire(trait._value_trait, v, widget) for k, v in value.items()}
    return value


class Record(t.Dict):
    """A dict with declared fields, each a trait (`Record({"id": t.Int(), "weights":
    Array("float32")})`): exactly those keys (those named in `optional` may be left out), each
    value validated by its trait; sent with nested `Array`s packed; emitted by schema.py as a
    TypeScript object type, so the front end's reads of its fields are typechecked.
    `allow_none=True` (a view's trait for a result not computed yet, or not asked for): the
    default is None; otherwise (rows of a list, fields of another record) a record is never None.
    Its arrays are packed when the record is the view's trait or sits in a `Map`, a `Rows` or another
    Record; a plain traitlets List of records does not pack them (sending it fails: numpy is not
    JSON): make a list whose rows hold arrays a `Rows`.
    `empty=True` also accepts `{}` (nothing yet: a view that clears the record rather than setting
    None), typed `{...} | Record<string, never>` so the front end tests a field before reading it."""

    info_text = "a record"

    def __init__(self, fields: dict[str, t.TraitType], *, optional: tuple[str, ...] = (), empty: bool = False,
                 **kwargs):
        for key, trait in fields.items():
            trait.name = key  # for the field's own error messages
        self.fields, self.optional, self.empty = dict(fields), tuple(optional), empty
        none = kwargs.pop("allow_none", False)
        super().__init__(per_key_traits=self.fields, default_value=None if none else {}, allow_none=none, **kwargs)
        self.tag(to_json=lambda value, widget=None: to_wire(self, value, widget))

    def validate(self, obj, value):
        value = super().validate(obj, value)
        if value is None or (self.empty and not value):
            return value
        missing = sorted(set(self.fields) - set(value) - set(self.optional))
        unknown = sorted(set(value) - set(self.fields))
        if missing or unknown:
            raise t.TraitError(f"{self.name}: a record of {sorted(self.fields)}"
                               + (f"; missing {missing}" if missing else "")
                               + (f"; unknown {unknown}" if unknown else ""))
        return value


class Map(t.Dict):
    """A dict from string keys to values of one trait (`Map(Record(...))`), sent with nested
    `Array`s packed; schema.py emits `Record<string, ...>`."""

    def __init__(self, value_trait: t.TraitType, **kwargs):
        super().__init__(value_trait=value_trait, key_trait=t.Unicode(), **kwargs)
        self.tag(to_json=lambda value, widget=None: to_wire(self, value, widget))


class Rows(t.List):
    """A list (`Rows(Record(...))`, `Rows(t.List(Record(...)))`) sent with the `Array`s inside its
    items packed; schema.py emits it as the list it is."""

    def __init__(self, trait: t.TraitType, **kwargs):
        super().__init__(trait, **kwargs)
        self.tag(to_json=lambda value, widget=None: to_wire(self, value, widget))


class Fixed(t.List):
    """A list of fixed length whose items have their own traits (`Fixed(t.Unicode(), t.Float())`:
    an (output, probability) pair), kept a list (traitlets' Tuple would turn it into a tuple);
    schema.py emits a TypeScript tuple `[string, number]`."""

    def __init__(self, *items: t.TraitType, **kwargs):
        self.items = items
        super().__init__(minlen=len(items), maxlen=len(items), **kwargs)

    def validate_elements(self, obj, value):
        value = super().validate_elements(obj, value)
        return [trait._validate(obj, v) for trait, v in zip(self.items, value)]


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
