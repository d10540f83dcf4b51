# taogram: `make run` serves the embedded default, `make test` runs the suite against real
# servers, `make bench` runs the benchmarks. See README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.taogram-installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`, each with its own servers; 0 runs the tests in the make process's pytest.
PYTEST_WORKERS ?= 2
CONFIG ?=

.DEFAULT_GOAL := help
.PHONY: help python venv deps run cluster cluster-reset lint checks test bench

help:
	@echo "make run [CONFIG=path.toml]   start the server (embedded default unless CONFIG says otherwise)"
	@echo "make cluster [CLUSTER_DIR=.cluster] the real stack on this machine: 2 MariaDB, 2 memcached, Redis, S3,"
	@echo "                              migrations, a job worker, 2 server processes; Ctrl-C stops it (docs/deploy.md)"
	@echo "make cluster-reset            delete the cluster's data dir"
	@echo "make test [PYTEST_ARGS=...]   make lint's checks, then pytest against throwaway MariaDB/memcached/S3/Redis"
	@echo "           [PYTEST_WORKERS=2] on that many pytest-xdist workers, each with its own servers (0: none)"
	@echo "make bench                    run bench/*.py (each starts its own servers)"
	@echo "make lint                     import contracts (lint-imports), ruff, mypy"
	@echo "make venv | deps              the steps on their own"
	@echo "make python                   build an optimised CPython (PGO + LTO) into /opt/taogram-python and remake"
	@echo "                              the venv on it: ~25 min once; 20-25 % less CPU a request (docs/operations.md)"

# The venv is (re)installed only when pyproject.toml changed since the last install.
venv: $(STAMP)

$(STAMP): pyproject.toml scripts/ensure-venv.sh
	scripts/ensure-venv.sh
	touch $@

# Optional: `make venv` uses /opt/taogram-python when it is there, any Python >= 3.12 otherwise.
python:
	scripts/build-python.sh
	rm -f $(STAMP)
	$(MAKE) --no-print-directory venv

deps:
	scripts/ensure-deps.sh

run: venv
	$(if $(CONFIG),TAOGRAM_CONFIG=$(CONFIG) )$(PY) server.py

# The production stack on one machine (scripts/cluster.py); data kept in $(CLUSTER_DIR) across restarts.
CLUSTER_DIR ?= .cluster
cluster: venv deps
	CLUSTER_DIR=$(CLUSTER_DIR) $(PY) scripts/cluster.py up

cluster-reset:
	CLUSTER_DIR=$(CLUSTER_DIR) $(PY) scripts/cluster.py reset

lint: venv
	$(MAKE) --no-print-directory checks

# The static checks; each runs even when one before it failed, and any failure fails the target.
# ruff and mypy read their configuration from pyproject.toml.
checks:
	@rc=0; \
	echo "== lint-imports"; $(VENV)/bin/lint-imports || rc=1; \
	echo "== ruff"; $(VENV)/bin/ruff check --output-format concise . || rc=1; \
	echo "== mypy"; $(VENV)/bin/mypy || rc=1; \
	exit $$rc

# The checks first, then pytest even when a check failed (so one run reports both); either
# failing fails the target. pytest's exit 5 (no tests collected) fails like any other non-zero exit.
# worksteal: a worker that runs out of tests takes half of the other's queue, so the last slow
# tests do not leave a core idle.
test: venv deps
	@checks=0; $(MAKE) --no-print-directory checks || checks=$$?; \
	rc=0; $(VENV)/bin/pytest -q -p no:cacheprovider --durations=25 \
	    $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist worksteal) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests, which counts as a failure" >&2; fi; \
	if [ $$checks -ne 0 ]; then echo "make test: the static checks failed (see above)" >&2; [ $$rc -ne 0 ] || rc=$$checks; fi; \
	exit $$rc

# Files named _*.py are helpers, not benchmarks. PYTHONPATH lets them import tests.harness.
# The side-by-side tools (`*_ab.py`: two checkouts to compare) and bench/profiled_server.py (a
# wrapper for a server) take arguments: they are run by hand (docs/BENCHMARKS.md), not here.
bench: venv deps
	@shopt -s nullglob; benches=(); for b in bench/[!_]*.py; do case $$b in *_ab.py|*/profiled_server.py) ;; \
	*) benches+=("$$b");; esac; done; \
	if [ $${#benches[@]} -eq 0 ]; then echo "make bench: no benchmarks in bench/ yet"; exit 0; fi; \
	for b in "$${benches[@]}"; do echo "== $$b"; PYTHONPATH=$(CURDIR) $(PY) "$$b"; done
