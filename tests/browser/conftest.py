"""Real-browser fixtures: JupyterLab 4 (or Notebook 7) on 127.0.0.1 driven by Debian chromium via
Python playwright, and static HTML exports opened from file:// with the network blocked.

See ../shared/notes/browser-tests.md for the traps these fixtures avoid.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
PROMPT_DONE = re.compile(r"\[\d+\]")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


def _chromium() -> str:
    path = os.environ.get("LW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian chromium is required for browser tests: apt-get install -y chromium "
                    "(make test does this).")
    return path


# A notebook cell that builds the small seeded GPT-2 (from a config, MiniLM's tokenizer) as `s`.
TINY_GPT2_CELL = (
    "import llm_widgets as lw, torch\n"
    "from transformers import GPT2Config, GPT2LMHeadModel\n"
    "tok = lw.load().tokenizer\n"
    "torch.manual_seed(0)\n"
    "cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=64, n_layer=3, n_head=4)\n"
    "s = lw.load((GPT2LMHeadModel(cfg), tok), device='cpu')"
)

@dataclass
class Server:
    url: str
    root: Path
    proc: subprocess.Popen
    data_dir: Path


def _start_server(tmp: Path, app: str) -> Server:
    """Start `python -m <app>` (jupyterlab or notebook) with private dirs; wait until it answers."""
    dirs = {k: tmp / k for k in ("config", "data", "runtime", "ipython", "settings", "workspaces", "nb")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    share = Path(sys.prefix) / "share" / "jupyter"
    # no news popup, no update checks
    notif = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True, exist_ok=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
               JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
               JUPYTER_PATH=str(share), JUPYTERLAB_DIR=str(share / "lab"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    app_flag = "LabApp" if app == "jupyterlab" else "JupyterNotebookApp"
    cmd = [sys.executable, "-m", app, "--no-browser", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port=0", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
           "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={dirs['nb']}",
           f"--{app_flag}.expose_app_in_browser=True"]
    if app == "jupyterlab":  # Notebook 7 has no such traits: it refuses to link with them
        cmd += ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly"]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=dirs["nb"])
    deadline = time.time() + 90
    info = dirs["runtime"] / f"jpserver-{proc.pid}.json"
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{app} exited: {(tmp / 'server.log').read_text()[-3000:]}")
        if info.exists():
            try:
                url = json.loads(info.read_text())["url"].rstrip("/")
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return Server(url=url, root=dirs["nb"], proc=proc, data_dir=dirs["data"])
            except Exception:
                pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{app} did not start: {(tmp / 'server.log').read_text()[-3000:]}")


def _stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    server = _start_server(tmp_path_factory.mktemp("lab"), "jupyterlab")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def notebook7_server(tmp_path_factory):
    server = _start_server(tmp_path_factory.mktemp("nb7"), "notebook")
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class NotebookSession:
    """A notebook opened in the browser, run to the end; `run(code)` executes more code in it."""

    def __init__(self, page, app: str = "lab"):
        self.page = page
        self.app = app
        self.errors: list[str] = []
        page.on("pageerror", self._record)

    def _record(self, e) -> None:
        # Notebook 7's own settings registry throws this when a plugin's settings load late
        # (pluginChanged for a plugin it has no schema for); it is not ours and changes nothing.
        if "reading 'schema'" in str(e) and "/static/notebook/notebook_core" in (e.stack or ""):
            return
        self.errors.append(str(e))

    def _eval(self, js: str, arg=None):
        return self.page.evaluate(js, arg)

    def wait_idle(self, timeout_s: float = 180) -> None:
        """Wait until every code cell has an execution count and the kernel is idle."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            state = self._eval("""() => {
                const nb = window.jupyterapp.shell.currentWidget;
                if (!nb || !nb.content || !nb.sessionContext || !nb.sessionContext.session) return null;
                const cells = nb.content.widgets.filter(c => c.model.type === 'code');
                const status = nb.sessionContext.session.kernel ? nb.sessionContext.session.kernel.status : 'none';
                return {status, counts: cells.map(c => c.model.executionCount)};
            }""")
            if state and state["status"] == "idle" and all(c is not None for c in state["counts"]):
                return
            self.page.wait_for_timeout(250)
        raise TimeoutError(f"notebook did not finish running: {state}")

    def run(self, code: str, timeout_s: float = 60) -> str:
        """Append a code cell, run it in the same kernel, return its text output (stripped)."""
        n = self._eval("""async (code) => {
            const app = window.jupyterapp;
            const nb = app.shell.currentWidget;
            const n = nb.content.model.cells.length;
            nb.content.model.sharedModel.insertCell(n, {cell_type: 'code', source: code});
            nb.content.activeCellIndex = n;
            await app.commands.execute('notebook:run-cell');
            return n;
        }""", code)
        self.wait_idle(timeout_s)
        out = self._eval("""(n) => {
            const cell = window.jupyterapp.shell.currentWidget.content.widgets[n];
            const outs = cell.model.outputs.toJSON();
            return outs.map(o => o.text !== undefined ? (Array.isArray(o.text) ? o.text.join('') : o.text)
                : o.ename ? ('ERROR ' + o.ename + ': ' + o.evalue)
                : (o.data && o.data['text/plain']) ? [].concat(o.data['text/plain']).join('') : '').join('');
        }""", n)
        if out.startswith("ERROR "):
            raise AssertionError(f"cell raised: {out}")
        return out.strip()

    def screenshot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


def _open_notebook(browser, server: Server, cells, name: str, app: str, run: bool = True) -> NotebookSession:
    """Write `cells` (a list of code strings, or a whole nbformat notebook) as `name`.ipynb, open it,
    and run all cells (unless run=False: then it shows what the file holds, e.g. saved widget state)."""
    if isinstance(cells, list):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    else:
        nb = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if not isinstance(cells, list):
        # the user's own saved notebook is trusted (their server signed it); without this the
        # front end shows untrusted outputs as plain text, widgets included
        from nbformat.sign import NotebookNotary
        NotebookNotary(data_dir=str(server.data_dir)).sign(nb)
    nbformat.write(nb, server.root / f"{name}.ipynb")
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    # a fresh workspace per notebook: JupyterLab would otherwise restore earlier tests' tabs
    prefix = f"lab/workspaces/{name}/tree" if app == "lab" else "notebooks"
    page.goto(f"{server.url}/{prefix}/{name}.ipynb" + ("?reset" if app == "lab" else ""))
    session = NotebookSession(page, app)
    # kernel connected and idle (the toolbar may say idle before the kernel is connected)
    page.wait_for_function("""() => {
        const a = window.jupyterapp; const nb = a && a.shell.currentWidget;
        return !!(nb && nb.sessionContext && nb.sessionContext.session &&
                  nb.sessionContext.session.kernel && nb.sessionContext.session.kernel.status === 'idle'
                  && nb.content && nb.content.widgets.length > 0);
    }""", timeout=120_000)
    if not run:
        return session
    # Run All can be swallowed while the kernel connection settles: re-issue it until cells start.
    for _ in range(6):
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_function("""() => {
                const nb = window.jupyterapp.shell.currentWidget;
                return nb.content.widgets.some(c => c.model.type === 'code' &&
                    (c.model.executionCount !== null || c.model.executionState === 'running' ||
                     (c.promptNode && /\\*/.test(c.promptNode.textContent))));
            }""", timeout=5_000)
            break
        except Exception:
            continue
    session.wait_idle()
    return session


def _notebook_factory(browser, server, app: str):
    opened = []

    def open_(cells, name: str, run: bool = True) -> NotebookSession:
        s = _open_notebook(browser, server, cells, name, app, run)
        opened.append(s)
        return s

    return open_, opened


@pytest.fixture
def notebook(browser, lab_server):
    """notebook(cells, name, run=True) -> NotebookSession in JupyterLab 4, all cells run."""
    open_, opened = _notebook_factory(browser, lab_server, "lab")
    yield open_
    for s in opened:
        s.page.context.close()


@pytest.fixture
def notebook7(browser, notebook7_server):
    """Like `notebook`, in Notebook 7."""
    open_, opened = _notebook_factory(browser, notebook7_server, "notebook")
    yield open_
    for s in opened:
        s.page.context.close()


@pytest.fixture
def static_page(browser):
    """static_page(path) -> playwright Page of an exported HTML file opened from file:// with every
    non-local request blocked (and recorded in page.lw_blocked); waits until the views mounted."""
    contexts = []

    def open_(path) -> object:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
        contexts.append(ctx)
        blocked: list[str] = []

        def route(r):
            url = r.request.url
            if url.startswith(("file:", "blob:", "data:")):
                r.continue_()
            else:
                blocked.append(url)
                r.abort()

        ctx.route("**/*", route)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(Path(path).resolve().as_uri())
        page.wait_for_selector("body[data-lw-ready='1']", timeout=30_000)
        page.lw_blocked = blocked
        page.lw_errors = errors
        return page

    yield open_
    for c in contexts:
        c.close()
