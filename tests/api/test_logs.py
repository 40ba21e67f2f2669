"""/api/logs/: bulk creation (a list, or one object) and the filtered, oldest-first list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from apps.logs.models import Log
from apps.runs.models import FlowRun
from tests.api.support import assert_error, snapshot

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_bulk_create_stores_every_log(api, task_run):
    """Clients ship logs in batches: one request stores them all."""
    batch = [
        {"flow_run": str(task_run.flow_run_id), "message": "start", "level": 20, "timestamp": at(0)},
        {"flow_run": str(task_run.flow_run_id), "task_run": str(task_run.id), "message": "row 1", "level": 10},
        {"flow_run": str(task_run.flow_run_id), "message": "  keeps spacing\n", "name": "etl.logger"},
    ]
    response = api.post("/api/logs/", batch, format="json")
    assert response.status_code == 201
    assert response.json() == {"created": 3}
    assert Log.objects.count() == 3
    assert Log.objects.get(name="etl.logger").message == "  keeps spacing\n"
    assert Log.objects.get(message="row 1").task_run_id == task_run.id


def test_a_batch_sent_again_under_its_key_is_stored_once(api, task_run):
    """A client whose answer was lost (the server died after its commit) sends the batch again: the lines and the
    batch's live event are written once."""
    from apps.events.models import Event

    batch = [{"flow_run": str(task_run.flow_run_id), "message": f"line {n}"} for n in range(3)]
    first = api.post("/api/logs/", batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    again = api.post("/api/logs/", batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    other = api.post("/api/logs/", batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-2")
    assert [r.json() for r in (first, again, other)] == [{"created": 3}, {"created": 0}, {"created": 3}]
    assert Log.objects.count() == 6
    assert Event.objects.filter(name="logs.written").count() == 2


@pytest.mark.parametrize("key", ["   ", "k" * 201])
def test_a_blank_or_overlong_batch_key_is_refused(api, flow_run, key):
    """The key is what makes a resend harmless: a key that cannot be one is refused, not ignored."""
    batch = [{"flow_run": str(flow_run.id), "message": "x"}]
    assert_error(api.post("/api/logs/", batch, format="json", HTTP_IDEMPOTENCY_KEY=key), 400, field="Idempotency-Key")
    assert not Log.objects.exists()


def test_a_single_object_is_accepted(api, flow_run):
    """A client sending one log need not wrap it in a list."""
    response = api.post("/api/logs/", {"flow_run": str(flow_run.id), "message": "one"}, format="json")
    assert response.status_code == 201
    assert response.json() == {"created": 1}
    log = Log.objects.get()
    assert (log.level, log.name) == (20, "orchestrator")


def test_an_empty_batch_creates_nothing(api, db):
    """A flush with nothing buffered is harmless."""
    response = api.post("/api/logs/", [], format="json")
    assert (response.status_code, response.json()) == (201, {"created": 0})


def test_one_bad_entry_refuses_the_whole_batch_naming_its_index(api, flow_run):
    """Half-stored batches would duplicate logs when the client retries; the error says which entry is bad."""
    before = snapshot()
    batch = [{"flow_run": str(flow_run.id), "message": "ok"}, {"flow_run": str(flow_run.id), "level": "loud"}]
    body = assert_error(api.post("/api/logs/", batch, format="json"), 400, code="invalid_input")
    assert set(body["fields"]) == {"[1].level", "[1].message"}
    assert snapshot() == before


def test_logs_for_an_unknown_run_are_a_404_and_nothing_is_stored(api, flow_run):
    """Logs must belong to an existing run."""
    before = snapshot()
    batch = [{"flow_run": str(flow_run.id), "message": "ok"}, {"flow_run": str(uuid.uuid4()), "message": "lost"}]
    assert_error(api.post("/api/logs/", batch, format="json"), 404, code="not_found", field="flow_run")
    assert snapshot() == before


def test_too_many_logs_in_one_request_is_a_400(api, flow_run):
    """A batch limit keeps one request from holding the database for long."""
    batch = [{"message": str(index)} for index in range(5_001)]
    assert_error(api.post("/api/logs/", batch, format="json"), 400, code="invalid_input")
    assert Log.objects.count() == 0


@pytest.fixture
def logs(task_run):
    """Four logs at known times and levels: three for the flow run (one of them its task run's), one elsewhere."""
    other_run = FlowRun.objects.create(flow=task_run.flow_run.flow, name="other")
    rows = [
        Log(flow_run=task_run.flow_run, message="a", level=10, timestamp=T0 + timedelta(seconds=2)),
        Log(flow_run=task_run.flow_run, task_run=task_run, message="b", level=40, timestamp=T0 + timedelta(seconds=1)),
        Log(flow_run=task_run.flow_run, message="c", level=30, timestamp=T0 + timedelta(seconds=3)),
        Log(flow_run=other_run, message="d", level=50, timestamp=T0),
    ]
    Log.objects.bulk_create(rows)
    return {"flow_run": task_run.flow_run, "task_run": task_run}


def messages(api, params) -> list[str]:
    response = api.get("/api/logs/", params)
    assert response.status_code == 200, response.content
    return [log["message"] for log in response.json()["results"]]


def test_list_is_oldest_first(api, logs):
    """Log views read top to bottom in time order."""
    assert messages(api, {}) == ["d", "b", "a", "c"]


def test_filters_by_run_level_and_time(api, logs):
    """The run page streams a run's logs above a level, from a time on."""
    flow_run, task_run = str(logs["flow_run"].id), str(logs["task_run"].id)
    assert messages(api, {"flow_run": flow_run}) == ["b", "a", "c"]
    assert messages(api, {"task_run": task_run}) == ["b"]
    assert messages(api, {"flow_run": flow_run, "level__gte": 30}) == ["b", "c"]
    assert messages(api, {"timestamp__gte": at(2)}) == ["a", "c"]
    assert messages(api, {"timestamp__lte": at(1)}) == ["d", "b"]
    assert messages(api, {"timestamp__gt": at(2)}) == ["c"]
    assert messages(api, {"ordering": "-level"}) == ["d", "b", "c", "a"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"flow_run": "nope"}, "flow_run"),
        ({"task_run": "0" * 31}, "task_run"),
        ({"level__gte": "loud"}, "level__gte"),
        ({"level__gte": "NaN"}, "level__gte"),
        ({"level__gte": "Infinity"}, "level__gte"),
        ({"timestamp__gte": "last tuesday"}, "timestamp__gte"),
    ],
)
def test_invalid_filters_are_400_naming_the_filter(api, logs, params, field):
    """Wrong filter values are reported by name instead of returning the wrong logs."""
    assert_error(api.get("/api/logs/", params), 400, code="invalid_input", field=field)


def test_logs_are_paginated(api, logs):
    """A long log follows next links like every list."""
    body = api.get("/api/logs/?limit=3").json()
    assert len(body["results"]) == 3
    assert [log["message"] for log in api.get(body["next"]).json()["results"]] == ["c"]


def test_each_line_names_the_task_run_that_wrote_it(api, flow_run):
    """Five tasks each logging "Finished in state Completed()" are told apart by their run's name."""
    from apps.runs import services as run_services

    task_run = run_services.task_run_create(flow_run=flow_run, task_key="pkg.extract", name="extract-0")[0]
    body = [
        {"flow_run": str(flow_run.id), "task_run": str(task_run.id), "level": 20, "message": "from the task",
         "timestamp": "2026-01-01T00:00:00Z"},
        {"flow_run": str(flow_run.id), "level": 20, "message": "from the flow", "timestamp": "2026-01-01T00:00:01Z"},
    ]  # fmt: skip
    assert api.post("/api/logs/", body, format="json").status_code == 201
    lines = api.get(f"/api/logs/?flow_run={flow_run.id}").json()["results"]
    assert [(line["message"], line["task_run_name"]) for line in lines] == [
        ("from the task", "extract-0"),
        ("from the flow", None),
    ]
