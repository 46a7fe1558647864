"""The views' TypeScript state types are generated from their Python traits (llm_widgets.widgets.schema)
and every view's front end reads its model through them: the committed file is current, and a trait
renamed in Python makes the front end fail its typecheck (instead of drawing nothing)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import ipywidgets
import pytest
import traitlets as t

from llm_widgets.errors import LLMWidgetsError
from llm_widgets.widgets import schema
from llm_widgets.widgets.traits import Array, Fixed, Index, Layer, Map, Record, Rows

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_state_types_are_current():
    assert schema.main(["--check"]) == 0, "run: python -m llm_widgets.widgets.schema"


# the only `any`s the generated state may hold, each with why its value is open
OPEN = {
    "  _export?: { children: ({ bundle: string; state: Record<string, any>; })[]; };":
        "Explorer's export: each child is another view's whole export state (that view's own State "
        "interface, read by the child's bundle)",
}


def test_the_state_types_hold_no_any_but_the_open_values():
    """Every synced value is typed: `any` is left only where the value is open, listed in OPEN."""
    code = [ln for ln in schema.generate().splitlines() if not ln.lstrip().startswith(("//", "/*"))]
    untyped = [ln for ln in code if re.search(r"\bany\b", ln) and ln not in OPEN]
    assert untyped == [], "type these traits (Record / Map / Rows / Fixed), or list them in OPEN with why"
    assert all(ln in code for ln in OPEN), "an OPEN entry no longer in the state: remove it"
    # the check itself: an untyped Dict in a view's state would be caught
    assert re.search(r"\bany\b", schema.ts_type(t.Dict())) and re.search(r"\bany\b", schema.ts_type(t.List()))


def test_trait_types_map_to_typescript():
    assert schema.ts_type(t.Unicode()) == "string"
    assert schema.ts_type(t.List(t.Unicode())) == "string[]"
    assert schema.ts_type(t.List(t.List(t.Int()))) == "number[][]"
    assert schema.ts_type(t.Enum(["a", "b"])) == '"a" | "b"'
    assert schema.ts_type(Array("float32")) == "PackedArray"
    assert schema.ts_type(Index("n_heads")) == "number | null"
    assert schema.ts_type(Layer(embeddings=True)) == 'number | "embeddings" | null'
    assert schema.ts_type(t.Dict()) == "Record<string, any>"


def test_what_an_array_is_of_and_records_are_typed():
    assert schema.ts_type(Array("float16", of={"layer": int, "mode": ("head", "mean")})) == \
        'PackedArray<{ layer: number; mode: "head" | "mean"; }>'
    row = Record({"id": t.Int(), "shift": t.Float(allow_none=True), "weights": Array("float32")}, optional=("shift",))
    assert schema.ts_type(row) == "{ id: number; shift?: number | null; weights: PackedArray; }"
    assert schema.ts_type(t.List(row)) == "({ id: number; shift?: number | null; weights: PackedArray; })[]"
    assert schema.ts_type(Record({"n": t.Int()}, allow_none=True)) == "{ n: number; } | null"  # not computed yet
    assert schema.ts_type(t.Tuple(t.Unicode(), t.Bool())) == "[string, boolean]"
    assert schema.ts_type(t.Union([t.Unicode(), t.Int(), t.Float()])) == "string | number"
    assert schema.ts_type(Map(t.List(t.Float()))) == "Record<string, number[]>"
    assert schema.ts_type(Fixed(t.Unicode(), t.Float())) == "[string, number]"
    assert schema.ts_type(Rows(t.List(Record({"w": Array("float32")}, optional=("w",))))) == "(({ w?: PackedArray; })[])[]"
    assert schema.ts_type(Record({"n": t.Int()}, empty=True)) == "{ n: number; } | Record<string, never>"
    assert schema.ts_type(t.List(t.Instance(ipywidgets.Widget))) == "string[]"  # sent as "IPY_MODEL_<id>"


def test_what_a_static_export_ships_is_typed():
    """`_export` is typed from the view's _export_record (none: an empty record), and a view whose
    _export_extra ships a key it does not declare is refused when exported."""
    from llm_widgets.widgets.attention import AttentionView
    from llm_widgets.widgets.audit import AuditView
    from llm_widgets.widgets.base import View

    assert "  _export?: { partial?: boolean; heads?: PackedArray; mean?: PackedArray; rollout?: PackedArray; };" \
        in schema.interface(AttentionView).splitlines()
    assert "  _export?: Record<string, never>;" in schema.interface(AuditView).splitlines()

    class Extra(View):
        _bundle_name = "audit"  # any built bundle
        _export_record = Record({"a": t.Int()})

        def _export_extra(self) -> dict:
            return {"a": 1, "b": 2}

    with pytest.raises(LLMWidgetsError, match=r"ships \['b'\].*declare"):
        Extra().export_state()


def test_every_view_reads_its_model_through_its_state_type():
    for cls in schema.views():
        name = f"{cls.__name__}State"
        users = [p for p in (ROOT / "js" / "src" / "views").glob("*.ts") if f"Model<{name}>" in p.read_text()]
        assert users, f"no view reads its model as Model<{name}>"


needs_tsc = pytest.mark.skipif(shutil.which("npx") is None or not (ROOT / "node_modules" / "typescript").exists(),
                               reason="needs node and the JS dev dependencies (npm install)")


def typecheck(tmp_path, interface: str, old: str, new: str) -> subprocess.CompletedProcess:
    """tsc over a copy of js/src whose generated `interface` has `old` replaced by `new` (once)."""
    js = tmp_path / "js"
    shutil.copytree(ROOT / "js" / "src", js / "src")
    shutil.copy(ROOT / "js" / "tsconfig.json", js / "tsconfig.json")
    (js / "tsconfig.json").write_text((js / "tsconfig.json").read_text().replace('"test/**/*.ts"', '"src/**/*.d.ts"'))
    state = js / "src" / "generated" / "state.ts"
    text = state.read_text()
    block = re.search(rf"export interface {interface} \{{.*?\n\}}", text, re.S).group(0)
    assert block.count(old) == 1, f"{old!r} is not in {interface} once"
    state.write_text(text.replace(block, block.replace(old, new)))
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    return subprocess.run([str(tsc), "--noEmit", "-p", str(js)], capture_output=True, text=True, timeout=300)


RENAMES = {  # what is renamed in the generated state -> (interface, old, new, the view that fails, the word tsc names)
    # a trait
    "trait": ("AttentionViewState", "  selected_head:", "  selected_head_index:", "attention.ts", "selected_head"),
    # what NeuronView's `acts` is of (Array(of={"layer": int}))
    "metadata key": ("NeuronViewState", "acts: PackedArray<{ layer: number; }>", "acts: PackedArray<{ block: number; }>",
                     "neuron.ts", "'layer'"),
    # AuditView's records are typed (audit.py: EXAMPLE): a field of an attack example
    "record field": ("AuditViewState", "; words_changed: number;", "; n_words_changed: number;", "audit.ts",
                     "words_changed"),
    # NeuronView's ablation (a Record, was an untyped Dict): its `outputs`
    "field of a newly typed record": ("NeuronViewState", "mode: string; outputs: string[];",
                                      "mode: string; output_names: string[];", "neuron.ts", "outputs"),
}


@needs_tsc
@pytest.mark.parametrize("what", list(RENAMES))
def test_a_rename_fails_the_typecheck(tmp_path, what):
    interface, old, new, view, word = RENAMES[what]
    out = typecheck(tmp_path, interface, old, new)
    assert out.returncode != 0 and view in out.stdout and word in out.stdout, out.stdout[-2000:]


@needs_tsc
def test_the_unedited_copy_typechecks(tmp_path):
    """The control for the renames above: the same copy, nothing renamed, passes tsc."""
    out = typecheck(tmp_path, "NeuronViewState", "acts: PackedArray<{ layer: number; }>",
                    "acts: PackedArray<{ layer: number; }>")
    assert out.returncode == 0, out.stdout[-2000:]
