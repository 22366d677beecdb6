# The two commands of the README: `make run` (the default scenario) and `make test` (lint + whole suite).
# Both create the virtual environment in .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test lint bench clean

run: $(VENV)/.installed
	$(BIN)/qfabric run

test: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks

# Benchmarks are not part of the test run; results go to docs/BENCHMARKS.md by hand.
bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	cd benchmarks && ../$(BIN)/python bench_kernel.py
	cd benchmarks && ../$(BIN)/python bench_chain.py
	cd benchmarks && ../$(BIN)/python bench_qkd.py
	cd benchmarks && ../$(BIN)/python bench_kms.py --seconds 8 --clients 1 2 4 8
	cd benchmarks && ../$(BIN)/python bench_federated.py --epochs 1 2 5 10 20 40

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
