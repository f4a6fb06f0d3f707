# Everything runs from a local virtualenv that the first target creates.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run serve worker test test-fast lint bench bench-quick audit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP)

## The main job: realign the bundled national US data set, outputs in out/
run: $(STAMP)
	$(BIN)/territory align --dataset us-accounts --out out

## The job service: HTTP API with local workers (the first start prints an API key)
serve: $(STAMP)
	$(BIN)/territory serve --host 127.0.0.1 --port 8000

## A distributed worker (EXECUTOR=celery, DATABASE_URL=postgresql+psycopg://..., BROKER_URL=redis://...)
worker: $(STAMP)
	$(BIN)/territory worker

## Every test this machine supports (includes the slow national solves)
test: $(STAMP)
	$(BIN)/python -m pytest

## Unit and small-instance tests only
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## Benchmarks (not tests): writes bench/report.md, bench/report.json and the plots
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/load.py --executor celery --workers 2 --clients 100 --duration 60 --jobs 5000 --grace 180

## The same harness on small sizes (about a minute), into out/bench-quick
bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick --out out/bench-quick

## Known vulnerabilities in the installed dependencies (needs the PyPI JSON API or OSV)
audit: $(STAMP)
	$(BIN)/pip-audit --strict

clean:
	rm -rf out var .pytest_cache .ruff_cache .mypy_cache
