# Two commands matter: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test lint proto unit integration chaos bench soak worker clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

install: $(VENV)/.installed
	$(PY) -m streams.devkit.broker --resolve-only

demo: install
	$(PY) -m streams.devkit.demo

test: install
	$(PY) -m pytest -ra

chaos: install
	$(PY) -m streams.devkit.chaos $(CHAOS_ARGS)

# ruff over all the code, mypy --strict over the package (config in pyproject.toml).
lint: $(VENV)/.installed
	$(PY) -m ruff check streams tests bench
	$(PY) -m mypy streams

# Regenerate streams/connectors/prism/gen/ from proto/prism/*.proto with the pinned
# grpcio-tools (deterministic: a second run changes nothing). `make test` fails while the
# committed code is stale (tests/unit/test_prism_proto.py).
proto: $(VENV)/.installed
	$(PY) -m streams.devkit.protogen

unit: $(VENV)/.installed
	$(PY) -m pytest -ra tests/unit

integration: install
	$(PY) -m pytest -ra tests/integration

# Real Kafka, the simulator at 100 ms, one worker; writes bench/results/ and docs/benchmarks.md.
# BENCH_ARGS=--mix: also traffic over all three providers (python -m bench.run --help).
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

# Half the max rate measured at its start, 1 % provider faults, the worker SIGKILLed every
# 5 minutes, for SOAK_MINUTES (default 20); a line per minute, PASS/FAIL, a row in
# docs/benchmarks.md (SOAK_ARGS=--no-doc to skip; python -m streams.devkit.soak --help).
soak: install
	$(PY) -m streams.devkit.soak $(SOAK_ARGS)

worker: $(VENV)/.installed
	$(PY) -m streams worker --loglevel info

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
