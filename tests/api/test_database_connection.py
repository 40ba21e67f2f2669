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


def _allow_connections(server: RunningServer, allowed: bool) -> None:
    import psycopg
    from psycopg import sql

    database = urlsplit(server.database_url).path.lstrip("/")
    maintenance = urlsplit(server.database_url)._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        statement = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(database), sql.SQL("true" if allowed else "false")
        )
        connection.execute(statement)


@pytest.mark.e2e
def test_a_database_that_refuses_connections_is_a_503_json_error_then_the_server_recovers(
    orchestrator_server_process: RunningServer,
):
    """A database outage is the client's cue to retry (503, Retry-After), never a 500; docs/faults.md has the real
    restart (make chaos)."""
    server = orchestrator_server_process
    with httpx.Client(base_url=server.api_url + "/", timeout=30, headers=server.headers) as client:
        assert client.get("flows/").status_code == 200
        _allow_connections(server, False)
        try:
            _terminate_server_connections(server)
            answer = client.get("flows/")
            page = httpx.get(f"{server.base_url}/admin/", cookies={"sessionid": "a" * 32}, timeout=30)
        finally:
            _allow_connections(server, True)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        body = answer.json()
        assert body["error"] == "database_unavailable", body
        assert body["message"].startswith("the database is unavailable: ") and body["message"].endswith("; retry")
        assert "not currently accepting connections" in body["message"], body
        assert "127.0.0.1" not in body["message"]  # the cause, not where the database lives
        assert page.status_code == 503 and page.json()["error"] == "database_unavailable", page.text  # not DRF
        assert client.get("flows/").status_code == 200
