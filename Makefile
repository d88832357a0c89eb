# gliofuse developer entry points. `make demo` and `make test` work on a fresh machine (Python 3.11 + pip).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= all
PROFILE := --workflow-profile workflow/profiles/default
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1

.PHONY: demo test lint venv clean-results rulegraph

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

## Run the whole pipeline on the embedded demo cohort and build results/report.html
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(PROFILE)
	$(BIN)/snakemake --cores 1 $(PROFILE) --report results/report.html
	@echo "report: $(CURDIR)/results/report.html"

## Run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15 tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/snakemake --lint --cores 1

## Regenerate the rule-graph picture shown in the README (needs graphviz `dot`)
rulegraph: $(STAMP)
	$(BIN)/snakemake --rulegraph --cores 1 | dot -Tsvg > docs/rulegraph.svg

clean-results:
	rm -rf results/* .snakemake && touch results/.gitkeep
