# Two entry points: `make replicate` (default replication: figures, tables, report) and `make test`.
# Each sets up its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= config/config.yaml
# Working directory of the run: results/, logs/ and .snakemake/ are written under it.
RESULTS ?= .
STAMP := $(VENV)/.installed

.PHONY: replicate replicate-locked test setup lint report clean

SMK := $(BIN)/snakemake --workflow-profile workflow/profiles/default --configfile $(CONFIG) --directory $(RESULTS)

# An OS-level lock held for the whole run (released by the kernel when the run dies, even by SIGKILL): a second
# `make replicate` in the same folder is refused instead of running the same jobs beside the first. Inside it,
# releasing Snakemake's own lock (which a killed run leaves behind) is safe.
replicate: $(STAMP)
	@mkdir -p $(RESULTS)
	@flock --nonblock --conflict-exit-code 75 $(RESULTS)/.replicate.lock $(MAKE) --no-print-directory replicate-locked; \
	rc=$$?; if [ $$rc -eq 75 ]; then echo "error: another 'make replicate' is running in $(RESULTS)" >&2; fi; exit $$rc

replicate-locked: $(STAMP)
	@# The one validation (YAML, schema, package checks, the sweep's size), one line per error, before any job.
	$(BIN)/momentum-ct check $(CONFIG)
	$(SMK) --unlock --quiet
	$(SMK) --cores $(CORES)
	$(SMK) --report results/report.html

# Three pytest-xdist workers on a small machine, each process's torch on one thread: the suite runs many
# processes at once, and OpenMP threads of an oversubscribed machine spend their waits spinning.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder --durations=15

lint: $(STAMP)
	$(BIN)/snakemake --lint

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[test]'
	@# Bytecode for the installed packages, on every core (pip compiles one file after another); errors are
	@# files of other projects' test data that are not Python 3, which pip skips the same way.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

clean:
	cd $(RESULTS) && rm -rf results logs .snakemake .replicate.lock
