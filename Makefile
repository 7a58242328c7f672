# Two entry points: `make replicate` (default replication: figures, tables, report) and `make test`.
# Each sets up its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= config/config.yaml
STAMP := $(VENV)/.installed

.PHONY: replicate test setup lint report clean

SMK := $(BIN)/snakemake --workflow-profile workflow/profiles/default --configfile $(CONFIG)

replicate: $(STAMP)
	@# A killed run leaves a stale lock; this command is also the documented way to resume one.
	$(SMK) --unlock --quiet
	$(SMK) --cores $(CORES)
	$(SMK) --report results/report.html

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/snakemake --lint

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf results logs .snakemake
