"""The server's database connections: reused between requests, and replaced without an error when PostgreSQL
closed them in between (a restart, an administrator), without a health-check round trip per request."""

from __future__ import annotations

import concurrent.futures
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.server import RunningServer, suite_database_url

pytestmark = pytest.mark.skipif(
    not (suite_database_url() or "").startswith("postgres"), reason="PostgreSQL connections (the suite runs on SQLite)"
)


def _terminate_server_connections(server: RunningServer) -> int:
    import psycopg

    database = urlsplit(server.database_url).path.lstrip("/")
    maintenance = urlsplit(server.database_url)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        ).fetchall()
    return len(rows)


@pytest.mark.e2e
def test_requests_after_postgresql_closed_the_connections_all_succeed(orchestrator_server_process: RunningServer):
    """Every one of the server's threads holds a connection that PostgreSQL has closed: none may answer 500."""
    api = orchestrator_server_process.api_url

    def list_flows(_: int) -> int:
        with httpx.Client(timeout=30, headers=orchestrator_server_process.headers) as client:
            return client.get(f"{api}/flows/").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(list_flows, range(40))) == {200}  # every thread has its connection now
    assert _terminate_server_connections(orchestrator_server_process) >= 1
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(list_flows, range(40))) == [200] * 40
    created = httpx.post(
        f"{api}/flows/", json={"name": "after-the-cut"}, timeout=30, headers=orchestrator_server_process.headers
    )
    assert created.status_code == 201, created.text
