"""Never a silently wrong number: concurrency, unfinished background work, cancellation, exits."""
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.compute.logit_lens import lens_logits
from llm_widgets.compute.probing import extract
from llm_widgets.widgets.base import decode_array

NEG = "the film was terrible and the acting was slow"
TEXTS = ["the film was great", "a terrible plot", "the acting was wonderful", "slow and dull scenes",
         "what a lovely story", "the worst ending ever"] * 2
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg"] * 2


@pytest.fixture(scope="module")
def keyword():
    return lw.teaching.keyword_classifier()


def _gated(gate):
    def target(out):  # a custom target that holds background work until the test lets it go
        gate.wait(60)
        return out.logits[:, 0]
    return target


def test_foreground_probing_while_attribution_runs_in_the_background(keyword):
    """Probing runs the base model (not the top module); it must still take turns with the
    background attribution's hooked forwards: same activations as alone, every time."""
    ref = extract(keyword, TEXTS, LABELS, batch_size=4).states
    v = lw.AttributionView(keyword, NEG, method="ig", steps=200, internal_batch_size=2, background=True)
    for _ in range(4):
        got = extract(keyword, TEXTS, LABELS, batch_size=4).states
        np.testing.assert_allclose(got, ref, atol=1e-5)
    v.wait(300)
    assert v.error == "" and v.result is not None
    alone = lw.AttributionView(keyword, NEG, method="ig", steps=200, internal_batch_size=2, background=False)
    np.testing.assert_allclose(v.result.scores, alone.result.scores, atol=1e-5)


def test_foreground_views_while_patching_runs_in_the_background(tiny_gpt2):
    s = tiny_gpt2
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupt = "When Mary and John went to the store, Mary gave a drink to"
    ref_patch = lw.PatchingView(s, clean, corrupt, answers=("mary", "john"), batch_size=4).result
    ref_lens = lens_logits(s, "one two three four five six")
    ref_acts = extract(s, TEXTS, LABELS, batch_size=4).states
    v = lw.PatchingView(s, clean, corrupt, answers=("mary", "john"), batch_size=4, background=True)
    for _ in range(3):
        torch.testing.assert_close(lens_logits(s, "one two three four five six"), ref_lens)
        np.testing.assert_allclose(extract(s, TEXTS, LABELS, batch_size=4).states, ref_acts, atol=1e-5)
        lw.NeuronView(s, clean, layer=1)
    v.wait(300)
    assert v.error == ""
    np.testing.assert_allclose(v.result.scores, ref_patch.scores, atol=1e-5)
    np.testing.assert_allclose(v.result.head_scores, ref_patch.head_scores, atol=1e-5)


def test_export_waits_for_background_work(keyword, tmp_path):
    gate = threading.Event()
    v = lw.AttributionView(keyword, NEG, _gated(gate), method="occlusion", background=True)
    assert v.computing and v.result is None
    threading.Timer(0.5, gate.set).start()
    path = v.to_html(tmp_path / "attr.html")
    assert not v.computing and v.result is not None
    state = v.export_state()
    assert state["targets"] == ["target"] and decode_array(state["scores"]).shape == (1, len(v.tokens))
    assert "preparing" not in path.read_text()


def test_explorer_export_waits_for_its_panels(keyword, tmp_path):
    ex = lw.Explorer(keyword, NEG, options={"attribution": {"method": "ig", "steps": 100,
                                                            "internal_batch_size": 2}})
    ex.to_html(tmp_path / "ex.html")
    attr = ex.panels["attribution"]
    assert attr.result is not None and not attr.computing and attr.progress == -1.0


def test_cancel_and_superseded_runs(keyword):
    gate = threading.Event()

    def failing(out):
        gate.wait(60)
        raise RuntimeError("the old run failed")

    v = lw.AttributionView(keyword, NEG, failing, method="occlusion", background=True)
    v._args["target"] = None  # the next run explains the predicted class instead
    v.method = "grad_x_input"  # supersedes the failing run
    gate.set()
    v.wait(120)
    assert v.error == "" and v.result is not None and v.result.method == "grad_x_input"
    # cancel: the work stops at its next step and says so
    gate2 = threading.Event()
    w = lw.AttributionView(keyword, NEG, _gated(gate2), method="ig", steps=64, internal_batch_size=2)
    w.cancel()
    gate2.set()
    w.wait(120)
    assert w.result is None and w.error.startswith("Cancelled")


def test_a_script_that_exits_while_a_view_computes_exits_cleanly(tmp_path):
    script = tmp_path / "exit_early.py"
    script.write_text(textwrap.dedent("""
        import llm_widgets as lw
        s = lw.teaching.keyword_classifier()
        v = lw.AttributionView(s, "the film was terrible and the acting was slow", method="ig",
                               steps=400, internal_batch_size=1, background=True)
        print("started", v.computing)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "started True" in out.stdout and "terminate called" not in out.stderr


def test_headless_execution_saves_finished_views(tmp_path):
    """nbclient (as nbconvert --execute) saves widget state when the last cell returns: views that
    would compute in the background there compute inside the cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import llm_widgets as lw\ns = lw.teaching.keyword_classifier()\n"
        f"v = lw.AttributionView(s, {NEG!r}, method='ig')\nv")]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    attr = [m["state"] for m in states.values() if m["state"].get("_esm") and "targets" in m["state"]]
    assert attr and attr[0]["targets"] == ["NEGATIVE"] and attr[0]["progress"] == -1.0
