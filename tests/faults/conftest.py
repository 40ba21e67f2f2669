"""What the fault tests share (docs/faults.md): throwaway PostgreSQL and Redis servers of their own (the shared ones
on 5432 and 6379 serve other test runs and must never be stopped), a SIGKILL of a whole process tree, writers that
keep a ledger of what the server acknowledged, and a small tmpfs to fill.

These tests are marked `chaos`: `make test` leaves them out (pyproject's addopts), `make chaos` runs them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> float:
    """Poll `condition` until it holds; returns the seconds it took (AssertionError with `message` on timeout)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(message)
        time.sleep(0.05)
    return time.monotonic() - started


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (read from /proc: the server's children run in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def kill_tree(pid: int) -> int:
    """SIGKILL `pid` and all its descendants at once (what a power cut does to them); returns how many."""
    pids = descendants(pid)
    for each in pids:
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


class OwnPostgres:
    """A PostgreSQL 15 cluster of this test alone, in a temporary directory owned by the postgres user."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="orch-faults-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        shutil.chown(self.directory, "postgres", "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _as_postgres(self, *command: str) -> None:
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout}\n{result.stderr}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "postgres.log")
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """An immediate stop: every connection is cut, as when the database host goes away."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def create_database(self) -> str:
        import psycopg
        from psycopg import sql

        name = f"orch_faults_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop()
        except AssertionError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)


class OwnRedis:
    """A redis-server of this test alone (no persistence: a restart loses everything it held, as a crash does)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(answers, 10, f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists():
        pytest.skip("needs root (to run initdb as postgres) and PostgreSQL 15 binaries")
    postgres = OwnPostgres()
    try:
        yield postgres
    finally:
        postgres.destroy()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    redis = OwnRedis()
    try:
        yield redis
    finally:
        redis.kill()


@dataclass
class Ledger:
    """What the writers sent and what the server acknowledged (2xx) or answered otherwise, by status."""

    created: list[str] = field(default_factory=list)  # ids of runs whose creation was acknowledged
    attempted_counter: dict[str, int] = field(default_factory=dict)  # run id -> last counter sent
    acknowledged_counter: dict[str, int] = field(default_factory=dict)  # run id -> last counter acknowledged
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> count (0: no answer)
    # (monotonic time the request was sent, status, body) of each 5xx answer
    errors: list[tuple[float, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def acknowledged(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


class Writers:
    """`count` threads, each writing without retries: creating flow runs and updating one run's parameters with
    a counter that only grows. Every answer is counted; only 2xx answers enter the ledger as acknowledged."""

    def __init__(self, api_url: str, headers: dict[str, str], flow_id: str, count: int) -> None:
        self.api_url = api_url
        self.headers = headers
        self.flow_id = flow_id
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._write, daemon=True) for _ in range(count)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _request(self, http: httpx.Client, method: str, path: str, body: dict[str, Any]) -> httpx.Response | None:
        sent_at = time.monotonic()
        try:
            response = http.request(method, path, json=body)
        except httpx.TransportError:
            self.ledger.count(0)
            time.sleep(0.05)
            return None
        self.ledger.count(response.status_code)
        if response.status_code >= 500:
            with self.ledger.lock:
                self.ledger.errors.append((sent_at, response.status_code, response.text[:300]))
        if response.status_code >= 300:
            time.sleep(0.05)
        return response

    def _write(self) -> None:
        with httpx.Client(base_url=self.api_url + "/", headers=self.headers, timeout=10) as http:
            mine: str | None = None
            counter = 0
            while not self.stopping.is_set():
                body = {"flow": self.flow_id, "idempotency_key": uuid.uuid4().hex, "parameters": {"counter": 0}}
                response = self._request(http, "POST", "flow_runs/", body)
                if response is not None and response.status_code in (200, 201):
                    with self.ledger.lock:
                        self.ledger.created.append(response.json()["id"])
                    mine = mine or response.json()["id"]
                if mine is None:
                    continue
                counter += 1
                with self.ledger.lock:
                    self.ledger.attempted_counter[mine] = counter
                response = self._request(http, "PATCH", f"flow_runs/{mine}/", {"parameters": {"counter": counter}})
                if response is not None and response.status_code == 200:
                    with self.ledger.lock:
                        self.ledger.acknowledged_counter[mine] = counter

    def verify(self, api: httpx.Client) -> tuple[int, int]:
        """Every acknowledged creation is there, and every updated run holds its last acknowledged counter (or a
        later one whose answer was lost). Returns (acknowledged creations, found)."""
        found = 0
        for run_id in self.ledger.created:
            response = api.get(f"flow_runs/{run_id}/")
            assert response.status_code == 200, f"acknowledged run {run_id} is missing: {response.text}"
            found += 1
        for run_id, acknowledged in self.ledger.acknowledged_counter.items():
            counter = api.get(f"flow_runs/{run_id}/").json()["parameters"]["counter"]
            attempted = self.ledger.attempted_counter[run_id]
            assert acknowledged <= counter <= attempted, (run_id, acknowledged, counter, attempted)
        return len(self.ledger.created), found


def figures(name: str, **values: Any) -> None:
    """Print a fault's figures on one line (run pytest with -s, as `make chaos` does, to see them)."""
    print(f"\nFAULT {name}: " + ", ".join(f"{key}={value}" for key, value in values.items()), flush=True)
