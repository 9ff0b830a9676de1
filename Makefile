# Quickstart targets: both create or refresh .venv themselves (idempotent).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test bench venv clean browser

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "simulacra needs Python >= 3.11, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# torch==2.13.0 (the CPU build on disk) goes in first: the bench extra's transformers would
# otherwise let pip fetch a CUDA build of several GB (docs/benchmarks.md).
$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $@

venv: $(STAMP)

# The main job: the quick profile of the flagship study (H1-H6), then its report
# (runs/flagship/report.html and report.md). Rerunning reuses every stored unit.
demo: $(STAMP)
	$(VENV)/bin/simulacra study run studies/flagship.yaml --profile quick

test: $(STAMP) browser
	$(PY) -m pytest -q -n 2 --dist loadfile

# The report test opens report.html in headless Chromium (Debian's chromium + chromium-driver).
# Installed here when missing and we are root (CI); otherwise that test skips, saying why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver (Debian) for the report test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
	      || echo "warning: could not install chromium; the report's browser test will fail on CI"; \
	  else echo "chromium/chromedriver missing and not root: the report's browser test will be skipped"; fi; }

bench: $(BENCH_STAMP)
	$(PY) bench/world_throughput.py
	$(PY) bench/corpus_generation.py
	$(PY) bench/transformer_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
