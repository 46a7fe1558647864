"""A notebook executed headless (nbclient, as `nbconvert --execute` does) keeps the widgets' state
in its metadata; reopened in JupyterLab WITHOUT running anything, the views render from it."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

TEXT = "The keys to the cabinet are on the table."


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [
        "import llm_widgets as lw\ns = lw.load()",
        f"ex = lw.Explorer(s, {TEXT!r})\nex.selected_token = 3\nex",
        f"v = lw.AttentionView(s, {TEXT!r}, selected_layer=2, selected_head=5)\nv",
    ]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True).execute()
    return nb


def test_executed_notebook_stores_widget_state(executed):
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    names = {m["state"].get("_bundle_name") or m["model_name"] for m in state.values()}
    views = [o for c in executed.cells for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 2
    for o in views:  # every displayed view's model is in the saved state
        assert o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] in state
    assert "AnyModel" in names


def test_saved_notebook_renders_without_running(executed, notebook):
    nb = notebook(executed, name="saved-state", run=False)
    page = nb.page
    page.wait_for_selector("[data-lw-view=explorer][data-ready='1']")
    page.wait_for_selector("[data-lw-view=explorer] [data-panel=attention] [data-lw-view=attention][data-ready='1']")
    page.wait_for_selector(":scope [data-lw-view=attention][data-ready='1'] >> nth=1")
    # nothing ran in this kernel: the widgets come from the saved state, selection included
    counts = page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
        .filter(c => c.model.type === 'code').map(c => c.model.executionCount)""")
    assert counts == [1, 2, 3]  # the counts saved by the headless run, not a new run
    assert page.evaluate("() => document.querySelector('[data-lw-view=explorer]').dataset.selected") == "3"
    assert nb.run("print('ex' in globals())") == "False"
    nb.screenshot("saved-state")
    assert not nb.errors
