"""Why is a run waiting? (docs/waiting.md): `flow_run_waiting` and `task_run_waiting` with real rows, and
`GET /api/flow_runs/{id}/waiting/` and `GET /api/task_runs/{id}/waiting/` (what `deployment run --watch`,
`flow-run inspect` and the run page show)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.concurrency.services import concurrency_limit_create
from apps.deployments.services import deployment_upsert
from apps.orchestration import engine
from apps.runs import services as run_services
from apps.work_pools.models import Worker, WorkQueue
from apps.work_pools.selectors import flow_runs_due
from apps.work_pools.services import (
    work_pool_create,
    work_pool_update,
    work_queue_create,
    work_queue_update,
    worker_heartbeat,
)
from apps.work_pools.waiting import flow_run_waiting, task_run_waiting
from orchestrator.states import AwaitingRetry, Completed, Failed, Paused, Pending, Running, Scheduled
from tests.work_pools.conftest import scheduled_run

pytestmark = pytest.mark.django_db


def codes(answer) -> list[str]:
    return [reason.code for reason in answer.reasons]


def reason(answer, code: str):
    return next(item for item in answer.reasons if item.code == code)


def start(run, kind=engine.FLOW_RUN) -> None:
    for state in (Pending(), Running()):
        result = engine.propose_state(kind=kind, run_id=run.id, state=state)
        assert result.accepted, result.reason
    run.refresh_from_db()


def test_a_due_run_without_a_worker_says_so_and_is_next_in_line(flow, pool):
    """The most common first-hour stall: the run waits for a worker nobody started."""
    answer = flow_run_waiting(run=scheduled_run(flow))
    assert answer.status == "waiting"
    assert codes(answer) == ["no_online_worker", "queue_position"]
    assert reason(answer, "no_online_worker").message == (
        "no online worker for work pool 'local': start one with `orchestrator worker start --pool local`"
    )
    assert reason(answer, "queue_position").details["position"] == 1


def test_an_offline_worker_is_named_with_its_last_heartbeat(flow, pool):
    worker_heartbeat(pool=pool, name="old-worker")
    Worker.objects.filter(pool=pool, name="old-worker").update(last_heartbeat_at=timezone.now() - timedelta(hours=1))
    details = reason(flow_run_waiting(run=scheduled_run(flow)), "no_online_worker").details
    assert [item["name"] for item in details["workers"]] == ["old-worker"]
    assert details["workers"][0]["last_heartbeat_at"]


def test_a_due_run_of_an_idle_celery_pool_is_held_by_nothing(flow):
    """A celery pool's workers heartbeat only while they run runs, and its runs are sent as they fall due: no
    worker to blame and no line to stand in."""
    work_pool_create(name="celery-pool", type="celery")
    answer = flow_run_waiting(run=scheduled_run(flow, pool="celery-pool"))
    assert answer.status == "waiting" and answer.reasons == []


def test_a_future_run_a_paused_pool_and_a_paused_queue_are_each_named(flow, pool):
    worker_heartbeat(pool=pool, name="w1")
    work_pool_update(pool=pool, values={"paused": True})
    work_queue_update(queue=WorkQueue.objects.get(pool=pool, name="default"), values={"paused": True})
    answer = flow_run_waiting(run=scheduled_run(flow, seconds=600))
    assert codes(answer) == ["scheduled_time", "pool_paused", "queue_paused"]
    assert 590 <= answer.reasons[0].details["seconds_from_now"] <= 600
    assert "`orchestrator work-pool resume local`" in answer.reasons[1].message


def test_queue_position_agrees_with_the_order_of_a_workers_poll(flow, pool):
    """Priority first (a paused queue's runs are not in line), then the next start: the order `flow_runs_due`
    hands runs to workers."""
    worker_heartbeat(pool=pool, name="w1")
    work_queue_create(pool=pool, name="urgent", priority=1)
    work_queue_update(queue=WorkQueue.objects.get(pool=pool, name="default"), values={"priority": 5})
    work_queue_create(pool=pool, name="frozen", priority=1)
    work_queue_update(queue=WorkQueue.objects.get(pool=pool, name="frozen"), values={"paused": True})
    runs = [
        scheduled_run(flow, seconds=-50),
        scheduled_run(flow, seconds=-10, work_queue_name="urgent"),
        scheduled_run(flow, seconds=-30),
        scheduled_run(flow, seconds=-40, work_queue_name="urgent"),
        scheduled_run(flow, seconds=-60, work_queue_name="frozen"),
        scheduled_run(flow, seconds=-20, work_queue_name="no-such-queue"),  # the default queue's
    ]
    poll_order = [run.id for run in flow_runs_due(pool=pool, limit=50)]
    assert len(poll_order) == 5
    for run in runs:
        answer = flow_run_waiting(run=run)
        if run.work_queue_name == "frozen":
            assert codes(answer) == ["queue_paused"]
            continue
        assert codes(answer) == ["queue_position"]
        assert answer.reasons[0].details["position"] == poll_order.index(run.id) + 1


def test_a_full_pool_names_its_limit_and_the_runs_holding_it(flow):
    pool = work_pool_create(name="tight", concurrency_limit=1)
    worker_heartbeat(pool=pool, name="w1")
    busy = scheduled_run(flow, pool="tight", name="busy-run")
    start(busy)
    answer = flow_run_waiting(run=scheduled_run(flow, pool="tight"))
    full = reason(answer, "pool_concurrency_full")
    assert full.message == "work pool 'tight' is at its concurrency limit (1 of 1 runs active)"
    assert full.details["holders"] == [{"id": str(busy.id), "name": "busy-run", "state_name": "Running"}]


def test_a_full_queue_and_a_full_deployment_name_their_holders(flow, pool):
    worker_heartbeat(pool=pool, name="w1")
    work_queue_update(queue=WorkQueue.objects.get(pool=pool, name="default"), values={"concurrency_limit": 1})
    deployment, _ = deployment_upsert(
        flow=flow, name="nightly", values={"entrypoint": "f.py:f", "work_pool_name": "local", "concurrency_limit": 1}
    )
    busy = scheduled_run(flow, deployment_id=deployment.id, name="busy-run")
    start(busy)
    answer = flow_run_waiting(run=scheduled_run(flow, deployment_id=deployment.id))
    assert codes(answer)[:2] == ["queue_concurrency_full", "deployment_concurrency_full"]
    for code in ("queue_concurrency_full", "deployment_concurrency_full"):
        assert [holder["id"] for holder in reason(answer, code).details["holders"]] == [str(busy.id)]
    message = reason(answer, "deployment_concurrency_full").message
    assert "deployment 'nightly' is at its concurrency limit (1 of 1" in message


def test_no_pool_a_missing_pool_awaiting_retry_late_paused_and_pending(flow, pool):
    assert codes(flow_run_waiting(run=scheduled_run(flow, pool=None))) == ["no_work_pool"]
    assert codes(flow_run_waiting(run=scheduled_run(flow, pool="ghost"))) == ["pool_missing"]
    worker_heartbeat(pool=pool, name="w1")
    retried = scheduled_run(flow)
    start(retried)
    soon = timezone.now() + timedelta(seconds=120)
    engine.propose_state(kind=engine.FLOW_RUN, run_id=retried.id, state=AwaitingRetry(scheduled_time=soon))
    retried.refresh_from_db()
    assert codes(flow_run_waiting(run=retried))[0] == "awaiting_retry"
    late = scheduled_run(flow, seconds=-100)
    late_state = Scheduled(name="Late", scheduled_time=late.next_scheduled_start_time)
    engine.propose_state(kind=engine.FLOW_RUN, run_id=late.id, state=late_state)
    late.refresh_from_db()
    assert codes(flow_run_waiting(run=late)) == ["late", "queue_position"]
    paused = scheduled_run(flow)
    start(paused)
    engine.propose_state(kind=engine.FLOW_RUN, run_id=paused.id, state=Paused())
    paused.refresh_from_db()
    assert codes(flow_run_waiting(run=paused)) == ["paused_run"]
    pending = scheduled_run(flow)
    engine.propose_state(kind=engine.FLOW_RUN, run_id=pending.id, state=Pending())
    pending.refresh_from_db()
    assert codes(flow_run_waiting(run=pending)) == ["pending_claimed"]


def test_running_and_finished_runs_are_not_waiting(flow, pool):
    run = scheduled_run(flow)
    start(run)
    assert flow_run_waiting(run=run).to_json() == {
        "status": "not_waiting",
        "not_waiting_because": "running",
        "state_type": "RUNNING",
        "state_name": "Running",
        "reasons": [],
    }
    engine.propose_state(kind=engine.FLOW_RUN, run_id=run.id, state=Completed())
    run.refresh_from_db()
    assert flow_run_waiting(run=run).not_waiting_because == "finished"


# ---- task runs ----


def task_run(flow_run, key: str, **kwargs):
    return run_services.task_run_create(flow_run=flow_run, task_key=key, name=key, state=Pending(), **kwargs)[0]


def test_a_full_tag_limit_names_the_task_runs_holding_its_slots(flow, pool):
    concurrency_limit_create(tag="db", limit=2)
    parent = scheduled_run(flow)
    start(parent)
    holders = [task_run(parent, f"holder-{number}", tags=["db"]) for number in range(2)]
    for holder in holders:
        assert engine.propose_state(kind=engine.TASK_RUN, run_id=holder.id, state=Running()).accepted
    waiting = task_run(parent, "waiter", tags=["db", "other"])
    result = engine.propose_state(kind=engine.TASK_RUN, run_id=waiting.id, state=Running())
    assert result.status == "WAIT"
    waiting.refresh_from_db()
    answer = task_run_waiting(run=waiting)
    assert codes(answer) == ["tag_concurrency_full"]
    details = answer.reasons[0].details
    assert details["tag"] == "db" and details["limit"] == 2
    assert sorted(holder["name"] for holder in details["holders"]) == ["holder-0", "holder-1"]
    assert "'holder-0'" in answer.reasons[0].message
    holders[0].refresh_from_db()
    assert task_run_waiting(run=holders[0]).not_waiting_because == "running"


def test_a_task_run_waits_for_unfinished_upstream_runs_and_a_paused_flow_run(flow, pool):
    parent = scheduled_run(flow)
    start(parent)
    upstream = task_run(parent, "extract")
    done = task_run(parent, "done")
    engine.propose_state(kind=engine.TASK_RUN, run_id=done.id, state=Running())
    engine.propose_state(kind=engine.TASK_RUN, run_id=done.id, state=Completed())
    inputs = {
        "x": [{"input_type": "task_run", "id": str(upstream.id)}],
        "y": [{"input_type": "task_run", "id": str(done.id)}],
    }
    downstream = task_run(parent, "transform", task_inputs=inputs)
    answer = task_run_waiting(run=downstream)
    assert codes(answer) == ["upstream_not_finished"]
    assert [row["name"] for row in answer.reasons[0].details["upstream"]] == ["extract"]
    engine.propose_state(kind=engine.FLOW_RUN, run_id=parent.id, state=Paused())
    assert codes(task_run_waiting(run=downstream)) == ["flow_run_paused", "upstream_not_finished"]


def test_a_failed_task_run_awaiting_its_retry(flow, pool):
    parent = scheduled_run(flow)
    start(parent)
    retried = task_run(parent, "flaky", empirical_policy={"retries": 1, "retry_delay": 60})
    engine.propose_state(kind=engine.TASK_RUN, run_id=retried.id, state=Running())
    engine.propose_state(kind=engine.TASK_RUN, run_id=retried.id, state=Failed())
    retried.refresh_from_db()
    assert retried.state_name == "AwaitingRetry"
    assert codes(task_run_waiting(run=retried)) == ["awaiting_retry"]


def test_the_answer_is_a_few_queries_however_many_runs(flow, django_assert_max_num_queries):
    """The run page polls it: a fixed number of queries, whatever the number of holders or runs in line."""
    pool = work_pool_create(name="busy", concurrency_limit=3)
    for _ in range(3):
        start(scheduled_run(flow, pool="busy"))
    for _ in range(10):
        scheduled_run(flow, pool="busy")
    run = scheduled_run(flow, pool="busy")
    with django_assert_max_num_queries(8):
        answer = flow_run_waiting(run=run)
    assert codes(answer) == ["pool_concurrency_full", "no_online_worker", "queue_position"]
    assert reason(answer, "queue_position").details["ahead"] == 10
    assert pool.name == "busy"


# ---- the API ----


def test_the_api_answers_for_flow_and_task_runs(api, flow, pool):
    run = scheduled_run(flow)
    body = api.get(f"/api/flow_runs/{run.id}/waiting/").json()
    assert body["status"] == "waiting" and body["state_name"] == "Scheduled"
    assert [item["code"] for item in body["reasons"]] == ["no_online_worker", "queue_position"]
    assert set(body["reasons"][0]) == {"code", "message", "details"}
    start(run)
    child = task_run(run, "t")
    body = api.get(f"/api/task_runs/{child.id}/waiting/").json()
    assert body == {
        "status": "waiting",
        "not_waiting_because": None,
        "state_type": "PENDING",
        "state_name": "Pending",
        "reasons": [],
    }


@pytest.mark.parametrize("kind", ["flow_runs", "task_runs"])
@pytest.mark.parametrize("bad_id", ["0b7e8f5c-1d7e-4c8a-9d0e-3f1a2b3c4d5e", "not-a-uuid", "0" * 33, "%00"])
def test_unknown_or_malformed_ids_are_a_json_404(api, kind, bad_id):
    """As every other run route: an id that names nothing is a JSON 404, never HTML or a 500."""
    response = api.get(f"/api/{kind}/{bad_id}/waiting/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("kind", ["flow_runs", "task_runs"])
def test_no_key_is_a_401_and_a_read_key_is_enough(key_client, flow, pool, kind):
    run = scheduled_run(flow)
    target = run if kind == "flow_runs" else task_run(run, "t")
    assert APIClient().get(f"/api/{kind}/{target.id}/waiting/").status_code == 401
    assert key_client("read").get(f"/api/{kind}/{target.id}/waiting/").status_code == 200
