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

.PHONY: install test-install browser demo demo-all serve-all precompute test lint bench bench-100k bench-million readme clean

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

# Several screens behind one server: every store built under $(PHENOMIX_HOME)/store, one screen each,
# with a switcher in the navbar; SCREEN is the one a URL without ?screen= opens.
SCREENS ?= demo real
serve-all: install
	$(BIN)/python app.py --store-root $(PHENOMIX_HOME)/store --screen $(SCREEN) --host $(HOST) --port $(PORT)

# Build SCREENS (cached stages are skipped), then serve them together.
demo-all: install
	@for s in $(SCREENS); do $(BIN)/python -m precompute demo --screen $$s || exit 1; done
	$(MAKE) serve-all

test: test-install
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest --headless -p no:cacheprovider $(PYTEST_ARGS)

lint: test-install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Scripts, not tests: each prints a table and writes JSON (with its run record) to benchmarks/results/;
# the arguments are the ones the README's tables state. `make readme` renders those tables from the results.
BENCH_PY := OMP_NUM_THREADS=2 $(BIN)/python
bench: precompute test-install
	$(BENCH_PY) benchmarks/bench_align.py
	$(BENCH_PY) benchmarks/bench_align_scale.py --sizes 20000,200000,1000000 --repeats 3
	$(BENCH_PY) benchmarks/bench_activity.py --plates 1,10,40 --repeats 3
	$(BENCH_PY) benchmarks/bench_recall.py --genes 17000 --repeats 3
	$(BENCH_PY) benchmarks/bench_recall.py --genes 17000 --repeats 1 --dtypes float64 --nn-n 1000 --out benchmarks/results/recall_float64.json
	$(BENCH_PY) benchmarks/bench_neighbours.py --n 100000
	$(BENCH_PY) benchmarks/bench_mae_throughput.py --device cpu
	$(BENCH_PY) benchmarks/bench_mae_throughput.py --device cpu --with-loader
	$(BENCH_PY) benchmarks/real_data_report.py --splits 5
	$(BENCH_PY) benchmarks/mae_transfer.py --screen demo
	$(BIN)/python -m precompute demo --screen demo
	$(BENCH_PY) benchmarks/demo_scorecard.py --store $(PHENOMIX_HOME)/store/demo
	$(BENCH_PY) benchmarks/mae_blocks.py
	$(BIN)/python -m precompute demo --screen real
	$(BENCH_PY) benchmarks/match_calibration.py
	$(BENCH_PY) benchmarks/dose_response_validation.py
	$(BENCH_PY) benchmarks/feature_drivers_validation.py
	$(BENCH_PY) benchmarks/channel_attribution_validation.py --full
	$(BENCH_PY) benchmarks/bench_callbacks.py --screen $(SCREEN)
	$(MAKE) bench-100k
	@echo "== load_test (50 and 200 users, 60 s, loopback only)"
	$(BENCH_PY) benchmarks/load_test.py --store $(PHENOMIX_HOME)/store/$(SCREEN) --users 50
	$(BENCH_PY) benchmarks/load_test.py --store $(PHENOMIX_HOME)/store/$(SCREEN) --users 200
	$(BENCH_PY) benchmarks/bench_browser_paint.py --screen $(SCREEN)
	$(MAKE) readme

# The callbacks of sets, selections and the two-map page at 110,592 wells (an embeddings-only screen,
# built once: ~15 min, most of it the UMAP fit): a view with a gene set, a selection and A and B stored,
# then the Sets and Compare pages, cold and warm (results/callbacks_wells_100k_sets.json).
W100K_SCREEN := $(PHENOMIX_HOME)/screens/wells_100k
W100K_STORE  := $(PHENOMIX_HOME)/store/wells_100k
bench-100k: install
	@test -f $(W100K_SCREEN)/screen.json || $(BIN)/python -m precompute generate --preset large --embeddings-only \
	  --n-wells 100000 --out $(W100K_SCREEN)
	$(BENCH_PY) -m precompute run --screen $(W100K_SCREEN) --store $(W100K_STORE) --embedder features --run-name default
	$(BENCH_PY) benchmarks/bench_callbacks.py --store $(W100K_STORE) --name wells_100k_sets --cold-processes 5 \
	  --pages '/map?sel={A}&selA={A}&selB={B}&set={SET},/sets?set={SET},/compare?on=features:raw&sel={A}' \
	  --values '{"set-store.data": "{SET}"}' --clicks map-store-a-button,map-selection-download-button,map-selection-h5ad-button,compare-overlap-export

# A million-well embeddings-only screen through the whole precompute, then the dashboard on it:
# about half an hour on 2 cores, so not part of `make bench` (results/million.json, callbacks_million.json).
bench-million: install
	$(BENCH_PY) benchmarks/bench_million.py
	$(BENCH_PY) benchmarks/bench_callbacks_million.py
	$(BENCH_PY) benchmarks/load_test.py --store $(PHENOMIX_HOME)/store/million --users 50
	$(BENCH_PY) benchmarks/load_test.py --store $(PHENOMIX_HOME)/store/million --users 200
	$(BENCH_PY) benchmarks/bench_browser_paint.py --store $(PHENOMIX_HOME)/store/million
	$(MAKE) readme

# The README's figure tables, rendered from benchmarks/results/*.json (tests/test_readme_figures.py checks them).
readme:
	$(BIN)/python scripts/render_readme.py

clean:
	rm -rf var
