"""`next_state` on create: a client starting a run at once gets Pending and Running in one request and one
transaction, each decided by the engine's policy."""

from __future__ import annotations

from apps.concurrency.models import ConcurrencyLimit
from apps.runs.models import FlowRun, TaskRun
from tests.api.support import assert_json


def history(run) -> list[str]:
    return list(run.states.order_by("timestamp", "created").values_list("name", flat=True))


def test_a_task_run_created_with_next_state_running_is_running_with_a_full_history(api, flow_run):
    """Half the round trips for every task, and the history still shows Pending before Running."""
    response = api.post(
        "/api/task_runs/",
        {
            "flow_run": str(flow_run.id),
            "task_key": "t",
            "state": {"type": "PENDING"},
            "next_state": {"type": "RUNNING"},
        },
        format="json",
    )
    body = assert_json(response)
    assert response.status_code == 201
    assert body["state_type"] == "RUNNING" and body["run_count"] == 1 and body["start_time"]
    assert history(TaskRun.objects.get(pk=body["id"])) == ["Pending", "Running"]


def test_a_full_concurrency_limit_leaves_the_new_task_run_pending(api, flow_run):
    """The second state goes through the same rules: a full tag limit answers WAIT, so the run stays Pending."""
    ConcurrencyLimit.objects.create(tag="db", limit=0)
    response = api.post(
        "/api/task_runs/",
        {"flow_run": str(flow_run.id), "task_key": "t", "tags": ["db"], "next_state": {"type": "RUNNING"}},
        format="json",
    )
    body = assert_json(response)
    assert body["state_type"] == "PENDING"
    assert history(TaskRun.objects.get(pk=body["id"])) == ["Pending"]


def test_a_flow_run_created_with_next_state_failed_records_both(api, flow):
    """Bad parameters fail a run before it starts: Pending then Failed, never Running."""
    response = api.post(
        "/api/flow_runs/",
        {"flow": str(flow.id), "next_state": {"type": "FAILED", "message": "x: not an int"}},
        format="json",
    )
    body = assert_json(response)
    assert body["state_type"] == "FAILED" and body["start_time"] is None
    assert history(FlowRun.objects.get(pk=body["id"])) == ["Pending", "Failed"]


def test_a_malformed_next_state_is_a_400_naming_it_and_creates_nothing(api, flow):
    """Bad input loses nothing and writes nothing."""
    response = api.post("/api/flow_runs/", {"flow": str(flow.id), "next_state": {"type": "NOPE"}}, format="json")
    assert response.status_code == 400
    assert "next_state.type" in response.json()["fields"]
    assert not FlowRun.objects.exists()
