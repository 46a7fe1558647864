"""What makes an anywidget front end portable to VS Code and Colab as well as JupyterLab/Notebook 7:
every bundle is one self-contained ES module — no CDN loads, no require.js/AMD, no imports."""
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "llm_widgets" / "static"
BUNDLES = sorted(p for p in STATIC.glob("*.js") if p.stem != "export_host")  # the views
# namespace names (createElementNS, the Snapshot SVG), never fetched
ALLOWED_URLS = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml"}


def test_every_view_has_a_bundle():
    views = {p.stem for p in (STATIC.parents[1] / "js" / "src" / "views").glob("*.ts")}
    assert views and views <= {p.stem for p in BUNDLES}


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_bundle_is_self_contained(bundle):
    src = bundle.read_text(encoding="utf-8")
    assert set(re.findall(r"https?://[^\s\"'`)]+", src)) <= ALLOWED_URLS
    assert not re.search(r"\brequire\s*\(|\bdefine\s*\(\s*\[|\bimport\s*\(|^\s*import\s", src, re.M)
    assert re.search(r"\bexport\s*\{", src), "an ES module with a default export"


def test_export_host_fetches_nothing():
    """The static-export host imports only the bundles inlined in the page (as blob: URLs)."""
    src = (STATIC / "export_host.js").read_text(encoding="utf-8")
    assert not re.findall(r"https?://", src)
    assert "createObjectURL" in src and not re.search(r"\bfetch\s*\(|XMLHttpRequest", src)


def test_committed_bundles_are_fresh():
    """The bundles are committed, so `pip install git+...` needs no Node; `make test` rebuilds them
    first, so on a clean clone (CI) any difference means someone changed js/src without committing
    the rebuilt bundles."""
    import os
    import subprocess

    if not os.environ.get("CI"):
        pytest.skip("checked in CI, on a clean clone after `make build`")
    diff = subprocess.run(["git", "status", "--porcelain", "--", str(STATIC)], capture_output=True, text=True,
                          cwd=STATIC.parents[1])
    assert diff.returncode == 0 and diff.stdout.strip() == "", (
        "llm_widgets/static differs from a fresh build: run `npm run build` and commit the bundles\n" + diff.stdout)


def test_array_trait_validates_and_packs():
    """Views assign numpy arrays; the trait packs them for binary transport and checks them."""
    import numpy as np
    import traitlets as t

    from llm_widgets.widgets.traits import Array

    class V(t.HasTraits):
        idx = Array("int32", ndim=2)
        f = Array("float16")

    v = V()
    v.idx = np.array([[1, 70000], [-1, 3]])
    assert v.idx.dtype == np.int32 and v.idx.tolist() == [[1, 70000], [-1, 3]]
    assert V.idx.metadata["to_json"](v.idx)["dtype"] == "int32"
    with pytest.raises(t.TraitError, match="2-D"):
        v.idx = np.arange(3)
    with pytest.raises(t.TraitError, match="integers"):
        v.idx = np.array([[0.5, 1.0]])
    with pytest.raises(t.TraitError):
        v.idx = {"dtype": "float32", "shape": [1], "data": b"0000"}  # a packed record is not an array
    v.f = [0.25, 0.5]
    assert v.f.tolist() == [0.25, 0.5]
    v.f = None  # not computed yet
