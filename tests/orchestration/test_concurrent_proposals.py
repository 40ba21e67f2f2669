"""Concurrent proposals, each thread on its own database connection, on whichever database the suite runs on.

The engine serialises proposals on one run (row lock on PostgreSQL, BEGIN IMMEDIATE on SQLite); these tests
release many threads at once through a barrier and check that no change is lost, doubled or refused with
an error such as "database is locked".
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections

from apps.concurrency.services import concurrency_limit_create
from apps.events.models import Event
from apps.orchestration import engine
from orchestrator.states import Completed, Failed, Pending, Running, Scheduled, utcnow
from tests.concurrency.support import slots_of
from tests.orchestration.helpers import flow_run_in, history_names, task_run_in

pytestmark = pytest.mark.django_db(transaction=True)


def run_in_threads(count: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run `work(i)` in `count` threads released together; each thread opens and closes its own connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            connection.ensure_connection()  # connect first, so the race is on the proposals themselves
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results, errors


def test_twenty_simultaneous_claims_give_exactly_one_claim(flow):
    """Twenty workers claiming one run at once: one wins, nineteen are told to stop, none sees an error."""
    run = flow_run_in(flow, [lambda: Scheduled(scheduled_time=utcnow() - timedelta(seconds=1))])

    results, errors = run_in_threads(
        20, lambda _: engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=Pending())
    )

    assert errors == []
    assert Counter(result.status.value for result in results) == {"ACCEPT": 1, "ABORT": 19}
    assert history_names(run) == ["Scheduled", "Pending"]
    assert Event.objects.filter(resource_id=run.id).count() == 2


def test_racing_final_states_store_exactly_one(flow):
    """Two reporters racing to end one run (Completed vs Failed) leave one final state, never two."""
    run = flow_run_in(flow, "Running")
    proposals = [Completed, Failed] * 6

    results, errors = run_in_threads(
        len(proposals),
        lambda index: engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=proposals[index]()),
    )

    assert errors == []
    statuses = Counter(result.status.value for result in results)
    assert statuses == {"ACCEPT": 1, "REJECT": len(proposals) - 1}
    names = history_names(run)
    assert names[:2] == ["Pending", "Running"] and len(names) == 3
    run.refresh_from_db()
    assert run.state_name == names[-1]


def test_sixteen_runs_driven_at_once_all_complete_with_exact_histories(flow):
    """Independent runs must not interfere: sixteen threads each drive their own run to Completed."""
    runs = [flow_run_in(flow, "Pending") for _ in range(16)]

    def drive(index: int) -> list[str]:
        run_id = runs[index].id
        return [
            engine.propose_state(kind=engine.FLOW_RUN, run_id=run_id, state=state).status.value
            for state in (Running(), Completed())
        ]

    results, errors = run_in_threads(len(runs), drive)

    assert errors == []
    assert results == [["ACCEPT", "ACCEPT"]] * len(runs)
    for run in runs:
        run.refresh_from_db()
        assert (run.state_name, run.run_count) == ("Completed", 1)
        assert history_names(run) == ["Pending", "Running", "Completed"]
        assert Event.objects.filter(resource_id=run.id).count() == 3


def test_a_concurrency_limit_holds_under_a_rush(flow):
    """Ten task runs starting at once under a limit of three: exactly three run, seven wait, no slot leaks."""
    concurrency_limit_create(tag="db", limit=3)
    task_runs = [task_run_in(None, "Pending", task_key=f"rush-{i}", tags=["db"]) for i in range(10)]

    results, errors = run_in_threads(
        len(task_runs),
        lambda index: engine.propose_state(kind=engine.TASK_RUN, run_id=task_runs[index].id, state=Running()),
    )

    assert errors == []
    assert Counter(result.status.value for result in results) == {"ACCEPT": 3, "WAIT": 7}
    winners = {str(run.id) for run, result in zip(task_runs, results, strict=True) if result.accepted}
    assert set(slots_of("db")) == winners
