"""Virtual environments for peers that cannot share the project's venv (bench/.venvs/<name>, ignored by git).

inseq 0.7.1 pins typeguard<=2.13.3 while transformer-lens 4.3.0 needs typeguard>=4.2, so inseq gets
its own venv: the same torch wheel and transformers release as the project's venv, then inseq with
its own dependencies. torch is installed first, pinned (an unpinned torch pulls multi-GB CUDA wheels).

    python bench/venvs.py            # make every missing one (idempotent: a stamp records the spec)
    python bench/venvs.py --check    # exit 1 if any is missing or out of date
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TORCH_PIN, VENVS  # noqa: E402

PEERS = {
    "inseq": ["transformers==5.24.0", "inseq==0.7.1"],
}


def _stamp(name: str) -> Path:
    return VENVS / name / ".bench-spec"


def up_to_date(name: str) -> bool:
    spec = " ".join([TORCH_PIN] + PEERS[name])
    s = _stamp(name)
    return s.exists() and s.read_text().strip() == spec


def ensure(name: str) -> Path:
    """The venv's python, made (or remade) if its stamp does not match PEERS[name]."""
    d = VENVS / name
    py = d / "bin" / "python"
    if up_to_date(name):
        return py
    print(f"bench/venvs.py: making {d} ({TORCH_PIN} + {' '.join(PEERS[name])})", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(d)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [TORCH_PIN], check=True)
    subprocess.run(pip + PEERS[name] + [TORCH_PIN], check=True)  # torch stays pinned while resolving
    _stamp(name).write_text(" ".join([TORCH_PIN] + PEERS[name]))
    return py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("names", nargs="*", default=list(PEERS))
    a = ap.parse_args()
    if a.check:
        missing = [n for n in a.names if not up_to_date(n)]
        print("missing or stale:", " ".join(missing) if missing else "none")
        sys.exit(1 if missing else 0)
    for n in a.names:
        print(n, ensure(n))


if __name__ == "__main__":
    main()
