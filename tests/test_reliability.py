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
from llm_widgets.compute.activations import extract
from llm_widgets.widgets.traits import _unpack

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
        lw.NeuronView(s, clean, selected_layer=1)
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
    assert state["targets"] == ["target"] and _unpack(state["scores"]).shape == (1, len(v.tokens))
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
    w = lw.AttributionView(keyword, NEG, _gated(gate2), method="ig", steps=64, internal_batch_size=2,
                           background=True)
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


# -- values that used to become wrong numbers, and raw library errors ------------------------------
def test_bad_values_are_errors_not_numbers(keyword, tiny_gpt2, minilm):
    from llm_widgets.compute.attribution import attribute
    from llm_widgets.compute.patching import patching

    err = (lw.LLMWidgetsError, TypeError)
    with pytest.raises(Exception, match="integer index"):
        lw.AttentionView(minilm, "two words", selected_layer=True)
    v = lw.AttentionView(minilm, "two words")
    with pytest.raises(Exception, match="integer index"):
        v.selected_head = True
    with pytest.raises(err, match="k must be >= 1"):
        lw.LogitLensView(tiny_gpt2, "one two three", k=0)
    with pytest.raises(err, match="k must be >= 1"):
        lw.NeuronView(tiny_gpt2, "one two three", k=-1)
    with pytest.raises(err, match="internal_batch_size must be >= 1"):
        attribute(keyword, NEG, method="ig", internal_batch_size=-1)
    with pytest.raises(err, match="steps must be an integer"):
        attribute(keyword, NEG, method="ig", steps=1.5)
    with pytest.raises(err, match="seed must be"):
        attribute(keyword, NEG, method="shapley", seed="x")
    with pytest.raises(err, match="n_samples must be >= 1"):
        attribute(keyword, NEG, method="lime", n_samples=-1)
    with pytest.raises(err, match="same class as target"):
        attribute(keyword, NEG, target="NEGATIVE", contrast="NEGATIVE", method="occlusion")
    with pytest.raises(err, match="same token as target"):
        attribute(tiny_gpt2, "one two three", target="four", contrast="four", method="occlusion")
    with pytest.raises(err, match="not in this model's vocabulary"):
        attribute(tiny_gpt2, "one two three", target="\u2603\u2603", method="occlusion")
    with pytest.raises(err, match="not in this model's vocabulary"):
        patching(tiny_gpt2, "one two three", "one two four", answers=("\u2603", "four"))
    with pytest.raises(err, match="must return a tensor"):
        attribute(keyword, NEG, target=lambda out: 3.0, method="occlusion")
    with pytest.raises(TypeError, match=r"\['attention'\]"):
        lw.Explorer(minilm, "two words", panels="attention")
    with pytest.raises(TypeError, match="did you mean 'method'"):
        lw.AttributionView(keyword, NEG, methd="occlusion")
    with pytest.raises(TypeError, match="did you mean 'target'"):
        lw.AttributionView(keyword, NEG, taget="NEGATIVE")
    with pytest.raises(TypeError, match="text must be a str"):
        lw.AttributionView(keyword, [NEG])


def test_probe_labels_groups_and_duplicates(minilm):
    from llm_widgets.compute.activations import extract
    from llm_widgets.compute.probing import probe_layers

    with pytest.raises(lw.LLMWidgetsError, match="missing"):
        probe_layers(extract(minilm, TEXTS, LABELS[:-1] + [None]))
    with pytest.raises(lw.LLMWidgetsError, match="missing"):
        probe_layers(extract(minilm, TEXTS, LABELS[:-1] + [float("nan")]))
    with pytest.raises(lw.LLMWidgetsError, match="Cannot split|single class|at least"):
        lw.ProbeView(minilm, TEXTS[:4], LABELS[:4], background=False)
    # duplicated texts would leak across the split: they are kept together, and the view says so
    dup = [f"sentence number {i} is {'good' if i % 2 else 'bad'}" for i in range(20)] * 3
    lab = [str(i % 2) for i in range(20)] * 3
    with pytest.warns(UserWarning, match="40 of 60 texts repeat"):
        r = probe_layers(extract(minilm, dup, lab), seeds=2)
    assert r.mean.max() <= 1.0
    v = lw.ProbeView(minilm, dup, lab, seeds=2, background=False)
    assert "40 of 60 texts repeat" in v.notice
    g = lw.ProbeView(minilm, dup, lab, seeds=2, groups=[i % 20 for i in range(60)], background=False)
    assert g.notice == "" and g.result is not None
    with pytest.raises(lw.LLMWidgetsError, match="groups"):
        lw.ProbeView(minilm, dup, lab, groups=[1, 2], background=False)


def test_session_inputs(minilm):
    from transformers import AutoModel

    model, tok = minilm.model, minilm.tokenizer
    with pytest.raises(TypeError, match="model first"):
        lw.load((tok, model))
    if not torch.cuda.is_available():
        with pytest.raises(lw.LLMWidgetsError, match="no CUDA GPU"):
            lw.load((model, tok), device="cuda")
    with pytest.raises(lw.LLMWidgetsError, match="not a floating-point"):
        lw.load((AutoModel.from_config(model.config), tok), dtype=torch.int8)
    with pytest.raises(TypeError, match="text must be a str"):
        minilm.trace(["a", "list"])


def test_audit_inputs_and_csv_injection(keyword, tmp_path):
    texts = ["the film was great", "=HYPERLINK(\"http://x\")", "a terrible plot", "@SUM(1)"]
    with pytest.raises(lw.LLMWidgetsError, match="outside the model's classes"):
        lw.AuditView(keyword, texts=texts, labels=[0, 1, 2, 1], groups=["a", "a", "b", "b"], background=False)
    with pytest.raises(lw.LLMWidgetsError, match="not a class"):
        lw.AuditView(keyword, texts=texts, labels=[0, 0.5, 1, 1], groups=["a", "a", "b", "b"], background=False)
    with pytest.raises(lw.LLMWidgetsError, match="non-empty string"):
        lw.AuditView(keyword, texts=[None] + texts[1:], background=False)
    with pytest.raises(lw.LLMWidgetsError, match="tolerance must be >= 0"):
        lw.AuditView(keyword, texts=texts, tolerance=-0.1, background=False)
    v = lw.AuditView(keyword, texts=texts * 2, labels=[1, 0, 0, 1] * 2, groups=["=cmd|' /C calc'!A0", "b"] * 4,
                     background=False)
    import csv
    v.result.summary[0]["detail"] = "=cmd|' /C calc'!A0"  # text from a user's term list or group name
    v.result.summary[1]["check"] = "@SUM(A1)"
    rows = list(csv.reader(v.to_csv(tmp_path / "a.csv").open()))
    cells = [c for r in rows for c in r]
    assert not any(c[:1] in "=+-@" and c for c in cells), [c for c in cells if c[:1] in "=+-@"]
    assert "'=cmd|' /C calc'!A0" in cells and "'@SUM(A1)" in cells  # there, as text
    long = " ".join(["word"] * 2000)
    with pytest.raises(lw.InputTooLongError, match=r"texts\[0\] is 2002 tokens long"):
        lw.AuditView(keyword, texts=[long, "the film was great"], background=False)
    s = lw.AuditView(keyword, texts=[long, "the film was great"], truncate=True, background=False)
    assert "1 of 2 texts truncated to their first 512 tokens" in s.notice


def test_explorer_closes_replaced_panels_and_lists_failed_ones(keyword):
    ex = lw.Explorer(keyword, NEG, options={"attribution": {"method": "occlusion"}})
    ex.wait(120)
    old = list(ex.views)
    ex.text = "a wonderful story with a great cast"
    assert all(v.comm is None for v in old)  # closed: no front end, no kernel-side comm left
    assert all(v not in old for v in ex.views)

    def broken(out):
        raise RuntimeError("this panel's target fails")
    ex2 = lw.Explorer(keyword, NEG, options={"attribution": {"target": broken, "method": "occlusion"}})
    ex2.wait(120)
    assert "attribution" not in ex2.view_names and "this panel's target fails" in ex2.skipped["attribution"]
