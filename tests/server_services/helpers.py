"""Helpers for the services tests: real Celery worker and Beat processes sharing the test database."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

from tests.support.cli import orchestrator_env

REPOSITORY = Path(__file__).resolve().parents[2]
CELERY = [sys.executable, "-m", "celery", "--quiet", "--skip-checks"]
WAIT_SECONDS = 45.0


def database_url_of_this_test() -> str:
    """The URL of the database this test runs on, for the processes it starts (they see its committed rows)."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    return f"postgresql://{database['USER']}@{host}:{port}/{database['NAME']}"


def services_env(home: Path, **settings: str) -> dict[str, str]:
    """The environment of a process under test: tests/server_services/settings.py (one-second pause_timeouts),
    the test database, its own home (so its own embedded broker) and its own queue name."""
    return orchestrator_env(
        home,
        ORCHESTRATOR_DATABASE_URL=database_url_of_this_test(),
        DJANGO_SETTINGS_MODULE="tests.server_services.settings",
        PYTHONPATH=str(REPOSITORY),
        SERVICES_TEST_QUEUE=f"orchestrator-test-{uuid.uuid4().hex[:12]}",
        **settings,
    )


def wait_for(condition: Callable[[], object], *, timeout: float = WAIT_SECONDS, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class CeleryProcesses:
    """A `celery worker` and, unless told otherwise, a `celery beat`, with their output in one log file."""

    processes: list[subprocess.Popen]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def celery_processes(
    home: Path, *, env: dict[str, str], beat: bool = True, app: str = "orchestrator.celery"
) -> Iterator[CeleryProcesses]:
    """Start the worker (and Beat) as `celery -A APP ...` processes; stop them on exit."""
    home.mkdir(parents=True, exist_ok=True)
    worker = ["worker", "--pool", "threads", "--concurrency", "2", "--without-gossip", "--without-mingle"]
    commands = [[*CELERY, "-A", app, *worker, "--loglevel", "WARNING"]]
    if beat:
        commands.append([*CELERY, "-A", app, "beat", "--loglevel", "WARNING"])
    log = home / "celery.log"
    with log.open("w") as output:
        started = CeleryProcesses(
            [subprocess.Popen(command, env=env, stdout=output, stderr=output, cwd=REPOSITORY) for command in commands],
            log,
        )
    try:
        yield started
    finally:
        for process in started.processes:
            process.send_signal(signal.SIGTERM)
        for process in started.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
