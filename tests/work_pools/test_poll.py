"""A worker's poll (`POST /api/work_pools/{name}/get_scheduled_flow_runs/`, selector `flow_runs_due`): which due
runs it returns, in which order, and how many, under pause, priorities and concurrency limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.runs.models import FlowRun
from apps.work_pools.services import work_pool_update, work_queue_create, work_queue_update
from orchestrator.states import AwaitingRetry, Crashed, Failed, Late, Pending, Running
from tests.orchestration.helpers import propose, walk
from tests.work_pools.conftest import scheduled_run

pytestmark = pytest.mark.django_db

POLL = "/api/work_pools/local/get_scheduled_flow_runs/"


def poll(api, **body) -> list[str]:
    response = api.post(POLL, body, format="json")
    assert response.status_code == 200, response.content
    return [run["id"] for run in response.json()]


def ids(*runs) -> list[str]:
    return [str(run.id) for run in runs]


def test_runs_come_by_queue_priority_then_start_time(api, flow, pool):
    """Urgent work (priority 1) goes first even when it was scheduled later."""
    work_queue_update(queue=pool.queues.get(name="default"), values={"priority": 2})
    work_queue_create(pool=pool, name="urgent", priority=1)
    work_queue_create(pool=pool, name="bulk", priority=3)
    bulk = scheduled_run(flow, seconds=-30, work_queue_name="bulk")
    plain_old = scheduled_run(flow, seconds=-20)
    plain_new = scheduled_run(flow, seconds=-10)
    urgent = scheduled_run(flow, seconds=-1, work_queue_name="urgent")

    assert poll(api) == ids(urgent, plain_old, plain_new, bulk)
    assert poll(api, limit=2) == ids(urgent, plain_old)


def test_late_and_retrying_runs_are_due_but_not_claimed_or_future_ones(api, flow, pool):
    """Late runs are Scheduled-type and still waiting; a retry is due at its retry time, not its first start."""
    late = scheduled_run(flow, seconds=-60)
    assert propose(late, Late(scheduled_time=late.expected_start_time)).accepted
    retry_later = walk(scheduled_run(flow, seconds=-50), Pending(), Running())
    assert propose(retry_later, _retry_in(3600)).accepted
    claimed = walk(scheduled_run(flow, seconds=-40), Pending())
    assert claimed.state_type == "PENDING"

    assert poll(api) == ids(late)


def test_a_flow_run_its_own_process_retries_is_left_to_it(api, flow, pool, settings):
    """A failed flow run's process sleeps and runs the retry itself: another worker taking it would run it
    twice. Once that process is a heartbeat timeout late, it is presumed dead and the retry is anyone's."""
    settings.ORCHESTRATOR_WORKER_HEARTBEAT_TIMEOUT_SECONDS = 30
    retried = walk(scheduled_run(flow, seconds=-50, empirical_policy={"retries": 2}), Pending(), Running())
    answer = propose(retried, Failed(message="boom"))
    assert answer.state.name == "AwaitingRetry" and answer.state.state_details["retried_by_its_process"]
    crashed = walk(scheduled_run(flow, seconds=-40, empirical_policy={"retries": 2}), Pending(), Running())
    assert propose(crashed, Crashed(message="worker died")).state.name == "AwaitingRetry"
    later = timezone.now() + timedelta(seconds=5)

    assert poll(api, scheduled_before=later.isoformat()) == ids(crashed)
    FlowRun.objects.filter(pk=retried.pk).update(next_scheduled_start_time=timezone.now() - timedelta(seconds=31))
    assert set(poll(api, scheduled_before=later.isoformat())) == set(ids(crashed, retried))


def _retry_in(seconds: float):
    from datetime import timedelta

    from django.utils import timezone

    return AwaitingRetry(scheduled_time=timezone.now() + timedelta(seconds=seconds))


def test_a_paused_pool_gives_nothing_and_a_paused_queue_none_of_its_runs(api, flow, pool):
    """Pausing is how an operator stops work being picked up without deleting anything."""
    work_queue_create(pool=pool, name="other", paused=True)
    mine = scheduled_run(flow)
    scheduled_run(flow, work_queue_name="other")

    assert poll(api) == ids(mine)
    work_pool_update(pool=pool, values={"paused": True})
    assert poll(api) == []


def test_runs_naming_no_queue_or_an_unknown_one_belong_to_the_default_queue(api, flow, pool):
    """A deployment may name a queue that was never created; its runs must still be picked up."""
    work_queue_create(pool=pool, name="other")
    no_queue = scheduled_run(flow, seconds=-3)
    unknown = scheduled_run(flow, seconds=-2, work_queue_name="typo")
    other = scheduled_run(flow, seconds=-1, work_queue_name="other")

    assert poll(api, work_queue_names=["default"]) == ids(no_queue, unknown)
    assert poll(api, work_queue_names=["other"]) == ids(other)
    assert poll(api) == ids(no_queue, unknown, other)


def test_a_queue_name_the_pool_does_not_have_is_a_404_naming_the_field(api, pool):
    """A worker started with a misspelt --queue must be told, not left idle."""
    response = api.post(POLL, {"work_queue_names": ["nope"]}, format="json")

    assert response.status_code == 404
    assert response.json()["fields"] == {"work_queue_names": ["no work queue named 'nope' in work pool 'local'"]}


@pytest.mark.parametrize(
    ("pool_limit", "default_limit", "other_limit", "active", "expected"),
    [
        # (free slots) at most the pool's limit minus its active runs ...
        (3, None, None, [], ["d1", "d2", "d3"]),
        (3, None, None, [("other", "Running")], ["d1", "d2"]),
        (1, None, None, [("other", "Pending")], []),
        # ... and at most each queue's, the other queues still filling the rest.
        (None, 1, None, [], ["d1", "o1", "o2"]),
        (None, 2, 1, [("default", "Running")], ["d1", "o1"]),
        (None, 1, None, [("default", "Running")], ["o1", "o2", "o3"]),
        (3, 1, None, [("other", "Running")], ["d1", "o1"]),
    ],
)
def test_the_poll_returns_at_most_the_free_slots(
    api, flow, pool, pool_limit, default_limit, other_limit, active, expected
):
    """Returning more than can be claimed would only make workers' claims wait."""
    work_pool_update(pool=pool, values={"concurrency_limit": pool_limit})
    work_queue_update(queue=pool.queues.get(name="default"), values={"concurrency_limit": default_limit})
    work_queue_create(pool=pool, name="other", priority=2, concurrency_limit=other_limit)
    for queue, state in active:
        road = [Pending()] if state == "Pending" else [Pending(), Running()]
        walk(scheduled_run(flow, work_queue_name=queue, seconds=-100), *road)
    named = {}
    for index in range(3):
        named[f"d{index + 1}"] = scheduled_run(flow, seconds=-30 + index)
        named[f"o{index + 1}"] = scheduled_run(flow, seconds=-20 + index, work_queue_name="other")

    assert poll(api, limit=3) == ids(*(named[name] for name in expected))


def test_the_poll_costs_a_handful_of_queries_however_many_runs_wait(api, flow, pool):
    """Every worker polls every second: the cost must not grow with the number of waiting runs."""
    for _ in range(30):
        scheduled_run(flow)
    api.post(POLL, {"worker_name": "w1"}, format="json")  # the worker's row exists from now on

    with CaptureQueriesContext(connection) as queries:
        assert len(poll(api, worker_name="w1", limit=10)) == 10

    # pool, heartbeat UPDATE, queues, due runs (with their flow): no per-run query.
    assert len(queries) <= 5, [query["sql"] for query in queries]
