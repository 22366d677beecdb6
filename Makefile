# The two commands of the README: `make run` (the default scenario) and `make test` (lint + whole suite).
# Both create the virtual environment in .venv on first use and reinstall when pyproject.toml or the compiled
# engine's sources change.
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
	cd benchmarks && ../$(BIN)/python bench_network.py
	cd benchmarks && ../$(BIN)/python bench_control.py
	cd benchmarks && ../$(BIN)/python bench_qkd.py
	cd benchmarks && ../$(BIN)/python bench_kms.py --seconds 8 --clients 1 2 4 8
	cd benchmarks && ../$(BIN)/python bench_federated.py --rounds 10
	cd benchmarks && ../$(BIN)/python bench_federation_domains.py --repeats 5 --rounds 10
	cd benchmarks && ../$(BIN)/python bench_flower_deployment.py --rounds 8
	cd benchmarks && ../$(BIN)/python bench_batch.py
	cd benchmarks && ../$(BIN)/python bench_qml.py
	cd benchmarks && ../$(BIN)/python bench_cli.py --runs 15

# setup.py compiles the event kernel and the network engine with mypyc: reinstall when they change
COMPILED = src/qfabric/sim/kernel.py src/qfabric/network/models.py src/qfabric/network/circuit.py \
	src/qfabric/network/engine.py

$(VENV)/.installed: pyproject.toml setup.py $(COMPILED)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache src/*.so src/qfabric/*/*.so
