"""The views' synced state as TypeScript types, generated from their traits: `js/src/generated/state.ts`
declares one interface per view (`AttentionViewState`, ...), and each view's front end reads its
model through `Model<ThatState>`, so a trait renamed or retyped in Python fails the typecheck
(`npm run typecheck`, in `make test`) instead of drawing nothing. The file is written by
`python -m llm_widgets.widgets.schema` (`make schema`, and `npm run build` checks it is current:
tests/test_schema.py)."""
from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

import ipywidgets
import traitlets as t

from .traits import Array, Fixed, Index, Layer, Record

OUT = Path(__file__).resolve().parents[2] / "js" / "src" / "generated" / "state.ts"
MODULES = ("attention", "attribution", "audit", "concepts", "direct_logit", "explorer", "features", "graph",
           "logit_lens", "neuron", "patching", "probing", "steering", "surrogate")
HEADER = """\
// Generated from the views' traits by `python -m llm_widgets.widgets.schema`; do not edit.
// `any`: a Dict or List whose items its trait does not describe (only where the value is truly open:
// tests/test_schema.py lists them). PackedArray<{...}>: an Array trait's
// packed record with what it is of (Array(of=...)); {} (no `shape`) until computed.
// One interface per view: the state Python syncs, as the front end reads it (Model<...State>).
/* eslint-disable */
import type { PackedArray } from "../lib/buffers";

"""


def ts_type(trait: t.TraitType) -> str:
    """The TypeScript type of a trait's synced value (`any` inside a Dict or List whose items the
    trait does not describe: their shape is the view's to check)."""
    none = " | null" if getattr(trait, "allow_none", False) else ""
    if isinstance(trait, Layer):
        return "number" + (' | "embeddings"' if trait.embeddings else "") + none
    if isinstance(trait, Index):
        return "number" + none
    if isinstance(trait, Array):
        return f"PackedArray<{object_type(trait.of, _of_type)}>" if trait.of else "PackedArray"
    if isinstance(trait, Record):
        empty = " | Record<string, never>" if trait.empty else ""
        return object_type(trait.fields, ts_type, trait.optional) + empty + none
    if isinstance(trait, t.Instance) and isinstance(trait.klass, type) and issubclass(trait.klass, ipywidgets.Widget):
        return "string"  # a widget sent by reference ("IPY_MODEL_<id>", ipywidgets.widget_serialization)
    if isinstance(trait, t.Enum):
        return " | ".join(json.dumps(v) for v in trait.values) + none
    if isinstance(trait, (t.Unicode, t.CUnicode)):
        return "string" + none
    if isinstance(trait, (t.Int, t.Float, t.CInt, t.CFloat)):
        return "number" + none
    if isinstance(trait, (t.Bool, t.CBool)):
        return "boolean" + none
    if isinstance(trait, t.Union):
        return " | ".join(dict.fromkeys(ts_type(x) for x in trait.trait_types)) + none
    if isinstance(trait, Fixed):
        return "[" + ", ".join(ts_type(x) for x in trait.items) + "]" + none
    if isinstance(trait, t.Tuple) and getattr(trait, "_traits", None):
        return "[" + ", ".join(ts_type(x) for x in trait._traits) + "]" + none
    if isinstance(trait, (t.List, t.Tuple)):
        inner = getattr(trait, "_trait", None)
        item = ts_type(inner) if isinstance(inner, t.TraitType) else "any"
        return (f"({item})[]" if " " in item else f"{item}[]") + none
    if isinstance(trait, t.Dict):
        value = getattr(trait, "_value_trait", None)
        return f"Record<string, {ts_type(value) if isinstance(value, t.TraitType) else 'any'}>" + none
    return "any"


def _of_type(kind) -> str:
    """The TypeScript type of one key of an `Array(of=...)` declaration."""
    if isinstance(kind, tuple):
        return " | ".join(json.dumps(v) for v in kind)
    return {int: "number", float: "number", str: "string", bool: "boolean"}[kind]


def object_type(fields: dict, type_of, optional=()) -> str:
    """`{ key: type; ... }` of declared fields (a Record's, an Array's `of`), in declaration order."""
    return "{ " + " ".join(f"{k}{'?' if k in optional else ''}: {type_of(v)};" for k, v in fields.items()) + " }"


def views() -> list[type]:
    """Every view class (llm_widgets.widgets.base.View subclasses of the view modules), by name."""
    from .base import View

    found = {}
    for name in MODULES:
        mod = importlib.import_module(f"llm_widgets.widgets.{name}")
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, View) and cls is not View and cls.__module__ == mod.__name__:
                found[cls.__name__] = cls
    return [found[k] for k in sorted(found)]


def interface(cls: type) -> str:
    """`export interface <Class>State { trait: type; ... }` of the class's synced traits (anywidget's
    and ipywidgets' own, `_esm`, `layout`, ..., left out)."""
    import anywidget

    machinery = set(anywidget.AnyWidget.class_traits(sync=True))
    lines = [f"export interface {cls.__name__}State {{"]
    for name, trait in sorted(cls.class_traits(sync=True).items()):
        if name in machinery:
            continue
        lines.append(f"  {name}: {ts_type(trait)};")
    lines.append("  /** Only in a static export: what the view ships for offline use (View._export_extra). */")
    record = getattr(cls, "_export_record", None)
    lines.append(f"  _export?: {ts_type(record) if record is not None else 'Record<string, never>'};")
    lines.append("}")
    return "\n".join(lines)


def generate() -> str:
    return HEADER + "\n\n".join(interface(c) for c in views()) + "\n"


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python -m llm_widgets.widgets.schema", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
