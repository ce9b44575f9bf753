# Everything runs from a virtualenv in .venv/, built from nothing on first use.
# The base interpreter is python3.13 (the Lambda runtime) when pyenv has one, else python3.
PY313 := $(shell pyenv root 2>/dev/null)/versions/$(shell pyenv versions --bare 2>/dev/null | grep '^3\.13' | tail -1)/bin/python3
BASE_PYTHON ?= $(if $(wildcard $(PY313)),$(PY313),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test unit lint lint-python demo bench load clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt layers/coordinator/requirements.txt pyproject.toml
	rm -rf $(VENV)
	$(BASE_PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -e .
	touch $@

## test: everything CI checks (lint, then every test)
test: lint unit

unit: $(STAMP)
	$(BIN)/pytest

lint: lint-python

lint-python: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
