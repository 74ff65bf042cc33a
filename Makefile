# probeft: two commands on a fresh machine (Python 3.11):
#   make demo   set up .venv, run the offline demo grid, build the report (_build/html/index.html)
#   make test   set up .venv, run the tests (unit tests + notebooks under nbval)
# Both are idempotent: setup re-installs only when pyproject.toml or the pins change.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# This machine's torch: a CPU build pinned exactly so pip never pulls a multi-GB CUDA build.
# GPU users: use environment.yml, or `make setup TORCH_SPEC="torch==2.13.0"` where PyPI serves CUDA builds.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= test,minilm,probing-data
CONFIG ?= configs/demo.yaml
RUN ?= runs/demo
DATA_DIR ?=
STAMP := $(VENV)/.probeft-installed

.PHONY: setup demo test grid book screenshots lab clean-runs notebook-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: setup
	$(BIN)/probeft grid configs/demo.yaml --continue-on-error
	$(BIN)/probeft book runs/demo

test: setup
	$(BIN)/python -m pytest

grid: setup
	$(BIN)/probeft grid $(CONFIG) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) --continue-on-error

book: setup
	$(BIN)/probeft book $(RUN)

# Every page of the built book as a PNG (headless Chromium, Debian package `chromium`), to look at before
# a report ships: _build/screenshots/<page>.png at 1400 px wide.
screenshots:
	$(BIN)/python tests/render_pages.py _build/html _build/screenshots

# Re-store the outputs nbval compares (cells starting with `# NBVAL_CHECK_OUTPUT`) after a deliberate change.
notebook-outputs: setup
	$(BIN)/python tests/store_checked_outputs.py notebooks/*.ipynb

# ipywidgets: tqdm's progress bars render as widgets instead of red stderr blocks. --allow-root only
# when run as root (containers), where JupyterLab refuses to start without it.
lab: setup
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

clean-runs:
	rm -rf runs/demo data/demo _build book/_generated
