"""The docs site (mkdocs.yml, docs/): it builds with warnings as errors, every view has a guide page
and an API entry, the benchmarks page is bench/out/summary.md, and the README's links into the
docs point at files that exist."""
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import llm_widgets

ROOT = Path(__file__).resolve().parents[1]
VIEWS = sorted(n for n in llm_widgets._LAZY if n.endswith("View") or n == "Explorer")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def _text(markup: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


def test_views_are_all_counted():
    assert len(VIEWS) == 14 and {"AttentionView", "Explorer", "FeatureView", "SteeringView", "GraphView"} <= set(VIEWS)


def test_every_view_has_a_guide_page(site):
    titles = {}
    for page in (site / "views").glob("*.html"):
        h1 = re.search(r"<h1[^>]*>(.*?)</h1>", page.read_text(encoding="utf-8"), re.S)
        if h1:
            titles[_text(h1.group(1)).replace("¶", "").strip()] = page
    missing = [v for v in VIEWS if v not in titles]
    assert not missing, f"no guide page under docs/views/ titled {missing}"


def test_api_reference_lists_load_session_and_the_views(site):
    loading = (site / "api" / "loading.html").read_text(encoding="utf-8")
    for name in ("load", "Session"):
        assert f'id="llm_widgets.{name}"' in loading
    views = (site / "api" / "views.html").read_text(encoding="utf-8")
    for name in VIEWS:
        module = llm_widgets._LAZY[name].lstrip(".")
        assert f'id="llm_widgets.{module}.{name}"' in views, name
    compute = (site / "api" / "compute.html").read_text(encoding="utf-8")
    for ident in ("direct_logit.direct_logit_attribution", "ablation.ablate", "patching.patching"):
        assert f'id="llm_widgets.compute.{ident}"' in compute, ident
    errors = (site / "api" / "errors.html").read_text(encoding="utf-8")
    assert 'id="llm_widgets.errors.LLMWidgetsError"' in errors


def test_benchmarks_page_is_the_recorded_summary(site):
    """Generated from bench/out/summary.md at build time (docs/hooks.py); no copy under docs/."""
    assert not (ROOT / "docs" / "benchmarks.md").exists()
    summary = (ROOT / "bench" / "out" / "summary.md").read_text(encoding="utf-8")
    title = summary.splitlines()[0].lstrip("# ").strip()
    page = (site / "benchmarks.html").read_text(encoding="utf-8")
    assert title in _text(page)
    rows = len(re.findall(r"^\|", summary, re.M))
    assert page.count("<table") >= 1 and page.count("<tr") == rows - page.count("<table"), "rendered as tables"


def test_readme_links_point_at_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [m for m in re.findall(r"\]\(([^)\s]+)\)", readme) if not re.match(r"[a-z]+:", m)]
    into_docs = [link for link in links if link.startswith("docs/")]
    assert len(into_docs) >= 11 + 5, into_docs  # a page per view, the guides, the API reference
    broken = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not broken, broken


def test_the_family_matrix_is_public_and_imports_without_sys_path_edits():
    """tests, benches and users' own tests import the tiny models from the package."""
    import subprocess
    import sys

    code = "from llm_widgets.testing import FAMILIES, build; m = build('llama'); print(len(FAMILIES), type(m).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    n, cls = out.stdout.split()
    assert int(n) >= 28 and cls == "LlamaForCausalLM"
