"""`GET /api/flow_runs/{id}/waiting/`: why a run has not started, in sentences a user can act on (what
`deployment run --watch` prints while it waits)."""

from __future__ import annotations

import uuid

import pytest

from apps.orchestration import engine
from apps.work_pools.models import WorkQueue
from apps.work_pools.services import work_pool_create, work_pool_update, work_queue_update, worker_heartbeat
from orchestrator.states import Pending, Running
from tests.work_pools.conftest import scheduled_run

pytestmark = pytest.mark.django_db


def reasons(api, run) -> list[str]:
    response = api.get(f"/api/flow_runs/{run.id}/waiting/")
    assert response.status_code == 200, response.content
    return response.json()["reasons"]


def test_a_due_run_of_a_pool_without_a_worker_says_so_with_the_command(api, flow, pool):
    """The most common first-hour stall: the run waits for a worker nobody started."""
    run = scheduled_run(flow)
    assert reasons(api, run) == [
        "no online worker for work pool 'local': start one with `orchestrator worker start --pool local`"
    ]


def test_nothing_holds_a_due_run_whose_pool_has_an_online_worker(api, flow, pool):
    worker_heartbeat(pool=pool, name="w1")
    assert reasons(api, scheduled_run(flow)) == []


def test_a_future_run_a_paused_pool_and_a_paused_queue_are_each_named(api, flow, pool):
    worker_heartbeat(pool=pool, name="w1")
    work_pool_update(pool=pool, values={"paused": True})
    work_queue_update(queue=WorkQueue.objects.get(pool=pool, name="default"), values={"paused": True})
    found = reasons(api, scheduled_run(flow, seconds=600))
    assert len(found) == 3
    assert found[0].startswith("it is scheduled for ")
    assert "work pool 'local' is paused: `orchestrator work-pool resume local`" in found[1]
    assert "work queue 'default' of pool 'local' is paused" in found[2]


def test_a_full_pool_names_its_limit(api, flow):
    pool = work_pool_create(name="tight", concurrency_limit=1)
    worker_heartbeat(pool=pool, name="w1")
    busy = scheduled_run(flow, pool="tight")
    for state in (Pending(), Running()):
        engine.propose_state(kind=engine.FLOW_RUN, run_id=busy.id, state=state)
    assert reasons(api, scheduled_run(flow, pool="tight")) == [
        "work pool 'tight' is at its concurrency limit (1 of 1 runs active)"
    ]


def test_a_pool_that_does_not_exist_or_no_pool_at_all(api, flow):
    assert "does not exist" in reasons(api, scheduled_run(flow, pool="ghost"))[0]
    assert "no work pool" in reasons(api, scheduled_run(flow, pool=None))[0]


def test_a_running_run_is_not_waiting_and_an_unknown_run_is_404(api, flow, pool):
    run = scheduled_run(flow)
    for state in (Pending(), Running()):
        engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=state)
    body = api.get(f"/api/flow_runs/{run.id}/waiting/").json()
    assert body == {"state_name": "Running", "waiting": False, "reasons": []}
    assert api.get(f"/api/flow_runs/{uuid.uuid4()}/waiting/").status_code == 404
