# Quickstart targets: both create or refresh .venv themselves (idempotent).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test bench venv clean

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "simulacra needs Python >= 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/simulacra demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(BENCH_STAMP)
	$(PY) bench/world_throughput.py
	$(PY) bench/corpus_generation.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
