"""What `server start`'s processes load and how they are tuned: the server's memory depends on both
(benchmarks/server_memory.py measures it; docs/server.md explains each cut)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import config
from tests.cli.test_server_start import child_pids, command_line
from tests.support.cli import orchestrator_env
from tests.support.server import start_server

REPOSITORY = Path(__file__).resolve().parents[2]


def loaded_modules(code: str, env: dict[str, str]) -> set[str]:
    """The modules a fresh interpreter holds after running `code` (which must not print)."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(name for name, m in sys.modules.items() if m)))"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPOSITORY, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_orchestrator_loads_neither_the_sdk_nor_django(tmp_path: Path) -> None:
    """Every server process imports the package for its settings; the SDK's names load on first use only."""
    modules = loaded_modules("import orchestrator", orchestrator_env(tmp_path))
    assert not [name for name in modules if name.startswith(("orchestrator.sdk", "django", "httpx", "apps."))]

    modules = loaded_modules("from orchestrator import flow, tags, State", orchestrator_env(tmp_path))
    assert {"orchestrator.sdk.flows", "orchestrator.sdk.context", "orchestrator.states"} <= modules


def test_an_unknown_name_of_the_package_is_an_attribute_error() -> None:
    """`celery -A orchestrator` and hasattr() probe the package: a missing name must not import anything."""
    import orchestrator

    with pytest.raises(AttributeError, match="no attribute 'app'"):
        orchestrator.app  # noqa: B018
    assert orchestrator.flow.__module__ == "orchestrator.sdk.flows"


def test_a_server_worker_on_sqlite_loads_no_tls_no_postgresql_driver_and_no_schema_generator(tmp_path: Path) -> None:
    """About 25 MB per Daphne worker that no request on SQLite uses (the schema views import theirs when asked)."""
    code = (
        "from orchestrator.server import _leave_out_unused_libraries\n"
        "_leave_out_unused_libraries()\n"
        "import daphne.server\n"
        "from orchestrator.asgi import application\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns"
    )
    env = orchestrator_env(tmp_path, ORCHESTRATOR_DATABASE_URL=f"sqlite:///{tmp_path / 'orchestrator.db'}")
    modules = loaded_modules(code, env)
    assert "daphne.server" in modules and "apps.runs.api.views" in modules
    assert "autobahn.twisted.websocket" in modules  # Daphne's websocket protocol, all the same
    left_out = {"OpenSSL", "cryptography", "autobahn.wamp.auth", "psycopg", "drf_spectacular.views"}
    assert not left_out & modules


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ORCHESTRATOR_SERVICES_CONCURRENCY", "0", "greater than 0"),
        ("ORCHESTRATOR_SERVICES_CONCURRENCY", "two", "not a whole number"),
        ("ORCHESTRATOR_SERVICES_CONCURRENCY", "1.5", "not a whole number"),
        ("ORCHESTRATOR_RETENTION_DAYS", "-1", "must be 0 or more"),
        ("ORCHESTRATOR_RETENTION_DAYS", "a month", "not a whole number"),
        ("ORCHESTRATOR_SERVER_STOP_GRACE_SECONDS", "0", "greater than 0"),
        ("ORCHESTRATOR_SERVER_STARTUP_SECONDS", "soon", "not a number"),
        ("ORCHESTRATOR_BROKER_POLL_SECONDS", "-0.5", "greater than 0"),
    ],
)
def test_bad_server_tunables_are_refused_with_their_reason(name: str, value: str, fragment: str) -> None:
    """`config set` and the start-up check name what is wrong instead of failing later in a child process."""
    assert fragment in config.SETTINGS[name].validate(value)


def test_good_server_tunables_are_accepted() -> None:
    assert config.SETTINGS["ORCHESTRATOR_RETENTION_DAYS"].validate("0") is None
    assert config.SETTINGS["ORCHESTRATOR_SERVICES_CONCURRENCY"].validate("2") is None


@pytest.mark.e2e
def test_server_start_hands_its_tunables_to_the_supervisor_and_runs_the_services_in_worker_one(tmp_path: Path) -> None:
    """The supervisor has no Django: the settings reach it and the worker running the services on command lines."""
    settings = {"ORCHESTRATOR_SERVICES_CONCURRENCY": "2", "ORCHESTRATOR_SERVER_STOP_GRACE_SECONDS": "3"}
    with start_server(home=tmp_path / "home", settings=settings) as server:
        supervisor = command_line(server.process.pid)
        assert "--stop-grace-seconds 3.0 " in supervisor and "--services-concurrency 2 " in supervisor
        children = [command_line(pid) for pid in child_pids(server.process.pid)]
        assert len(children) == 1 and "orchestrator.server worker " in children[0], children
        assert "--services --services-concurrency 2 --stop-grace-seconds 3.0" in children[0], children
        assert server.stop() == 0
