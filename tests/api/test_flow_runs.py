"""/api/flow_runs/: create (initial state, idempotency), retrieve, PATCH, DELETE, set_state, states, graph, resume."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.utils import timezone

from apps.runs.models import FlowRun, FlowRunState, TaskRun
from tests.api.support import assert_error, assert_json, snapshot

RUN_FIELDS = {
    "id", "name", "flow", "state", "state_type", "state_name", "parameters", "tags", "run_count",
    "expected_start_time", "start_time", "end_time", "total_run_time", "estimated_start_time_delta",
    "deployment", "work_pool_name", "work_queue_name", "parent_task_run", "created", "updated",
}  # fmt: skip
STATE_FIELDS = {"id", "type", "name", "timestamp", "message", "state_details"}


def set_state(api, run_id, state_type: str, **extra):
    return api.post(f"/api/flow_runs/{run_id}/set_state/", {"state": {"type": state_type, **extra}}, format="json")


def test_create_without_a_state_starts_pending(api, flow):
    """A run created by the SDK for an in-process call starts Pending, with every field clients read."""
    response = api.post(
        "/api/flow_runs/",
        {"flow": str(flow.id), "name": "first", "parameters": {"x": 1, "nested": {"y": [1, 2]}}, "tags": ["a"]},
        format="json",
    )
    body = assert_json(response)
    assert response.status_code == 201
    assert RUN_FIELDS <= set(body)
    assert STATE_FIELDS <= set(body["state"])
    assert (body["flow"], body["name"], body["tags"]) == (str(flow.id), "first", ["a"])
    assert body["parameters"] == {"x": 1, "nested": {"y": [1, 2]}}
    assert (body["state_type"], body["state_name"]) == ("PENDING", "Pending")
    assert body["state"]["type"] == "PENDING"
    assert body["run_count"] == 0
    assert FlowRunState.objects.filter(flow_run_id=body["id"]).count() == 1


def test_create_without_a_name_generates_one(api, flow):
    """Runs always have a readable name for lists and logs."""
    body = api.post("/api/flow_runs/", {"flow": str(flow.id)}, format="json").json()
    assert body["name"] and "-" in body["name"]


def test_create_scheduled_sets_the_expected_start_time(api, flow):
    """Scheduled runs carry their time; the expected start is what workers and late-run checks read."""
    when = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    response = api.post(
        "/api/flow_runs/",
        {"flow": str(flow.id), "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": when.isoformat()}}},
        format="json",
    )
    body = response.json()
    assert response.status_code == 201
    assert (body["state_type"], body["state_name"]) == ("SCHEDULED", "Scheduled")
    assert datetime.fromisoformat(body["state"]["state_details"]["scheduled_time"]) == when
    assert datetime.fromisoformat(body["expected_start_time"].replace("Z", "+00:00")) == when


def test_create_with_a_named_initial_state(api, flow):
    """A named state (Late is a SCHEDULED state) is kept as given."""
    body = api.post(
        "/api/flow_runs/", {"flow": str(flow.id), "state": {"type": "SCHEDULED", "name": "Late"}}, format="json"
    ).json()
    assert (body["state_type"], body["state_name"]) == ("SCHEDULED", "Late")


def test_create_with_a_state_name_of_another_type_is_refused(api, flow):
    """A Running state cannot be of type SCHEDULED: the client has a bug, and nothing is stored."""
    before = snapshot()
    response = api.post(
        "/api/flow_runs/", {"flow": str(flow.id), "state": {"type": "SCHEDULED", "name": "Running"}}, format="json"
    )
    assert_error(response, 400, code="invalid_input", field="state.name")
    assert snapshot() == before


def test_create_with_the_same_idempotency_key_returns_the_same_run(api, flow):
    """A scheduler or a retried request creating the same run twice must get the first one back."""
    payload = {"flow": str(flow.id), "idempotency_key": "schedule-1@2030-01-01"}
    first = api.post("/api/flow_runs/", payload, format="json")
    second = api.post("/api/flow_runs/", {**payload, "name": "ignored"}, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert FlowRun.objects.filter(idempotency_key="schedule-1@2030-01-01").count() == 1


def test_the_same_idempotency_key_on_another_flow_is_another_run(api, flow):
    """Idempotency keys are per flow."""
    other = api.post("/api/flows/", {"name": "other"}, format="json").json()
    first = api.post("/api/flow_runs/", {"flow": str(flow.id), "idempotency_key": "k"}, format="json")
    second = api.post("/api/flow_runs/", {"flow": other["id"], "idempotency_key": "k"}, format="json")
    assert second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_create_as_a_subflow_links_the_parent_task_run(api, task_run):
    """A flow called inside a flow is linked to the task run that called it."""
    response = api.post(
        "/api/flow_runs/", {"flow": str(task_run.flow_run.flow_id), "parent_task_run": str(task_run.id)}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["parent_task_run"] == str(task_run.id)


def test_create_for_an_unknown_flow_is_a_404_naming_flow(api, db):
    """The flow id is checked, and the failed request writes nothing."""
    before = snapshot()
    assert_error(api.post("/api/flow_runs/", {"flow": str(uuid.uuid4())}, format="json"), 404, field="flow")
    assert snapshot() == before


def test_create_under_an_unknown_parent_task_run_is_a_404(api, flow):
    """A dangling parent link is refused instead of silently dropped."""
    before = snapshot()
    response = api.post("/api/flow_runs/", {"flow": str(flow.id), "parent_task_run": str(uuid.uuid4())}, format="json")
    assert_error(response, 404, code="not_found", field="parent_task_run")
    assert snapshot() == before


def test_create_with_an_initial_state_the_policy_refuses_is_a_400_and_writes_nothing(api, flow):
    """Only a running run can pause: a run created Paused is refused as a whole, with the rule's reason."""
    before = snapshot()
    response = api.post("/api/flow_runs/", {"flow": str(flow.id), "state": {"type": "PAUSED"}}, format="json")
    body = assert_error(response, 400, code="invalid_input", field="state")
    assert "pause" in body["message"]
    assert snapshot() == before


def test_retrieve_returns_the_run_with_its_state(api, flow_run):
    """The run page reads one run by id."""
    body = api.get(f"/api/flow_runs/{flow_run.id}/").json()
    assert body["id"] == str(flow_run.id)
    assert body["flow_name"] == "etl"
    assert body["state"]["id"] == str(flow_run.state_id)


def test_patch_changes_name_tags_and_parameters_only(api, flow_run):
    """PATCH edits descriptive fields; it never touches the state (only the engine does)."""
    response = api.patch(
        f"/api/flow_runs/{flow_run.id}/", {"name": "renamed", "tags": ["x"], "parameters": {"a": 1}}, format="json"
    )
    body = response.json()
    assert response.status_code == 200
    assert (body["name"], body["tags"], body["parameters"]) == ("renamed", ["x"], {"a": 1})
    assert body["state"]["id"] == str(flow_run.state_id)


def test_patch_cannot_set_the_state(api, flow_run):
    """State changes go through set_state so the policy applies; PATCH refuses the field by name."""
    before = snapshot()
    response = api.patch(f"/api/flow_runs/{flow_run.id}/", {"state_type": "COMPLETED"}, format="json")
    assert_error(response, 400, code="invalid_input", field="state_type")
    assert snapshot() == before


def test_delete_removes_the_run_its_states_and_task_runs(api, task_run):
    """Deleting a run removes its history; it is then a 404."""
    run_id = task_run.flow_run_id
    assert api.delete(f"/api/flow_runs/{run_id}/").status_code == 204
    assert not FlowRunState.objects.filter(flow_run_id=run_id).exists()
    assert not TaskRun.objects.filter(pk=task_run.pk).exists()
    assert_error(api.get(f"/api/flow_runs/{run_id}/"), 404, code="not_found")
    assert_error(api.delete(f"/api/flow_runs/{run_id}/"), 404, code="not_found")


def test_set_state_accepts_and_returns_the_engine_response(api, flow_run):
    """A client proposing RUNNING gets ACCEPT, the stored state and empty details."""
    response = set_state(api, flow_run.id, "RUNNING", message="go")
    body = assert_json(response)
    assert response.status_code == 201
    assert set(body) == {"status", "state", "details"}
    assert body["status"] == "ACCEPT"
    assert body["details"] == {"reason": None, "delay_seconds": 0}
    flow_run.refresh_from_db()
    assert body["state"]["id"] == str(flow_run.state_id)
    assert (body["state"]["type"], body["state"]["name"], body["state"]["message"]) == ("RUNNING", "Running", "go")
    assert (flow_run.state_type, flow_run.run_count) == ("RUNNING", 1)
    assert flow_run.start_time is not None


def test_a_second_claim_is_aborted_with_a_reason(api, flow_run):
    """Two workers claiming one run: the second is told to stop and the run is not changed."""
    assert set_state(api, flow_run.id, "RUNNING").json()["status"] == "ACCEPT"
    before = snapshot()
    response = set_state(api, flow_run.id, "PENDING")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ABORT"
    assert body["state"]["type"] == "RUNNING"
    assert body["details"]["reason"]
    assert snapshot() == before


def test_leaving_a_terminal_state_is_rejected_unless_forced(api, flow_run):
    """Completed runs stay completed; an operator can force a change, and it is marked as forced."""
    set_state(api, flow_run.id, "RUNNING")
    set_state(api, flow_run.id, "COMPLETED")
    rejected = set_state(api, flow_run.id, "RUNNING").json()
    assert rejected["status"] == "REJECT"
    assert rejected["state"]["type"] == "COMPLETED"
    assert "final" in rejected["details"]["reason"]
    forced = api.post(
        f"/api/flow_runs/{flow_run.id}/set_state/", {"state": {"type": "RUNNING"}, "force": True}, format="json"
    )
    assert forced.status_code == 201
    assert forced.json()["state"]["state_details"]["forced"] is True


def test_starting_before_the_scheduled_time_is_told_to_wait(api, flow):
    """A run scheduled in an hour answers WAIT with the seconds left, and stays Scheduled."""
    when = timezone.now() + timedelta(hours=1)
    run = api.post(
        "/api/flow_runs/",
        {"flow": str(flow.id), "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": when.isoformat()}}},
        format="json",
    ).json()
    body = set_state(api, run["id"], "RUNNING").json()
    assert body["status"] == "WAIT"
    assert 3500 < body["details"]["delay_seconds"] <= 3600
    assert body["state"]["type"] == "SCHEDULED"


def test_states_lists_the_history_oldest_first(api, flow_run):
    """The state timeline on the run page reads this list in order."""
    set_state(api, flow_run.id, "RUNNING")
    set_state(api, flow_run.id, "COMPLETED", message="done")
    response = api.get(f"/api/flow_runs/{flow_run.id}/states/")
    states = response.json()
    assert response.status_code == 200
    assert [state["type"] for state in states] == ["PENDING", "RUNNING", "COMPLETED"]
    assert [state["timestamp"] for state in states] == sorted(state["timestamp"] for state in states)
    assert states[-1]["message"] == "done"
    assert all(STATE_FIELDS <= set(state) for state in states)


def test_graph_has_the_task_runs_and_edges_from_their_inputs(api, flow_run):
    """The radar view draws task runs and an edge per upstream task-run input (other inputs draw none)."""

    def task(key: str, inputs: dict) -> str:
        payload = {"flow_run": str(flow_run.id), "task_key": key, "task_inputs": inputs}
        return api.post("/api/task_runs/", payload, format="json").json()["id"]

    extract = task("extract", {})
    transform = task("transform", {"rows": [{"input_type": "task_run", "id": extract}]})
    load = task(
        "load",
        {
            "rows": [{"input_type": "task_run", "id": transform}],
            "raw": [{"input_type": "task_run", "id": extract}, {"input_type": "parameter", "name": "table"}],
            "elsewhere": [{"input_type": "task_run", "id": str(uuid.uuid4())}],
        },
    )
    body = api.get(f"/api/flow_runs/{flow_run.id}/graph/").json()
    assert body["flow_run"] == str(flow_run.id)
    assert {node["id"] for node in body["nodes"]} == {extract, transform, load}
    edges = {(edge["from"], edge["to"], edge["argument"]) for edge in body["edges"]}
    assert edges == {(extract, transform, "rows"), (transform, load, "rows"), (extract, load, "raw")}
    upstream = {node["id"]: node["upstream"] for node in body["nodes"]}
    assert upstream[load] == sorted([extract, transform])
    assert upstream[extract] == []


def test_graph_lists_subflow_runs(api, task_run):
    """A subflow appears under the task run that called it."""
    child = api.post(
        "/api/flow_runs/", {"flow": str(task_run.flow_run.flow_id), "parent_task_run": str(task_run.id)}, format="json"
    ).json()
    body = api.get(f"/api/flow_runs/{task_run.flow_run_id}/graph/").json()
    assert [row["id"] for row in body["subflow_runs"]] == [child["id"]]
    assert body["subflow_runs"][0]["parent_task_run_id"] == str(task_run.id)


def test_resume_of_a_run_that_is_not_paused_is_a_409(api, flow_run):
    """Resume only makes sense for a paused run; anything else is a conflict and changes nothing."""
    before = snapshot()
    assert_error(api.post(f"/api/flow_runs/{flow_run.id}/resume/"), 409, code="conflict")
    assert snapshot() == before


def test_resume_of_a_paused_run_moves_it_back_to_running(api, flow_run):
    """A run paused in place (its process still alive) continues as Running."""
    set_state(api, flow_run.id, "RUNNING")
    assert set_state(api, flow_run.id, "PAUSED").json()["status"] == "ACCEPT"
    response = api.post(f"/api/flow_runs/{flow_run.id}/resume/")
    body = response.json()
    assert response.status_code == 201
    assert (body["status"], body["state"]["type"]) == ("ACCEPT", "RUNNING")


def test_resume_of_a_suspended_run_reschedules_it(api, flow_run):
    """A suspended run has no process left: resuming hands it back to a worker as Scheduled."""
    set_state(api, flow_run.id, "RUNNING")
    assert set_state(api, flow_run.id, "PAUSED", name="Suspended").json()["status"] == "ACCEPT"
    body = api.post(f"/api/flow_runs/{flow_run.id}/resume/").json()
    assert (body["status"], body["state"]["type"]) == ("ACCEPT", "SCHEDULED")
