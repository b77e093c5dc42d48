# flowaudit — two commands: `make demo` and `make test`. Each sets everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_HOME ?= demo-home

.PHONY: setup system-deps services demo demo-live test lint bench bench-quick crash clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the tests need: espeak-ng (real speech for the VAD test), sox, chromium
# (renders the HTML reports headless). Installed only when missing.
system-deps:
	@missing=""; \
	for bin in espeak-ng:espeak-ng sox:sox chromium:chromium; do \
	  command -v $${bin%%:*} >/dev/null 2>&1 || missing="$$missing $${bin##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# PostgreSQL must be up for the test suite (its tests never silently skip in CI).
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

# The demo is a command of the installed package (flowaudit/demo.py), so a wheel user runs it too.
demo: setup
	$(VENV)/bin/flowaudit demo --home $(DEMO_HOME)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

# The suite runs in PYTEST_WORKERS processes (pytest-xdist), a module per process at a time so
# that a module's servers start once; most tests wait on servers and subprocesses, so 3
# processes keep 2 cores busy. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 3
test: setup system-deps services lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadscope --durations=20

# Every benchmark prints its own baseline, measured in the same run, and the ratio to it.
# -P keeps bench/ off the import path: bench/audit.py and bench/pipeline.py would otherwise
# shadow the installed audit and pipeline packages the benches import.
BENCHES := store pipeline audit purge reid pii keys live live_workers console
# A live event on one machine: nats-server, gateway, worker, simulated wristbands (~1 min).
demo-live: setup
	$(PY) -m pipeline.live.demo

bench: setup services
	@set -e; for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) -P bench/$$b.py; done

bench-quick: setup services
	@set -e; for b in $(BENCHES); do echo "== bench/$$b.py --quick"; $(PY) -P bench/$$b.py --quick; done

# kill -9 matrix: purge and dsr erase killed at 28 seeded random moments each, per backend, then
# rerun and compared with an uninterrupted run; prints trials / identical / differing / crashed.
crash: setup services
	$(PY) -m tests.crash --trials 28
	FLOWAUDIT_CRASH_TRIALS=28 $(PY) -m pytest tests/crash/test_crash_run_event.py -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .hypothesis build *.egg-info
