# `make test` and `make demo` work on a fresh machine: they build their own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# The whole suite: lint, strict types, then every test (SQLite and PostgreSQL; with CI=true a missing
# PostgreSQL is a failure, not a skip).
test: lint typecheck
	$(BIN)/pytest --cov --cov-report=term tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage*
