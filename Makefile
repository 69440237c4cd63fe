# `make demo` and `make test` set up their own virtualenv (.venv) on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench bench-quick tools clean

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

## promtool (Debian's prometheus package) checks the exposition; node_exporter is the bench anchor.
tools:
	@command -v promtool >/dev/null && command -v prometheus-node-exporter >/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends prometheus prometheus-node-exporter; }

demo: $(STAMP)
	$(BIN)/kubetally demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) tools lint
	$(BIN)/pytest -q

## Every benchmark against its anchor, in one run; rewrites docs/benchmarks.md (about 40 min).
bench: $(STAMP) tools
	$(BIN)/python bench/exporter_bench.py --write docs/benchmarks.md
	$(BIN)/python bench/parse_bench.py --write docs/benchmarks.md
	$(BIN)/python bench/tsdb_bench.py --write docs/benchmarks.md
	$(BIN)/python bench/api_bench.py --write docs/benchmarks.md
	$(BIN)/python bench/scale_bench.py --write docs/benchmarks.md

## The same benchmarks on small sizes (CI runs this as part of `make test`).
bench-quick: $(STAMP) tools
	$(BIN)/pytest -q tests/test_bench_quick.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .ruff_cache
