# Everything runs from a local virtualenv that the first target creates.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run serve worker test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
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

## Benchmarks (not tests): writes bench/report.md and bench/report.json
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/load.py

clean:
	rm -rf out var .pytest_cache .ruff_cache .mypy_cache
