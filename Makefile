# One entry point for every job. Each target creates .venv and installs the
# pinned stack on first use, so a fresh clone needs nothing but Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
PYTEST_ARGS ?=
RUN_ID ?=
THRESHOLDS ?= sioharness/profiles/thresholds.toml
BASELINE ?= baselines/$(PROFILE).json
TOLERANCE ?= 0.5
ARGS_FROM := $(PY) -m sioharness.core.env_args

BASE ?=
AB_ARGS ?=
RUN ?=
UI_ARGS ?=
DOCKER_BASE ?= auto
MODE        ?= threading
SERVER      ?= dev
SCENARIO    ?= echo
USERS       ?= 20
DURATION    ?= 10
WORKERS     ?= 2
# What a user or a CI workflow types reaches the recipes as data, never as command text:
# - a value given on make's command line is kept as typed (make does not expand $(...) in it);
# - every value goes to the recipes as an environment variable, which the shell quotes ("$$RUN"),
#   and option lists (AB_ARGS, UI_ARGS, PYTEST_ARGS) are split into words by sioharness.core.env_args
#   (shlex: quotes group, nothing is evaluated).
# So BASE='origin/`id`', a valid branch name, is just a name.
USER_VARS := PROFILE PYTEST_ARGS RUN_ID THRESHOLDS BASELINE TOLERANCE BASE AB_ARGS MEASURE RUN UI_ARGS \
	DOCKER_BASE MODE SERVER SCENARIO USERS DURATION WORKERS
$(foreach v,$(USER_VARS),$(if $(filter command line,$(origin $(v))),$(eval override $(v) := $$(value $(v)))))
export $(USER_VARS)

.PHONY: help venv test test-serial test-fast test-stress lint bench abtest check baseline capacity ui clean-results

help:
	@echo "make test            create .venv, install, run the test suite"
	@echo "make test-fast       the tests that run no real load, 4 at once (under a minute)"
	@echo "make test-stress     the slow tests with one core kept busy, as on a shared CI runner"
	@echo "make lint            ruff and mypy over the harness"
	@echo "make bench           compare async modes on the '$$PROFILE' profile (PROFILE=full for the long one)"
	@echo "make abtest          same-runner A/B: BASE=<ref> (default merge base) vs the working tree, AB_ARGS=..."
	@echo "                     MEASURE=instructions counts the server's instructions per operation (valgrind)"
	@echo "make check RUN=DIR   check a run against $$THRESHOLDS and $$BASELINE (exit 1 on a failure)"
	@echo "make baseline RUN=DIR  refresh $$BASELINE from a run"
	@echo "make capacity        max clients at SLO per async mode (echo scenario)"
	@echo "make ui              target + Locust web UI on http://127.0.0.1:8089 (UI_ARGS='--target eventlet-dev --processes 2')"

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.lock
	# The harness itself, editable: a locustfile anywhere can `from loadtests import SocketIOUser`.
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

# The whole suite as 4 pytest processes split by measured time (tests/parallel.py), then the files
# marked `alone` by themselves; a process still running after 20 minutes is ended as failed.
test: $(STAMP)
	$(ARGS_FROM) PYTEST_ARGS -- $(PY) -m tests.parallel --jobs 4 --deadline 1200 --

# The same tests in one pytest process, one after the other (about 16 minutes).
test-serial: $(STAMP)
	$(ARGS_FROM) PYTEST_ARGS -- $(PY) -m pytest

# The tests that run no real load, as 4 pytest processes split by file (tests/parallel.py):
# under a minute on 2 cores (52 s); a share still running after 5 minutes is ended as failed.
test-fast: $(STAMP)
	$(ARGS_FROM) PYTEST_ARGS -- $(PY) -m tests.parallel --jobs 4 --deadline 300 -- -m "not slow"

# Before landing timing-sensitive work: a test tied to a guessed delay fails here.
test-stress: $(STAMP)
	$(PY) -m tests.busy_core -- $(ARGS_FROM) PYTEST_ARGS -- $(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m sioharness.bench --profile "$$PROFILE" $${RUN_ID:+--run-id "$$RUN_ID"}

abtest: $(STAMP)
	$(ARGS_FROM) AB_ARGS -- $(PY) -m sioharness.bench.ab $${BASE:+--base "$$BASE"} $${MEASURE:+--measure "$$MEASURE"}

check: $(STAMP)
	@test -n "$$RUN" || { echo "usage: make check RUN=results/<run-id>"; exit 2; }
	set --; if [ -f "$$BASELINE" ]; then set -- --baseline "$$BASELINE"; fi; \
	$(PY) -m sioharness.bench.check "$$RUN" --thresholds "$$THRESHOLDS" "$$@" --tolerance "$$TOLERANCE"

baseline: $(STAMP)
	@test -n "$$RUN" || { echo "usage: make baseline RUN=results/<run-id>"; exit 2; }
	$(PY) -m sioharness.bench.check "$$RUN" --write-baseline "$$BASELINE"

capacity: $(STAMP)
	$(PY) -m sioharness.bench.capacity

ui: $(STAMP)
	$(ARGS_FROM) UI_ARGS -- $(PY) -m sioharness.bench.ui

clean-results:
	rm -rf results

# Docker
# The same harness as containers (README, "Docker"). DOCKER_BASE: auto (the
# local Debian base when this machine made one, else python:3.11-slim),
# public, local, or an image name. Engine and base commands need root.
.PHONY: docker-engine-up docker-engine-down docker-base docker-build docker-run docker-ui docker-down docker-test

docker-engine-up:      ## start dockerd (root, Debian) when no engine runs
	$(PYTHON) -m sioharness.dockertools.engine up

docker-engine-down:    ## stop the dockerd docker-engine-up started, by its pid
	$(PYTHON) -m sioharness.dockertools.engine down

docker-base:           ## local Python base image from Debian packages (no registry needed)
	$(PYTHON) -m sioharness.dockertools.base

docker-build:          ## target and Locust images
	$(PYTHON) -m sioharness.dockertools.stack build --base "$$DOCKER_BASE"

docker-run: $(STAMP)   ## one scenario headless in containers, then the report
	$(PY) -m sioharness.dockertools.run --base "$$DOCKER_BASE" --mode "$$MODE" --server "$$SERVER" \
		--scenario "$$SCENARIO" --users "$$USERS" --duration "$$DURATION" --workers "$$WORKERS"

docker-ui:             ## target + Locust web UI on http://127.0.0.1:8089 + workers
	$(PYTHON) -m sioharness.dockertools.stack ui --base "$$DOCKER_BASE" --mode "$$MODE" --server "$$SERVER" --workers "$$WORKERS"

docker-down:           ## remove the stack's containers and network
	$(PYTHON) -m sioharness.dockertools.stack down

docker-test: $(STAMP)  ## the Docker tests; starts (and then stops) an engine when none runs and we are root
	SIO_DOCKER_START_ENGINE=1 $(ARGS_FROM) PYTEST_ARGS -- $(PY) -m pytest -m docker tests/test_docker_*.py
