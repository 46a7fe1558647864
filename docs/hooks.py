"""mkdocs hook: the benchmarks page is bench/out/summary.md (written by `make bench`), read at build time.

No copy is committed under docs/: the page is generated from the file on every build, so the site
shows whatever the last recorded run wrote.
"""
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = ROOT / "bench" / "out" / "summary.md"
PAGE = "benchmarks.md"


def _content() -> str:
    text = SUMMARY.read_text(encoding="utf-8")
    return text + (
        "\n\n---\n\n*This page is `bench/out/summary.md` as `make bench` (`bench/summary.py`) last wrote it, "
        "included when the docs were built.*\n"
    )


def on_files(files, config):
    files.append(File.generated(config, PAGE, content=_content()))
    return files


def on_serve(server, config, builder):
    server.watch(str(SUMMARY))
    return server
