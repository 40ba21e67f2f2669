"""PostgreSQL restarted under load: the server recovers by itself, requests during the outage fail with a clear 503
JSON error (never a 500), and none fail after it (docs/faults.md). PostgreSQL is a throwaway cluster of this test:
the shared one on 5432 serves other test runs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import OwnPostgres, Writers, descendants, figures, wait_until
from tests.support.server import sqlite_pass_only, start_server

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, sqlite_pass_only]

CLIENTS = 16
OUTAGE_SECONDS = 3.0


def service_runs(database_url: str, *, since: datetime) -> int:
    """Successful runs of the server services (apps/server_services) started since `since`."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        query = "SELECT count(*) FROM services_servicerun WHERE started_at > %s AND error IS NULL"
        row = connection.execute(query, (since,)).fetchone()
    return int(row[0]) if row else 0


def database_value(database_url: str, query: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class Phases:
    """Counts the writers' answers per phase of the fault: before, outage, after."""

    def __init__(self, writers: Writers) -> None:
        self.writers = writers
        self.marks: dict[str, dict[int, int]] = {}

    def mark(self, phase: str) -> None:
        with self.writers.ledger.lock:
            self.marks[phase] = dict(self.writers.ledger.statuses)

    def between(self, start: str, end: str) -> dict[int, int]:
        first, last = self.marks[start], self.marks[end]
        return {status: n - first.get(status, 0) for status, n in last.items() if n - first.get(status, 0)}


def test_a_postgresql_restart_under_load_gives_503s_then_recovers_by_itself(
    tmp_path: Path, own_postgres: OwnPostgres
) -> None:
    """The database host reboots: clients must see a retryable 503 that says so, and the server must not need a
    restart of its own (Daphne workers, the services and the event runner reconnect)."""
    database_url = own_postgres.create_database()
    with start_server(home=tmp_path / "server", database_url=database_url, args=["--workers", "2"]) as server:
        api = server.api_client(timeout=10)
        flow_id = api.post("flows/", json={"name": "writes"}).json()["id"]
        processes_before = sorted(descendants(server.process.pid))
        with Writers(server.api_url, server.headers, flow_id, CLIENTS) as writers:
            phases = Phases(writers)
            wait_until(lambda: writers.ledger.acknowledged >= 100, 30, "the writers got no answers")
            phases.mark("before")
            own_postgres.stop()
            phases.mark("outage")
            outage_answer: dict = {}

            def probe() -> None:  # one request of our own, to read the outage's error body
                while not outage_answer:
                    try:
                        response = api.get("flow_runs/", params={"limit": 1})
                    except httpx.TransportError:
                        continue
                    if response.status_code == 503:
                        outage_answer.update(response.json(), retry_after=response.headers.get("Retry-After"))
                        # A page outside DRF (the admin loads the session from the database): the middleware's 503.
                        page = httpx.get(f"{server.base_url}/admin/", cookies={"sessionid": "a" * 32}, timeout=10)
                        outage_answer["page"] = (page.status_code, page.headers.get("content-type"), page.text[:200])
                    time.sleep(0.1)

            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            time.sleep(OUTAGE_SECONDS)
            prober.join(timeout=10)
            own_postgres.start()
            phases.mark("restarted")
            acknowledged = writers.ledger.acknowledged
            recovery = wait_until(
                lambda: writers.ledger.acknowledged > acknowledged + CLIENTS, 30, "the server did not recover"
            )
            # Let each Daphne worker meet the restarted database before counting "after": the first request of
            # a worker that held a pooled connection may still be the one that discovers it is dead.
            phases.mark("recovered")
            recovered_at = time.monotonic()
            recovered_wall = datetime.now(UTC)
            time.sleep(3.0)
            phases.mark("after")
        during = phases.between("outage", "restarted")
        # A request sent during the outage may be answered (503) after the recovery; one sent after may not fail.
        failed_after = [error for error in writers.ledger.errors if error[0] > recovered_at]
        after = phases.between("recovered", "after")
        everything = writers.ledger.statuses
        assert outage_answer.get("error") == "database_unavailable", outage_answer
        assert outage_answer["message"].startswith("the database is unavailable: "), outage_answer
        assert outage_answer["message"].endswith("; retry"), outage_answer
        assert outage_answer["retry_after"] == "1", outage_answer
        assert outage_answer["page"][:2] == (503, "application/json"), outage_answer["page"]
        assert "the database is unavailable: " in outage_answer["page"][2], outage_answer["page"]
        assert during.get(503, 0) > 0, during
        assert not any(status >= 500 and status != 503 for status in everything), everything
        assert not failed_after, failed_after[:3]
        assert after.get(200, 0) + after.get(201, 0) > 0, after
        processes_after = sorted(descendants(server.process.pid))
        assert processes_after == processes_before, "a server process was restarted"
        assert api.get("health/").status_code == 200
        # The services (threads of a long-lived process) met the outage too, and run again by themselves.
        services_back = wait_until(
            lambda: service_runs(database_url, since=recovered_wall) > 0, 30, "no service ran after the recovery"
        )
        # The event runner (a thread of each server process) goes on too: a consumer's cursor passes the events the
        # writes made after the recovery.
        newest = database_value(database_url, "SELECT max(id) FROM events_event")
        runner_back = wait_until(
            lambda: database_value(database_url, "SELECT max(event_id) FROM events_consumercursor") >= newest,
            30,
            "the event runner did not resume after the outage",
        )
        # Their failures during the outage could not be recorded in the database: the log has them.
        failed_services = server.output().count("apps.server_services.services: service ")
        api.close()
    figures(
        "postgresql restart",
        outage_seconds=OUTAGE_SECONDS,
        outage_503=during.get(503, 0),
        outage_answers=dict(sorted(during.items())),
        count_500=sum(n for status, n in everything.items() if status >= 500 and status != 503),
        recovery_seconds=f"{recovery:.2f}",
        failed_after_recovery=len(failed_after),
        service_failures_logged=failed_services,
        services_ok_again_seconds=f"{services_back:.1f}",
        event_runner_caught_up_seconds=f"{runner_back:.1f}",
        after_answers=dict(sorted(after.items())),
        message=outage_answer["message"],
    )
