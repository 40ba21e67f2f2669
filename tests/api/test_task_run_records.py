"""POST /api/task_runs/record/: task runs a client already ran, recorded through the engine's policy with the
client's times; safe to send twice; refusals are per item and lose nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from apps.runs.models import TaskRun, TaskRunState
from tests.api.support import assert_error, snapshot

pytestmark = pytest.mark.django_db


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def record(flow_run, run_id: str, *types: str, key: str = "0", start: float = -3.0) -> dict:
    return {
        "id": run_id,
        "flow_run": str(flow_run.id),
        "task_key": "pkg.recorded",
        "dynamic_key": key,
        "states": [{"type": kind, "timestamp": at(start + index)} for index, kind in enumerate(types)],
    }


def post(api, body):
    return api.post("/api/task_runs/record/", body, format="json")


def test_recorded_runs_keep_the_clients_times(api, flow_run):
    run_id = str(uuid.uuid4())
    answer = post(api, {"task_runs": [record(flow_run, run_id, "PENDING", "RUNNING", "COMPLETED")]})
    assert answer.status_code == 200, answer.content
    (item,) = answer.json()["task_runs"]
    assert (item["id"], item["status"], item["state"]["type"]) == (run_id, "ACCEPT", "COMPLETED")
    run = TaskRun.objects.get(pk=run_id)
    assert run.total_run_time == pytest.approx(1.0, abs=0.01)
    assert (run.end_time - run.start_time).total_seconds() == pytest.approx(1.0, abs=0.01)
    assert list(run.states.order_by("timestamp").values_list("name", flat=True)) == ["Pending", "Running", "Completed"]


def test_a_batch_sent_twice_is_recorded_once(api, flow_run):
    """The SDK retries a batch after a connection error: nothing may be doubled."""
    run_id = str(uuid.uuid4())
    body = {"task_runs": [record(flow_run, run_id, "PENDING", "RUNNING")]}
    assert post(api, body).json()["task_runs"][0]["status"] == "ACCEPT"
    again = post(api, body)
    assert again.json()["task_runs"] == [{"id": run_id, "status": "EXISTS"}]
    assert TaskRunState.objects.filter(task_run_id=run_id).count() == 2


def test_later_states_go_through_the_policy(api, flow_run):
    run_id = str(uuid.uuid4())
    post(api, {"task_runs": [record(flow_run, run_id, "PENDING", "RUNNING")]})
    done = post(api, {"states": [{"task_run": run_id, "state": {"type": "COMPLETED", "timestamp": at(0)}}]})
    assert done.json()["states"][0]["status"] == "ACCEPT"
    again = post(api, {"states": [{"task_run": run_id, "state": {"type": "RUNNING", "timestamp": at(0)}}]})
    assert again.json()["states"][0]["status"] == "REJECT"  # a final task run stays final
    assert TaskRun.objects.get(pk=run_id).state_type == "COMPLETED"


def test_times_from_a_wrong_clock_are_kept_between_the_current_state_and_now(api, flow_run):
    """A client clock ahead of the server cannot date a state in the future, nor years back."""
    future_id, ancient_id = str(uuid.uuid4()), str(uuid.uuid4())
    before = datetime.now(UTC)
    post(
        api,
        {
            "task_runs": [
                record(flow_run, future_id, "PENDING", "RUNNING", key="f", start=3600),
                record(flow_run, ancient_id, "PENDING", key="a", start=-10 * 365 * 86400),
            ]
        },
    )
    after = datetime.now(UTC)
    future = TaskRun.objects.get(pk=future_id)
    assert before <= future.start_time <= after
    ancient = TaskRun.objects.get(pk=ancient_id)
    assert ancient.state_timestamp >= before - timedelta(days=1, seconds=5)


def test_unknown_flow_runs_are_reported_and_the_rest_recorded(api, flow_run):
    good, orphan = str(uuid.uuid4()), str(uuid.uuid4())
    lost = {**record(flow_run, orphan, "PENDING", key="x"), "flow_run": str(uuid.uuid4())}
    answer = post(api, {"task_runs": [lost, record(flow_run, good, "PENDING")]}).json()["task_runs"]
    assert [item["status"] for item in answer] == ["NOT_FOUND", "ACCEPT"]
    assert TaskRun.objects.filter(pk=orphan).count() == 0
    assert TaskRun.objects.filter(pk=good).count() == 1


def test_a_key_already_taken_is_a_409_and_writes_nothing(api, flow_run, task_run):
    """The same (flow run, task key, dynamic key) under a new id would be a second run of one task."""
    before = snapshot()
    clash = {**record(flow_run, str(uuid.uuid4()), "PENDING"), "task_key": task_run.task_key}
    clash["dynamic_key"] = task_run.dynamic_key
    assert_error(post(api, {"task_runs": [clash]}), 409, field="task_runs")
    assert snapshot() == before


def test_states_of_unknown_task_runs_are_refused_per_item(api, flow_run):
    unknown = {"task_run": str(uuid.uuid4()), "state": {"type": "COMPLETED", "timestamp": at(0)}}
    answer = post(api, {"states": [unknown]})
    assert answer.status_code == 200
    assert answer.json()["states"][0]["status"] == "ABORT"
