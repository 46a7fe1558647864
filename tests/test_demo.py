"""The README's first command: `make demo` serves the tour in JupyterLab for any user, root included
(containers and CI machines run as root), with no stack trace in its output. Started exactly as
`make demo` starts it; only the port, the browser and the update checks are set for a test."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_ARGS = ("--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=0 --ServerApp.port_retries=0 "
             "--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")


def _get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def test_make_demo_serves_the_tour(tmp_path):
    venv = Path(sys.prefix)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "run"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"), IPYTHONDIR=str(tmp_path / "ipython"),
               HF_HUB_OFFLINE="1")
    # -o: the environment this test runs in is the one `make setup` made; do not reinstall it
    cmd = ["make", "--no-print-directory", "demo", f"VENV={venv}", "-o", str(venv / ".llm-widgets-installed"),
           f"DEMO_ARGS={DEMO_ARGS}"]
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        info, deadline = None, time.time() + 120
        while time.time() < deadline and info is None:
            assert proc.poll() is None, f"make demo exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            found = sorted((tmp_path / "run").glob("jpserver-*.json"))
            if found:
                try:
                    info = json.loads(found[0].read_text())
                    _get(f"{info['url']}api/status", info["token"])
                except Exception:
                    info = None
            time.sleep(0.5)
        assert info is not None, f"make demo did not answer in 120 s:\n{log.read_text()[-3000:]}"
        status, body = _get(f"{info['url']}api/contents/00_tour.ipynb?content=1", info["token"])
        nb = json.loads(body)
        assert status == 200 and nb["type"] == "notebook" and nb["content"]["cells"]
        status, page = _get(f"{info['url']}lab/tree/00_tour.ipynb", info["token"])
        assert status == 200 and b"JupyterLab" in page
        assert Path(info["root_dir"]).resolve() == (ROOT / "notebooks").resolve()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    for bad in ("Traceback", "Error:", "Fail to get yarn configuration", "Running as root"):
        assert bad not in text, f"{bad!r} in make demo's output:\n{text[-3000:]}"
