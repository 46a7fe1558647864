"""The package installs like a package: a wheel and an sdist built from this checkout install into
a fresh virtual environment with no Node on PATH, ship the JS bundles, and render a view in chromium."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys, llm_widgets as lw
assert "{venv}" in lw.__file__, lw.__file__  # the installed copy, not the checkout
v = lw.AttentionView(lw.load(), "A wheel with its bundles.")
print(v.to_html(sys.argv[1]))
"""


def _fresh_venv(tmp: Path) -> Path:
    """A venv whose own site-packages gets the package; the dependencies (torch, transformers, ...)
    come from the test environment through a .pth line, so nothing is downloaded."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_built_package_installs_without_node_and_renders(kind, tmp_path, static_page):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", kind, "-d", str(dist)], cwd=ROOT,
                   check=True, capture_output=True)
    (artifact,) = dist.glob("*.whl" if kind == "wheel" else "*.tar.gz")
    venv = _fresh_venv(tmp_path)
    py = str(venv / "bin" / "python")
    env = {**os.environ, "PATH": str(venv / "bin")}  # no node, no npm
    env.pop("PYTHONPATH", None)
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                    str(artifact)], check=True, env=env, capture_output=True)
    out = subprocess.run([py, "-c", SCRIPT.format(venv=venv), str(tmp_path / "view.html")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    page = static_page(tmp_path / "view.html")
    page.wait_for_selector("[data-lw-view=attention][data-ready='1']")
    assert page.lw_errors == [] and page.lw_blocked == []
