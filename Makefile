# Everything runs from a virtualenv in .venv/, built from nothing on first use.
# The base interpreter is python3.13 (the Lambda runtime) when pyenv has one, else python3.
PY313 := $(shell pyenv root 2>/dev/null)/versions/$(shell pyenv versions --bare 2>/dev/null | grep '^3\.13' | tail -1)/bin/python3
BASE_PYTHON ?= $(if $(wildcard $(PY313)),$(PY313),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test unit lint lint-python demo bench load clean build lint-template fuzz flake-hunt

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

lint: lint-python lint-template

## fuzz: the property tests of the protocol at length and at random (make test runs a short
## fixed-seed sample of the same tests): FUZZ_EXAMPLES for each of the three fuzz tests and
## FUZZ_MODEL_EXAMPLES random histories of the model-based test, 10,100 examples in all by
## default. The seed is printed first; replay a failure with make fuzz FUZZ_SEED=<seed>.
FUZZ_EXAMPLES ?= 3200
FUZZ_MODEL_EXAMPLES ?= 500
ifeq ($(origin FUZZ_SEED),undefined)
FUZZ_SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
fuzz: $(STAMP)
	@echo "fuzz: seed $(FUZZ_SEED); $(FUZZ_EXAMPLES) examples per fuzz test, $(FUZZ_MODEL_EXAMPLES) model histories"
	@echo "fuzz: replay with make fuzz FUZZ_SEED=$(FUZZ_SEED)"
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_MODEL_EXAMPLES=$(FUZZ_MODEL_EXAMPLES) $(BIN)/pytest -p no:logging -q \
		--hypothesis-seed=$(FUZZ_SEED) --hypothesis-show-statistics \
		tests/reliability/test_fuzz.py tests/reliability/test_model.py

## flake-hunt: the whole suite RUNS times in a row (default 20) beside a CPU hog, a line per run
flake-hunt: $(STAMP)
	RUNS=$(or $(RUNS),20) tools/flake-hunt

lint-python: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## build: sam build, offline but for PyPI (SAM CLI in its own .venv-sam; python3.13 from pyenv)
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
LINT_VENV := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed
# sam's python3.13 builder looks the interpreter up on PATH: put pyenv's 3.13 first.
SAM_ENV := SAM_CLI_TELEMETRY=0 PATH="$(if $(wildcard $(PY313)),$(dir $(PY313)):)$$PATH"

$(SAM_STAMP): tools/lint/requirements-sam.txt
	rm -rf $(SAM_VENV)
	$(BASE_PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r tools/lint/requirements-sam.txt
	touch $@

$(LINT_STAMP): tools/lint/requirements-lint.txt
	rm -rf $(LINT_VENV)
	$(BASE_PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --upgrade pip
	$(LINT_VENV)/bin/pip install --quiet -r tools/lint/requirements-lint.txt
	touch $@

build: $(SAM_STAMP)
	$(SAM_ENV) $(SAM_VENV)/bin/sam build

## lint-template: sam validate --lint (the coordinator's and examples/consumer/'s), cfn-lint (+ project rules), statelint on every ASL file, checkov
lint-template: $(STAMP) $(SAM_STAMP) $(LINT_STAMP)
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --region us-east-1
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --region us-east-1 -t examples/consumer/template.yaml
	$(BIN)/cfn-lint --append-rules tools/lint/cfnlint_rules -- template.yaml
	$(LINT_VENV)/bin/statelint --ignore=URI statemachines/*.asl.json examples/consumer/statemachines/*.asl.json
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

## demo: the coordinator at work on the offline stack (moto, no AWS account), as a timeline
demo: $(STAMP)
	$(BIN)/python -m coordinator_tools.local demo

## local: keep the offline stack running and print its endpoint (for the AWS CLI or boto3)
.PHONY: local
local: $(STAMP)
	$(BIN)/python -m coordinator_tools.local up

## bench: run bench/ and write docs/performance.md (counts and side-by-side ratios; ~10 minutes)
bench: $(STAMP)
	$(BIN)/python -m bench.run_all

## load: the offline stack under load: 10,000 waiters on one payload and 10,000 payloads with
## one waiter each, against 1,000 of each; checks nothing was lost (not in make test: about an
## hour on 2 cores). moto holds ~6 threads per waiting execution: on Linux it needs
## vm.max_map_count >= 500000 and kernel.pid_max >= 80000 (it checks, and says what to raise).
## Smaller runs: LOAD_SIZES="100 1000" (docs/reliability.md, Load).
LOAD_SIZES ?= 1000 10000
load: $(STAMP)
	$(BIN)/python -m bench.load --sizes $(LOAD_SIZES)

clean:
	rm -rf $(VENV) .venv-sam .venv-lint .aws-sam .pytest_cache .mypy_cache .ruff_cache
