# Two entry points for a fresh machine:
#   make demo  - set up everything, then open JupyterLab on the demo notebooks (offline default model)
#   make test  - set up everything, then run the whole test suite (JS typecheck + unit, docs build, pytest incl. real browser)
# Both install the Python environment from the lock (requirements/dev-lock.txt), so a fresh clone on
# any day gets what CI tested. Upstream drift is looked at on purpose:
#   make test-latest - the newest releases pyproject allows, in a throwaway venv, then the whole suite
#   make lock        - write those newest releases into the lock (refresh it deliberately, then make test)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llm-widgets-installed
LOCK := requirements/dev-lock.txt
LATEST := .venv-latest
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# jupyter refuses to start as root without it (containers, CI machines, these machines)
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# the CPU wheel of torch; an unpinned torch pulls a multi-GB CUDA build (override: make test-latest TORCH=torch)
TORCH ?= torch==2.13.0
DEMO_ARGS ?=
# `make docs`, and `make test` before pytest
DOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

.PHONY: setup build demo test test-fast docs test-latest latest-venv lock chromium bench gallery clean

setup: $(STAMP) build

$(PY):
	python3 -m venv $(VENV)

# npm install, not npm ci: this registry lacks other platforms' optional packages (rollup's), so
# npm records no lock entries for them and `npm ci` refuses the lock as out of sync.
node_modules/.package-lock.json: package.json package-lock.json
	npm install --no-audit --no-fund

# Exactly the lock, nothing resolved on the day (--no-deps: every package is pinned there, lxt
# included without its GPU-only requirements), then the package itself, editable.
$(STAMP): pyproject.toml $(LOCK) node_modules/.package-lock.json | $(PY)
	$(PY) -m pip install -q --upgrade "pip==$$(sed -n 's/^# pip==//p' $(LOCK))"
	$(PY) -m pip install -q --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The newest releases pyproject's ranges allow (torch: $(TORCH)), in a throwaway venv.
latest-venv: node_modules/.package-lock.json
	rm -rf $(LATEST) && python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q "$(TORCH)"
	$(LATEST)/bin/python -m pip install -q -e ".[dev]"
	# lxt (AttnLRP's reference code, for the tests) without its GPU-only requirements (bitsandbytes, ...)
	$(LATEST)/bin/python -m pip install -q --no-deps lxt==2.1
	$(LATEST)/bin/python -m pip freeze --exclude-editable | LC_ALL=C sort -f > $(LATEST)/resolved.txt
	@echo "== what moved since the lock ($(LOCK) -> newest allowed):"
	@diff <(grep -v '^#' $(LOCK)) $(LATEST)/resolved.txt | grep '^[<>]' || echo "   nothing"
	touch $(LATEST)/.llm-widgets-installed

# The suite on the newest allowed releases: failures here are upstream drift, seen on purpose.
test-latest: latest-venv
	$(MAKE) test VENV=$(LATEST) STAMP=$(LATEST)/.llm-widgets-installed

# Refresh the lock deliberately: resolve the newest allowed releases, write them, then `make test`.
lock: latest-venv
	{ echo "# The dev/test environment make setup installs (pip install --no-deps -r), for CPython 3.11 on"; \
	  echo "# Linux x86_64. Written by 'make lock' on $$(date -u +%F) from pyproject's ranges; do not edit by hand."; \
	  echo "# pip==$$($(LATEST)/bin/python -m pip --version | cut -d' ' -f2)"; \
	  cat $(LATEST)/resolved.txt; } > $(LOCK)
	@echo "wrote $(LOCK): now run make test"

build: node_modules/.package-lock.json
	npm run build --silent

chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# tests/test_demo.py starts the server exactly this way (with DEMO_ARGS for a port it can read)
demo: setup
	cd notebooks && $(abspath $(VENV))/bin/jupyter lab 00_tour.ipynb $(ALLOW_ROOT) $(DEMO_ARGS)

# vitest first, pytest last: CI reads pytest's closing line.
test: setup chromium
	$(VENV)/bin/ruff check llm_widgets tests bench docs
	npm run typecheck --silent
	npm run lint --silent
	npm test --silent
	$(DOCS_BUILD)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider --durations=15

# the docs site (mkdocs.yml, docs/) into site/, warnings as errors; the benchmarks page is read from
# bench/out/summary.md at build time (docs/hooks.py). NO_MKDOCS_2_WARNING: mkdocs-material's notice.
docs: setup
	$(DOCS_BUILD)

# the unit tests only (no browser, notebooks or family matrix): under a minute, for the edit-test loop
test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider -m unit

# peers (TransformerLens, nnsight, CircuitsVis, bertviz) in the project venv; inseq in its own
# (bench/venvs.py); each bench appends to bench/out/results.jsonl, summary.py renders bench/out/summary.md
bench: setup chromium
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/venvs.py
	mkdir -p bench/out && rm -f bench/out/results.jsonl
	for b in bench/*.py; do case $$b in */common.py|*/summary.py|*/venvs.py) continue;; esac; a=""; \
		case $$b in */big_model.py) $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())" || a=--tiny;; esac; \
		echo "== $$b $$a"; HF_HUB_OFFLINE=1 $(PY) $$b $$a 2>&1 | tee bench/out/$$(basename $$b .py).txt; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; done
	$(PY) bench/summary.py

# every view in JupyterLab Light and Dark as PNGs + gallery/index.html (tests/browser/gallery.py)
gallery: setup chromium
	HF_HUB_OFFLINE=1 $(PY) tests/browser/gallery.py --out gallery

clean:
	rm -rf $(VENV) $(LATEST) node_modules llm_widgets/static/*.js test-artifacts site
