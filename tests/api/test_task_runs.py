"""/api/task_runs/: idempotent create, retrieve, PATCH, DELETE, set_state and states."""

from __future__ import annotations

import uuid

from apps.runs.models import TaskRun, TaskRunState
from tests.api.support import assert_error, assert_json, snapshot


def create(api, flow_run, **fields):
    return api.post("/api/task_runs/", {"flow_run": str(flow_run.id), "task_key": "pkg.load", **fields}, format="json")


def test_create_returns_the_task_run_pending(api, flow_run):
    """The SDK creates a task run before running it; it starts Pending with its inputs recorded."""
    upstream = str(uuid.uuid4())
    response = create(
        api,
        flow_run,
        dynamic_key="3",
        name="load-3",
        tags=["db"],
        cache_key="abc",
        task_inputs={
            "rows": [{"input_type": "task_run", "id": upstream}],
            "n": [{"input_type": "parameter", "name": "n"}],
        },
    )
    body = assert_json(response)
    assert response.status_code == 201
    assert (body["flow_run"], body["task_key"], body["dynamic_key"], body["name"]) == (
        str(flow_run.id), "pkg.load", "3", "load-3",
    )  # fmt: skip
    assert (body["state_type"], body["tags"], body["cache_key"]) == ("PENDING", ["db"], "abc")
    assert body["task_inputs"]["rows"] == [{"input_type": "task_run", "id": upstream}]
    assert body["task_inputs"]["n"] == [{"input_type": "parameter", "name": "n"}]


def test_create_is_idempotent_on_flow_run_task_key_and_dynamic_key(api, flow_run):
    """A client retrying a create (or a flow retry re-entering a task) must get the same task run back."""
    first = create(api, flow_run, dynamic_key="0")
    again = create(api, flow_run, dynamic_key="0", name="other")
    mapped = create(api, flow_run, dynamic_key="1")
    assert (first.status_code, again.status_code, mapped.status_code) == (201, 200, 201)
    assert first.json()["id"] == again.json()["id"] != mapped.json()["id"]
    assert TaskRun.objects.filter(flow_run=flow_run, task_key="pkg.load").count() == 2


def test_dynamic_key_defaults_to_zero(api, flow_run):
    """A task called once per flow run needs no dynamic key."""
    assert create(api, flow_run).json()["dynamic_key"] == "0"


def test_create_for_an_unknown_flow_run_is_a_404_naming_it(api, db):
    """The parent run is checked; nothing is written."""
    before = snapshot()
    response = api.post("/api/task_runs/", {"flow_run": str(uuid.uuid4()), "task_key": "t"}, format="json")
    assert_error(response, 404, code="not_found", field="flow_run")
    assert snapshot() == before


def test_retrieve_patch_and_delete(api, task_run):
    """A task run is read by id, renamed or retagged with PATCH, and deleted with its states."""
    assert api.get(f"/api/task_runs/{task_run.id}/").json()["task_key"] == "pkg.extract"
    body = api.patch(f"/api/task_runs/{task_run.id}/", {"name": "renamed", "tags": ["x"]}, format="json").json()
    assert (body["name"], body["tags"]) == ("renamed", ["x"])
    assert api.delete(f"/api/task_runs/{task_run.id}/").status_code == 204
    assert not TaskRunState.objects.filter(task_run_id=task_run.id).exists()
    assert_error(api.get(f"/api/task_runs/{task_run.id}/"), 404, code="not_found")


def test_set_state_and_states_history(api, task_run):
    """Task runs move through the engine like flow runs, and keep their history oldest first."""
    for state_type in ("RUNNING", "COMPLETED"):
        response = api.post(f"/api/task_runs/{task_run.id}/set_state/", {"state": {"type": state_type}}, format="json")
        assert response.status_code == 201
        assert response.json()["status"] == "ACCEPT"
    history = api.get(f"/api/task_runs/{task_run.id}/states/").json()
    assert [state["type"] for state in history] == ["PENDING", "RUNNING", "COMPLETED"]
    task_run.refresh_from_db()
    assert (task_run.state_type, task_run.run_count) == ("COMPLETED", 1)


def test_a_full_concurrency_limit_makes_the_task_wait(api, flow_run, concurrency_limit):
    """A task tagged with a full limit is told to WAIT and stays Pending."""
    concurrency_limit.limit = 0
    concurrency_limit.save()
    task = create(api, flow_run, tags=["database"]).json()
    body = api.post(f"/api/task_runs/{task['id']}/set_state/", {"state": {"type": "RUNNING"}}, format="json").json()
    assert body["status"] == "WAIT"
    assert body["details"]["delay_seconds"] > 0
    assert "database" in body["details"]["reason"]
    assert body["state"]["type"] == "PENDING"


def test_task_runs_have_no_resume_or_graph(api, task_run):
    """Those actions belong to flow runs; asking a task run for them is a JSON 404."""
    assert_error(api.post(f"/api/task_runs/{task_run.id}/resume/"), 404)
    assert_error(api.get(f"/api/task_runs/{task_run.id}/graph/"), 404)
