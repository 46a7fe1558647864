# Two entry points for a fresh machine:
#   make demo  - set up everything, then open JupyterLab on the demo notebooks (offline default model)
#   make test  - set up everything, then run the whole test suite (JS typecheck + unit, pytest incl. real browser)
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llm-widgets-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup build demo test chromium bench gallery clean

setup: $(STAMP) build

$(PY):
	python3 -m venv $(VENV)

# npm install, not npm ci: this registry lacks other platforms' optional packages (rollup's), so
# npm records no lock entries for them and `npm ci` refuses the lock as out of sync.
node_modules/.package-lock.json: package.json package-lock.json
	npm install --no-audit --no-fund

# torch==2.13.0 first: an unpinned torch would pull a multi-GB CUDA build where none is installed.
$(STAMP): pyproject.toml node_modules/.package-lock.json | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# lxt (AttnLRP's reference code, for the tests) without its GPU-only requirements (bitsandbytes, ...)
	$(PY) -m pip install -q --no-deps lxt==2.1
	touch $@

build: node_modules/.package-lock.json
	npm run build --silent

chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

demo: setup
	cd notebooks && ../$(VENV)/bin/jupyter lab 00_tour.ipynb

# vitest first, pytest last: CI reads pytest's closing line.
test: setup chromium
	$(VENV)/bin/ruff check llm_widgets tests bench
	npm run typecheck --silent
	npm run lint --silent
	npm test --silent
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider --durations=15

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
	rm -rf $(VENV) node_modules llm_widgets/static/*.js test-artifacts
