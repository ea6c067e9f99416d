# One command to install, one to test.  `make install` then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements-dev.txt

# Lint, then the whole suite. pytest exits 5 when it collects no tests: report that instead of failing.
test: lint
	@$(BIN)/python -m pytest -n 2; status=$$?; \
	if [ $$status -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$status

# ruff (lint + formatting) and the import-linter contract in pyproject.toml (one-way layers).
lint:
	$(BIN)/ruff check flexplat plugins tests benchmarks
	$(BIN)/ruff format --check flexplat plugins tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
