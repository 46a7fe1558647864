"""The views' TypeScript state types are generated from their Python traits (llm_widgets.widgets.schema)
and every view's front end reads its model through them: the committed file is current, and a trait
renamed in Python makes the front end fail its typecheck (instead of drawing nothing)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import traitlets as t

from llm_widgets.widgets import schema
from llm_widgets.widgets.traits import Array, Index, Layer

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_state_types_are_current():
    assert schema.main(["--check"]) == 0, "run: python -m llm_widgets.widgets.schema"


def test_trait_types_map_to_typescript():
    assert schema.ts_type(t.Unicode()) == "string"
    assert schema.ts_type(t.List(t.Unicode())) == "string[]"
    assert schema.ts_type(t.List(t.List(t.Int()))) == "number[][]"
    assert schema.ts_type(t.Enum(["a", "b"])) == '"a" | "b"'
    assert schema.ts_type(Array("float32")) == "PackedArray"
    assert schema.ts_type(Index("n_heads")) == "number | null"
    assert schema.ts_type(Layer(embeddings=True)) == 'number | "embeddings" | null'
    assert schema.ts_type(t.Dict()) == "Record<string, any>"


def test_every_view_reads_its_model_through_its_state_type():
    for cls in schema.views():
        name = f"{cls.__name__}State"
        users = [p for p in (ROOT / "js" / "src" / "views").glob("*.ts") if f"Model<{name}>" in p.read_text()]
        assert users, f"no view reads its model as Model<{name}>"


@pytest.mark.skipif(shutil.which("npx") is None or not (ROOT / "node_modules" / "typescript").exists(),
                    reason="needs node and the JS dev dependencies (npm install)")
def test_a_renamed_trait_fails_the_typecheck(tmp_path):
    js = tmp_path / "js"
    shutil.copytree(ROOT / "js" / "src", js / "src")
    shutil.copy(ROOT / "js" / "tsconfig.json", js / "tsconfig.json")
    (js / "tsconfig.json").write_text((js / "tsconfig.json").read_text().replace('"test/**/*.ts"', '"src/**/*.d.ts"'))
    state = js / "src" / "generated" / "state.ts"
    text = state.read_text()
    block = re.search(r"export interface AttentionViewState \{.*?\n\}", text, re.S).group(0)
    state.write_text(text.replace(block, block.replace("  selected_head:", "  selected_head_index:")))
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    out = subprocess.run([str(tsc), "--noEmit", "-p", str(js)], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "attention.ts" in out.stdout and "selected_head" in out.stdout, out.stdout[-2000:]
