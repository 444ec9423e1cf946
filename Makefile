# Phenomix: `make demo` sets up, builds the demo screen (cached) and serves the dashboard;
# `make test` sets up (incl. headless Chromium) and runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8050
SCREEN ?= demo
# Where generated screens and artifact stores live (git-ignored).
PHENOMIX_HOME ?= $(CURDIR)/var
export PHENOMIX_HOME

.PHONY: install test-install browser demo precompute test lint bench bench-million clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.txt constraints.txt
	$(BIN)/pip install -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed requirements-test.txt requirements-reference.txt
	$(BIN)/pip install -r requirements-test.txt -c constraints.txt
	$(BIN)/pip install --no-deps -r requirements-reference.txt
	touch $@

install: $(VENV)/.installed

test-install: $(VENV)/.test-installed browser

# Browser tests drive Debian's Chromium through chromedriver.
browser:
	@if ! command -v chromedriver >/dev/null 2>&1; then \
	  echo "installing chromium + chromium-driver (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

precompute: install
	$(BIN)/python -m precompute demo --screen $(SCREEN)

demo: precompute
	$(BIN)/python app.py --screen $(SCREEN) --host $(HOST) --port $(PORT)

test: test-install
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest --headless -p no:cacheprovider $(PYTEST_ARGS)

lint: test-install
	$(BIN)/ruff check .

# Scripts, not tests: each prints a table and writes JSON to benchmarks/results/.
BENCHES ?= bench_align bench_align_scale bench_activity bench_recall bench_neighbours bench_generate bench_mae_throughput real_data_report mae_transfer
bench: precompute test-install
	@for b in $(BENCHES); do echo "== $$b"; OMP_NUM_THREADS=2 $(BIN)/python benchmarks/$$b.py || exit 1; done
	@echo "== load_test (50 users, 60 s, loopback only)"; $(BIN)/python benchmarks/load_test.py --store $(PHENOMIX_HOME)/store/$(SCREEN)

# A million-well embeddings-only screen through the whole precompute, then the dashboard on it:
# about half an hour on 2 cores, so not part of `make bench` (results/million.json, callbacks_million.json).
bench-million: install
	OMP_NUM_THREADS=2 $(BIN)/python benchmarks/bench_million.py
	OMP_NUM_THREADS=2 $(BIN)/python benchmarks/bench_callbacks_million.py

clean:
	rm -rf var
