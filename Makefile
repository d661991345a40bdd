# MER Bench: two commands do all set-up on a fresh machine.
#   make demo   -> venv, install, synthetic dataset, dashboard on http://127.0.0.1:8501
#   make test   -> venv, install with test extras, chromium (Debian, as root), whole pytest suite
# Both are idempotent: stamps skip the installs when pyproject/constraints did not change.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PORT   ?= 8501
# the project-local cache (datasets, preprocessed arrays, the run store) for every command below; outside make the
# library defaults to an existing ./cache, else the user cache folder (~/.cache/mer-bench)
export MER_CACHE ?= $(CURDIR)/cache
# every [server], [browser] and [client] setting of .streamlit/config.toml, so they hold from any folder
STREAMLIT_FLAGS := --server.port $(PORT) --server.address 127.0.0.1 --server.headless true --server.fileWatcherType none \
    --server.runOnSave false --server.maxUploadSize 200 --browser.gatherUsageStats false \
    --browser.serverAddress 127.0.0.1 --client.toolbarMode minimal --client.showErrorDetails true

.PHONY: demo test data chromium bench clean-cache help

help:
	@echo "make demo   start the dashboard on the embedded synthetic dataset (http://127.0.0.1:$(PORT))"
	@echo "make test   run the whole test suite (installs test extras and Debian chromium when root)"
	@echo "make bench  run the benchmark scripts (long; mer bench writes mer_core/benchmarking/data/, the older scripts bench_out/)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is pinned to 2.13.0 in constraints.txt: the local CPU build here, not a multi-GB CUDA download.
$(VENV)/.installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[test]"
	@touch $@

data: $(VENV)/.installed
	$(VENV)/bin/mer synth --if-missing

chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing and you are not root: browser tests will be skipped (apt-get install chromium)"; fi

demo: $(VENV)/.installed data
	$(PY) -m mer_core.jobs.demo
	$(VENV)/bin/streamlit run dashboard/app.py $(STREAMLIT_FLAGS)

test: $(VENV)/.installed-test chromium data
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(VENV)/.installed-test data
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean-cache:
	rm -rf cache/preprocessed cache/datasets
