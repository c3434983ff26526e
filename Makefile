# One entry point for every job. Each target creates .venv and installs the
# pinned stack on first use, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
PYTEST_ARGS ?=

.PHONY: help venv test bench clean-results

help:
	@echo "make test            create .venv, install, run the test suite"
	@echo "make bench           compare async modes on the '$(PROFILE)' profile (PROFILE=full for the long one)"

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.lock
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m scripts.bench --profile $(PROFILE)

clean-results:
	rm -rf results
