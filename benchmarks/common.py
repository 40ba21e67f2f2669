"""Shared helpers for the benchmarks: start a real `orchestrator server start` on SQLite or PostgreSQL,
and summarise latencies. Benchmarks print figures; they are not tests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


@dataclass
class Server:
    process: subprocess.Popen
    api_url: str
    env: dict[str, str]

    @property
    def api_key(self) -> str:
        """The admin key the server saved in its home's profile at its first start (the API requires keys)."""
        return profile_api_key(Path(self.env["ORCHESTRATOR_HOME"]))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def rss_megabytes(self) -> float:
        """Resident memory of the server's processes (the supervisor and its Daphne workers)."""
        pids = [self.process.pid, *_children(self.process.pid)]
        total_kb = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        return total_kb / 1024


def profile_api_key(home: Path) -> str:
    data = tomllib.loads((home / "profiles.toml").read_text())
    return str(data["profiles"][data["active"]]["ORCHESTRATOR_API_KEY"])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found.append(int(entry.name))
                found.extend(_children(int(entry.name)))
    return found


@contextlib.contextmanager
def database(kind: str) -> Iterator[tuple[Path, str]]:
    """A temporary ORCHESTRATOR_HOME and an empty database of `kind` ("sqlite" or "postgresql")."""
    home = Path(tempfile.mkdtemp(prefix=f"orch-bench-{kind}-"))
    name = f"orch_bench_{uuid.uuid4().hex[:12]}"
    try:
        if kind == "sqlite":
            yield home, f"sqlite:///{home / 'orchestrator.db'}"
        else:
            import psycopg

            with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            yield home, f"{PG_URL}/{name}"
    finally:
        if kind != "sqlite":
            import psycopg

            with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(home, ignore_errors=True)


def environment(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORCHESTRATOR_")}
    env.update(ORCHESTRATOR_HOME=str(home), ORCHESTRATOR_DATABASE_URL=database_url, **extra)
    return env


@contextlib.contextmanager
def server(home: Path, database_url: str, *args: str, **settings: str) -> Iterator[Server]:
    env = environment(home, database_url, **settings)
    process = subprocess.Popen(
        [ORCHESTRATOR, "server", "start", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    api_url = None
    try:
        deadline = time.monotonic() + 90
        for line in process.stdout:
            match = re.search(r"ORCHESTRATOR_API_URL=(http://\S+/api)", line)
            if match:
                api_url = match.group(1)
                break
            if time.monotonic() > deadline:
                break
        if api_url is None:
            raise RuntimeError("the server did not start")
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{api_url}/health/").status_code == 200:
                    break
            time.sleep(0.05)
        # Keep draining output so the server never blocks on a full pipe.
        import threading

        threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
        yield Server(process, api_url, env)
    finally:
        process.send_signal(2)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def percentiles(samples_seconds: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 in milliseconds."""
    if not samples_seconds:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    ordered = sorted(samples_seconds)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99

    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


@dataclass
class Reply:
    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


_json_dumps = json.dumps


class LoadClient:
    """A keep-alive HTTP/1.1 client for load generation, on the standard library's http.client.

    The load generator shares this machine's two cores with the server, so its own cost is part of every figure:
    httpx spends about 0.8 ms of CPU per request, http.client about 0.2 ms. The SDK keeps httpx (retries,
    timeouts, pooling); the benchmarks measure the server, as wrk or hey would."""

    def __init__(self, api_url: str, api_key: str, timeout: float = 30.0) -> None:
        parts = urlsplit(api_url)
        self.authorization = {"Authorization": f"Bearer {api_key}"}
        self.prefix = parts.path.rstrip("/") + "/"
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def request(self, method: str, path: str, *, json: dict | None = None, params: dict | None = None) -> Reply:
        url = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        body = None if json is None else _json_dumps(json).encode()
        headers = {"Content-Type": "application/json", **self.authorization} if body is not None else self.authorization
        try:
            self.connection.request(method, url, body=body, headers=headers)
            response = self.connection.getresponse()
            return Reply(response.status, response.read())
        except (OSError, http.client.HTTPException):
            self.connection.close()  # reconnects on the next request
            raise

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
