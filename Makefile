# Set-up, run, test and benchmark. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PG_URL ?= postgresql://postgres@127.0.0.1:5432
# Three processes on two cores: the suite waits on real servers, workers and browsers for much of its time (with
# two processes the cores were busy 50-60% of the pass; three took the passes from 7.7 + 6.6 to 5.3 + 4.5 minutes).
PYTEST_WORKERS ?= 3
# `make run PORT=4300` when 4200 is taken (HOST likewise).
PORT ?= 4200
HOST ?= 127.0.0.1

.PHONY: install run test test-sqlite test-postgres chaos bench bench-resilience soak lint services browser clean

install: $(STAMP)

$(STAMP): requirements/base.txt requirements/test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements/test.txt
	$(PIP) install --quiet --no-deps -e .
	touch $(STAMP)

run: install
	$(VENV)/bin/orchestrator server start --host $(HOST) --port $(PORT)

services:
	@scripts/ensure-services.sh

# The UI tests drive Debian's Chromium through Playwright (Playwright's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; }

# Two passes, each on PYTEST_WORKERS processes; `--dist worksteal` lets an idle process take tests queued on the
# other, so the pass ends with the last test, not with one process's backlog (tests/conftest.py starts the slowest
# files first).
test: install services browser lint
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite:
	@echo "== test suite on SQLite"
	ORCHESTRATOR_HOME=$$(mktemp -d) ORCHESTRATOR_DATABASE_URL= $(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal -q

test-postgres:
	@echo "== test suite on PostgreSQL"
	ORCHESTRATOR_HOME=$$(mktemp -d) ORCHESTRATOR_DATABASE_URL=$(PG_URL)/orch_ci_$$(date +%s)_$$$$ \
		$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal -q

# The fault tests (tests/faults, docs/faults.md): real kills and restarts of the server, PostgreSQL, Redis and a full
# disk; `make test` leaves them out (marker `chaos`). One process: the faults' timings are part of what they show.
# `-s` prints each fault's figures (lines starting with FAULT). Those that do not use the suite's database run in
# the SQLite pass only. They need root (initdb as postgres, mount -t tmpfs).
chaos: install services
	@echo "== fault tests on SQLite"
	ORCHESTRATOR_HOME=$$(mktemp -d) ORCHESTRATOR_DATABASE_URL= $(PY) -m pytest -m chaos -s -q tests/faults
	@echo "== fault tests on PostgreSQL"
	ORCHESTRATOR_HOME=$$(mktemp -d) ORCHESTRATOR_DATABASE_URL=$(PG_URL)/orch_chaos_$$(date +%s)_$$$$ \
		$(PY) -m pytest -m chaos -s -q tests/faults

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

bench: install services
	$(PY) benchmarks/api_throughput.py
	$(PY) benchmarks/sdk_overhead.py
	$(PY) benchmarks/scheduler.py
	$(PY) benchmarks/worker_latency.py --pools process,celery
	$(PY) benchmarks/events_latency.py --database sqlite
	$(PY) benchmarks/live_latency.py --database sqlite
	$(PY) benchmarks/events_latency.py --database postgresql
	$(PY) benchmarks/notifications.py --database sqlite
	$(PY) benchmarks/server_memory.py
	$(PY) benchmarks/concurrency.py

# Minutes each, so not part of `make bench`: scheduler leadership under restarts (PostgreSQL) and a simulated
# month of retention on each database.
bench-resilience: install services
	$(PY) benchmarks/leadership.py
	$(PY) benchmarks/retention.py --database sqlite
	$(PY) benchmarks/retention.py --database postgresql

# 10 minutes per database by default; SOAK_MINUTES=2 make soak for a shorter one.
SOAK_MINUTES ?= 10
soak: install services
	$(PY) benchmarks/soak.py --database sqlite --minutes $(SOAK_MINUTES)
	$(PY) benchmarks/soak.py --database postgresql --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
