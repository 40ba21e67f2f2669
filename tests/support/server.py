"""A real `orchestrator server start` subprocess for end-to-end tests, on a free port and a fresh database.

tests/conftest.py registers this module (`pytest_plugins = ["tests.support.server"]`), so any test can ask for:

    @pytest.mark.e2e
    def test_health(orchestrator_server):  # the base URL, e.g. "http://127.0.0.1:43127"
        assert httpx.get(f"{orchestrator_server}/api/health/").status_code == 200

    @pytest.mark.e2e
    def test_cli(orchestrator_server_process):  # a RunningServer
        run_orchestrator("flow-run", "ls", env=orchestrator_server_process.env)

For other shapes (flags, several servers, a restart on the same database, a module-scoped server) use the
context managers directly:

    with throwaway_database(home) as database_url:
        with start_server(home=home, database_url=database_url, args=["--workers", "2"]) as server:
            ...  # server.base_url, server.api_url, server.env, server.output(), server.stop()

Each server has its own ORCHESTRATOR_HOME and its own database: an SQLite file in that home or, when the suite
runs with a postgresql ORCHESTRATOR_DATABASE_URL, a new database on that PostgreSQL server, created with
psycopg and dropped afterwards. The server listens on `--port 0`; the port is read from the `config set` line
it prints, then /api/health/ is polled until it answers 200. On exit the server gets SIGINT (then SIGKILL if
it does not stop) before its database is dropped. `server.env` runs the CLI against the same home and database.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from orchestrator import config
from tests.support.cli import orchestrator_env, orchestrator_executable

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
API_URL_LINE = re.compile(r"ORCHESTRATOR_API_URL=(http://\S+)/api\b")


def suite_database_url() -> str | None:
    """The database URL the test suite runs with (None: SQLite in ORCHESTRATOR_HOME)."""
    value, source = config.resolve("ORCHESTRATOR_DATABASE_URL")
    return None if source == config.DEFAULT else value


# For tests whose commands never use the suite's database (a fresh home's SQLite, or no database at all): the
# PostgreSQL pass would repeat them exactly, so they run in the SQLite pass only.
sqlite_pass_only = pytest.mark.skipif(
    (suite_database_url() or "").startswith("postgres"),
    reason="does not use the suite's database: the SQLite pass runs it",
)


def _psycopg_url(url: str, database: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]  # postgresql+psycopg:// is Django's spelling, not libpq's
    return urlunsplit(parts._replace(scheme=scheme, path=f"/{database}"))


@contextmanager
def throwaway_database(home: Path) -> Iterator[str]:
    """Yield the URL of an empty database: a new PostgreSQL database when the suite runs on PostgreSQL
    (dropped on exit, connections included), else an SQLite file in `home`."""
    suite_url = suite_database_url()
    if not suite_url or not urlsplit(suite_url).scheme.startswith("postgres"):
        home.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{home / 'orchestrator.db'}"
        return
    import psycopg
    from psycopg import sql

    name = f"orch_e2e_{uuid.uuid4().hex[:16]}"
    maintenance = _psycopg_url(suite_url, "postgres")
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _psycopg_url(suite_url, name)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class RunningServer:
    """A started `orchestrator server start` process and what a test needs to talk to it."""

    process: subprocess.Popen
    home: Path
    database_url: str
    env: dict[str, str]
    base_url: str = ""
    _lines: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def api_key(self) -> str:
        """The admin key the server saved in its home's active profile at its first start (docs/security.md)."""
        data = tomllib.loads((self.home / "profiles.toml").read_text())
        return str(data["profiles"][data["active"]]["ORCHESTRATOR_API_KEY"])

    @property
    def headers(self) -> dict[str, str]:
        """What a request to this server's API sends to be let in (with the admin key)."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def client_env(self, home: Path, **settings: str) -> dict[str, str]:
        """The environment of a client on another machine (its own home): this server's URL and admin key."""
        return orchestrator_env(home, ORCHESTRATOR_API_URL=self.api_url, ORCHESTRATOR_API_KEY=self.api_key, **settings)

    def api_client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server's API (base URL with a trailing slash), sending the admin key."""
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.api_url + "/", headers=self.headers, **kwargs)

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr together)."""
        return "".join(self._lines)

    def stop(self, sig: int = signal.SIGINT, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Send `sig` and return the exit code; a server that does not stop in time is killed and fails."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server did not stop within {timeout}s of signal {sig}:\n{self.output()}") from None


def _collect_output(server: RunningServer, found_url: threading.Event) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server._lines.append(line)
        match = API_URL_LINE.search(line)
        if match and not server.base_url:
            server.base_url = match.group(1)
            found_url.set()
    found_url.set()  # the process ended: stop waiting


def _wait_until_healthy(server: RunningServer, found_url: threading.Event, deadline: float) -> None:
    found_url.wait(timeout=max(0.0, deadline - time.monotonic()))
    if not server.base_url:
        raise RuntimeError(f"server printed no API URL (exit code {server.process.poll()}):\n{server.output()}")
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with code {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.api_url}/health/", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server did not answer /api/health/ within {START_TIMEOUT_SECONDS}s:\n{server.output()}")


@contextmanager
def start_server(
    *,
    home: Path,
    database_url: str | None = None,
    args: Sequence[str] = (),
    settings: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> Iterator[RunningServer]:
    """Start `orchestrator server start --port 0 ARGS` and yield it once /api/health/ answers.

    Without `database_url` a throwaway database is made for this server and removed after it stops.
    """
    with ExitStack() as stack:
        if database_url is None:
            database_url = stack.enter_context(throwaway_database(home))
        home.mkdir(parents=True, exist_ok=True)
        env = orchestrator_env(home, ORCHESTRATOR_DATABASE_URL=database_url, **(settings or {}))
        process = subprocess.Popen(
            [orchestrator_executable(), "server", "start", "--port", "0", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = RunningServer(process=process, home=home, database_url=database_url, env=env)
        found_url = threading.Event()
        reader = threading.Thread(target=_collect_output, args=(server, found_url), daemon=True)
        reader.start()
        try:
            _wait_until_healthy(server, found_url, time.monotonic() + timeout)
            yield server
        finally:
            if process.poll() is None:
                try:
                    server.stop()
                finally:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
            reader.join(timeout=5)


@pytest.fixture
def orchestrator_server_process(tmp_path: Path) -> Iterator[RunningServer]:
    """A running server with its own home and fresh database, stopped after the test."""
    with start_server(home=tmp_path / "orchestrator-server") as server:
        yield server


@pytest.fixture
def orchestrator_server(orchestrator_server_process: RunningServer) -> str:
    """The base URL (http://127.0.0.1:PORT) of a running server with its own home and fresh database."""
    return orchestrator_server_process.base_url
