# emm-study. Two commands matter: `make book` (the study + the book) and `make test`.
# Both create .venv and install everything when no virtual environment is active.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PROFILE ?= default
SEEDS ?=
DEVICE ?= auto
BENCH_ARGS ?=
# The Python that creates .venv: the newest 3.11-3.13 on the PATH, or the one named (make test PYTHON=python3.12).
PYTHON ?= $(shell bash scripts/find_python.sh)
ifdef VIRTUAL_ENV
  PY := $(VIRTUAL_ENV)/bin/python
  VENV_DEP :=
else
  PY := .venv/bin/python
  VENV_DEP := .venv/.installed
endif
# A local data mirror beside the clone (CI and developer machines have one); otherwise download.
EMM_DATA_MIRROR ?= $(firstword $(wildcard $(CURDIR)/../shared/data/census-income-kdd))
export EMM_DATA_MIRROR
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]-*.ipynb))
EXECUTED := book/notebooks

.PHONY: help setup data notebooks notebooks-tiny html book publish test test-unit test-kernels test-notebooks test-book \
        refactor-guard bench lab clean

help:
	@echo "make book   - set up, fetch data, run the study notebooks (PROFILE=$(PROFILE)), build the book"
	@echo "make test   - set up, run unit tests, run every notebook at a tiny size, build and check the book"
	@echo "make bench  - training throughput and memory (benchmarks/)"
	@echo "make refactor-guard REF=<commit> - the tiny-profile numbers at REF and in the working tree agree bit for bit"
	@echo "make lab    - open the notebooks in JupyterLab"
	@echo "make publish - push the built book (_build/html) to the gh-pages branch (GH_PAGES_REMOTE=$(GH_PAGES_REMOTE))"

.venv/.installed: pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "No Python 3.11, 3.12 or 3.13 found on the PATH: install one, or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python3.x" >&2; exit 1; fi
	$(PYTHON) -m venv .venv
	.venv/bin/python -m pip install -q --upgrade pip
	.venv/bin/python -m pip install -q -e ".[book,test]"
	.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV_DEP)
	@if [ -n "$${VIRTUAL_ENV:-}" ]; then $(PY) -m pip install -q -e ".[book,test]"; fi
	bash scripts/fetch_mathjax.sh
	bash scripts/install_chromium.sh

data: setup
	$(PY) -m emm_lib.data census

# Run the study notebooks in order with papermill; executed copies are build outputs.
# emm_lib.study.book.run_notebook checks the parameter names and values first (papermill alone only warns).
notebooks: data
	mkdir -p $(EXECUTED)
	for nb in $(NOTEBOOKS); do \
	  echo "== $$nb (profile $(PROFILE))"; \
	  $(PY) -m emm_lib.study.book.run_notebook --cwd notebooks -k python3 $$nb $(EXECUTED)/$$(basename $$nb) \
	    -p profile $(PROFILE) -p device $(DEVICE) $(if $(SEEDS),-p seeds "$(SEEDS)") --log-level WARNING --no-progress-bar; \
	done

notebooks-tiny: setup
	$(MAKE) notebooks PROFILE=tiny

html:
	bash scripts/fetch_mathjax.sh
	rm -rf _build/html
	$(dir $(PY))jupyter-book build . -W -n --keep-going

book: notebooks
	$(MAKE) html
	@echo "The book is at _build/html/index.html"

# The data first: real-data tests then run on a fresh machine (no mirror needed), and a failed
# download stops `make test` with the data error instead of skipping those tests.
test-unit: data
	EMM_REQUIRE_DATA=1 $(PY) -m pytest -q -m "not book"

# The same machine under another kernel configuration: ATen's portable (non-vectorised) code path and
# MKL's compatible one (both change the training floats here). The fast unit tests and the determinism
# test (marked `kernels`) must hold under any kernels; a test that leans on one machine's floats fails.
KERNELS_ENV := ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE
test-kernels: data
	env $(KERNELS_ENV) EMM_REQUIRE_DATA=1 $(PY) -m pytest -q -p no:cacheprovider -m "(kernels or not slow) and not book"

# Developer check, not in `make test`: every experiment's tiny-profile numbers at REF and in the
# working tree, run side by side on this machine, must agree bit for bit (refactoring moved no number).
REF ?= HEAD
refactor-guard: data
	bash scripts/refactor_guard.sh $(PY) $(REF)

test-notebooks: notebooks-tiny
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider $(EXECUTED)

test-book: test-notebooks
	$(MAKE) html
	EMM_REQUIRE_BOOK=1 $(PY) -m pytest -q -m book tests/test_book.py

# A test run leaves the clone as it found it: `git status` after equals `git status` before.
test:
	@mkdir -p _build && bash scripts/clean_tree.sh snapshot _build/status-before
	$(MAKE) test-unit test-kernels test-book
	bash scripts/clean_tree.sh check _build/status-before

# Publish the built book to GitHub Pages without Actions: ghp-import commits _build/html to the
# gh-pages branch (with .nojekyll) and pushes it to GH_PAGES_REMOTE (a remote name or a path/URL).
GH_PAGES_REMOTE ?= origin
publish:
	@test -f _build/html/index.html || { echo "no book in _build/html: run 'make book' (or 'make html') first" >&2; exit 1; }
	$(dir $(PY))ghp-import --no-jekyll --force --push --remote "$(GH_PAGES_REMOTE)" --branch gh-pages \
	  --message "Publish the book from $$(git rev-parse --short HEAD)" _build/html

# One table: rows/s of ours vs the published-like per-row path, ratios, peak RSS, targets (~2-3 min).
bench: setup
	$(PY) benchmarks/bench_train.py --models emm,mmoe,ple --passes 3 --batches 50 $(BENCH_ARGS)

lab: setup
	cd notebooks && ../$(PY) -m jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

clean:
	rm -rf _build $(EXECUTED)
