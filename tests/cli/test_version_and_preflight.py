"""`orchestrator version`, the verb mapping in manage.py, and refusing to start on a malformed setting."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import django

import orchestrator
from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import sqlite_pass_only

# Each command runs on a fresh home with its own settings: none uses the suite's database.
pytestmark = sqlite_pass_only

REPO = Path(__file__).resolve().parents[2]


def test_version_shows_versions_database_and_url(tmp_path: Path) -> None:
    """Bug reports start with this output: every version and the database in use."""
    result = run_orchestrator("version", env=orchestrator_env(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert lines["Version"].strip() == orchestrator.__version__
    assert lines["API version"].strip() == orchestrator.API_VERSION
    assert lines["Django"].strip() == django.get_version()
    assert lines["Python"].strip() == platform.python_version()
    assert lines["Database"].strip() == "sqlite"
    assert lines["Database URL"].strip() == f"sqlite:///{tmp_path / 'orchestrator.db'} (default)"


def test_version_masks_the_database_password(tmp_path: Path) -> None:
    """The output is pasted into issues; a database password must not travel with it."""
    url = "postgresql://orchestrator:hunter2@127.0.0.1:5999/orchestrator"
    result = run_orchestrator("version", env=orchestrator_env(tmp_path, ORCHESTRATOR_DATABASE_URL=url))
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "postgresql://orchestrator:********@127.0.0.1:5999/orchestrator" in result.stdout
    assert "Database:     postgresql" in result.stdout


def test_manage_py_version_runs_our_command_not_djangos(tmp_path: Path) -> None:
    """`python manage.py VERB` is documented as the same as `orchestrator VERB`, `version` included."""
    result = subprocess.run(
        [sys.executable, "manage.py", "version"],
        cwd=REPO,
        env=orchestrator_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"Version:      {orchestrator.__version__}" in result.stdout


def test_server_start_with_malformed_database_url_fails_in_one_line_before_starting(tmp_path: Path) -> None:
    """A typo in the database URL must be named, not become a traceback or a half-started server."""
    result = run_orchestrator("server", "start", env=orchestrator_env(tmp_path, ORCHESTRATOR_DATABASE_URL="foo://x"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ORCHESTRATOR_DATABASE_URL (env): unsupported scheme 'foo'")
    assert result.stdout == ""
    assert not (tmp_path / "orchestrator.db").exists()


def test_malformed_setting_in_the_profile_names_the_fix(tmp_path: Path) -> None:
    """A bad value saved in the profile must point at the command that changes it."""
    (tmp_path / "profiles.toml").write_text('active = "default"\n[profiles.default]\nORCHESTRATOR_DEBUG = "maybe"\n')
    result = run_orchestrator("flow-run", "ls", env=orchestrator_env(tmp_path))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: ORCHESTRATOR_DEBUG (profile): 'maybe' is not a boolean (use true or false); "
        "fix it with `orchestrator config set ORCHESTRATOR_DEBUG=...`"
    ]


def test_usage_mistake_is_one_line_with_a_pointer_to_help(tmp_path: Path) -> None:
    """Argument errors follow the same one-line rule as every other error."""
    result = run_orchestrator("server", "start", "--port", "http", env=orchestrator_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: argument --port: 'http' is not a port number (see `orchestrator server start --help`)"
    ]


def test_server_start_on_a_busy_port_is_one_line_error(tmp_path: Path) -> None:
    """Two servers on one port is the most common start-up mistake; it must be said plainly."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_orchestrator("server", "start", "--port", str(port), env=orchestrator_env(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use; stop the other server or choose another --port"
    ]
    assert "API:" not in result.stdout


def test_database_error_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """An unreachable database is an everyday condition, not a crash."""
    env = orchestrator_env(tmp_path, ORCHESTRATOR_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    started = time.monotonic()
    result = run_orchestrator("flow-run", "ls", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the database is unavailable: " in lines[0], result.stderr
    assert time.monotonic() - started < 30, "the in-process client waited out a database that was never there"


def test_unmigrated_database_says_how_to_set_it_up(tmp_path: Path) -> None:
    """Reading before the first `server start` must tell the user what to run."""
    result = run_orchestrator("flow-run", "ls", env=orchestrator_env(tmp_path))
    assert result.returncode == 1
    assert "run `orchestrator server database upgrade`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
