"""The work pool API: pools by name, their queues and workers, the worker's poll and heartbeat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.work_pools.models import Worker, WorkPool, WorkQueue
from orchestrator.states import Cancelling, Pending, Running
from tests.orchestration.helpers import walk
from tests.work_pools.conftest import scheduled_run

pytestmark = pytest.mark.django_db


def test_creating_a_pool_gives_it_a_default_queue(api):
    """Runs that name no queue must have somewhere to go from the first moment."""
    response = api.post("/api/work_pools/", {"name": "local", "type": "process", "concurrency_limit": 3}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["type"], body["concurrency_limit"], body["paused"]) == ("local", "process", 3, False)
    assert body["worker_command"] == "orchestrator worker start --pool local"
    queues = api.get("/api/work_pools/local/queues/").json()["results"]
    assert [(q["name"], q["priority"]) for q in queues] == [("default", 1)]


def test_a_pool_name_is_unique(api, pool):
    """A second pool with the same name would make `--pool NAME` ambiguous: 409 naming the field."""
    response = api.post("/api/work_pools/", {"name": "local"}, format="json")

    assert response.status_code == 409
    assert response.json()["fields"] == {"name": ["a work pool named 'local' already exists"]}
    assert WorkPool.objects.count() == 1


def test_pools_are_read_changed_and_deleted_by_name(api, pool):
    """Pools are addressed by the name users type, not by id."""
    assert api.get("/api/work_pools/local/").json()["id"] == str(pool.id)
    changed = api.patch("/api/work_pools/local/", {"paused": True, "concurrency_limit": None}, format="json")
    assert changed.status_code == 200 and changed.json()["paused"] is True
    names = [row["name"] for row in api.get("/api/work_pools/").json()["results"]]
    assert names == ["local"]

    assert api.delete("/api/work_pools/local/").status_code == 204
    assert not WorkQueue.objects.exists()
    missing = api.get("/api/work_pools/local/")
    assert missing.status_code == 404 and "no work pool named 'local'" in missing.json()["message"]


def test_queues_are_created_changed_and_deleted_but_not_the_default(api, pool):
    """The default queue catches every run no other queue takes: deleting it would strand runs."""
    created = api.post("/api/work_pools/local/queues/", {"name": "high", "priority": 1}, format="json")
    assert created.status_code == 201, created.content
    api.patch("/api/work_pools/local/queues/default/", {"priority": 5}, format="json")
    queues = api.get("/api/work_pools/local/queues/").json()["results"]
    assert [(q["name"], q["priority"]) for q in queues] == [("high", 1), ("default", 5)]

    assert api.post("/api/work_pools/local/queues/", {"name": "high"}, format="json").status_code == 409
    refused = api.delete("/api/work_pools/local/queues/default/")
    assert refused.status_code == 409 and "cannot be deleted" in refused.json()["message"]
    assert api.delete("/api/work_pools/local/queues/high/").status_code == 204
    assert api.get("/api/work_pools/local/queues/high/").status_code == 404


def test_unknown_pools_and_queues_are_404_everywhere(api, pool):
    """A worker pointed at a pool that does not exist must hear so, not receive an empty list forever."""
    for method, path in [
        ("get", "/api/work_pools/nope/"),
        ("patch", "/api/work_pools/nope/"),
        ("delete", "/api/work_pools/nope/"),
        ("get", "/api/work_pools/nope/queues/"),
        ("post", "/api/work_pools/nope/queues/"),
        ("get", "/api/work_pools/nope/workers/"),
        ("post", "/api/work_pools/nope/get_scheduled_flow_runs/"),
        ("post", "/api/work_pools/nope/workers/heartbeat/"),
        ("get", "/api/work_pools/local/queues/nope/"),
        ("patch", "/api/work_pools/local/queues/nope/"),
        ("delete", "/api/work_pools/local/queues/nope/"),
    ]:
        response = getattr(api, method)(path, {"name": "w"} if method == "post" else None, format="json")
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error"] == "not_found"


def test_the_poll_returns_due_runs_and_records_the_worker(api, flow, pool):
    """The poll is how a worker finds work and how the server knows the worker is alive."""
    due = scheduled_run(flow)
    scheduled_run(flow, seconds=3600)  # not due yet
    scheduled_run(flow, pool="other")

    response = api.post(
        "/api/work_pools/local/get_scheduled_flow_runs/", {"worker_name": "w1", "limit": 5}, format="json"
    )

    assert response.status_code == 200, response.content
    runs = response.json()
    assert [run["id"] for run in runs] == [str(due.id)]
    assert set(runs[0]) >= {"id", "state", "flow", "flow_name", "work_pool_name", "worker_name", "expected_start_time"}
    assert Worker.objects.get(pool=pool).name == "w1"
    workers = api.get("/api/work_pools/local/workers/").json()["results"]
    assert [(w["name"], w["status"]) for w in workers] == [("w1", "online")]


def test_the_poll_sees_runs_due_before_the_time_it_gives(api, flow, pool):
    """A worker prefetches runs due within the next seconds and holds them until their start time."""
    soon = scheduled_run(flow, seconds=5)
    before = (timezone.now() + timedelta(seconds=10)).isoformat()

    runs = api.post("/api/work_pools/local/get_scheduled_flow_runs/", {"scheduled_before": before}, format="json")

    assert [run["id"] for run in runs.json()] == [str(soon.id)]


def test_a_heartbeat_answers_which_of_the_workers_runs_are_cancelling(api, flow, pool):
    """The worker learns of a cancellation from its heartbeat's answer and stops the run's process."""
    running = scheduled_run(flow)
    walk(running, Pending(), Running())
    cancelled = scheduled_run(flow)
    walk(cancelled, Pending(), Running(), Cancelling())

    response = api.post(
        "/api/work_pools/local/workers/heartbeat/",
        {"name": "w1", "flow_run_ids": [str(running.id), str(cancelled.id)]},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"cancelling": [str(cancelled.id)]}
    assert Worker.objects.get(pool=pool, name="w1").last_heartbeat_at > timezone.now() - timedelta(seconds=5)


def test_a_worker_records_itself_and_the_process_on_the_run(api, flow, pool):
    """The zombie service finds a run's worker by the name the worker recorded on it."""
    run = scheduled_run(flow)

    response = api.patch(
        f"/api/flow_runs/{run.id}/", {"worker_name": "w1", "infrastructure_pid": "host:123"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert (response.json()["worker_name"], response.json()["infrastructure_pid"]) == ("w1", "host:123")
