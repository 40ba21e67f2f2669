"""Assertions shared by the API tests: the error body shape and "nothing was written"."""

from __future__ import annotations

from django.db import connection

from apps.blocks.models import BlockDocument
from apps.concurrency.models import ConcurrencyLimit
from apps.events.models import Event
from apps.flows.models import Flow
from apps.logs.models import Log
from apps.orchestration.models import CacheEntry
from apps.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState

MODELS = [Flow, FlowRun, TaskRun, FlowRunState, TaskRunState, Log, ConcurrencyLimit, Event, CacheEntry, BlockDocument]


def snapshot() -> list[tuple]:
    """Row count and newest `updated` per table, in one query: an insert, update or delete changes one of them
    (`updated` is set on every save, so even a delete plus an insert shows; events are only appended, with a
    growing id)."""
    query = " UNION ALL ".join(
        f"SELECT '{model._meta.db_table}', COUNT(*), CAST(MAX({_newest_column(model)}) AS TEXT)"
        f" FROM {model._meta.db_table}"
        for model in MODELS
    )
    with connection.cursor() as cursor:
        cursor.execute(query)
        return sorted(cursor.fetchall())


def _newest_column(model) -> str:
    return "updated" if any(field.name == "updated" for field in model._meta.fields) else model._meta.pk.column


def assert_json(response) -> dict | list:
    assert response["Content-Type"].startswith("application/json"), (response.status_code, response.content[:300])
    return response.json()


def assert_error(response, status: int, *, code: str | None = None, field: str | None = None) -> dict:
    """The response is the documented error body; with `field`, the body names it (or a path inside it)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = assert_json(response)
    assert isinstance(body, dict) and set(body) <= {"error", "message", "fields"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["message"], str) and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    if "fields" in body:
        assert isinstance(body["fields"], dict) and body["fields"], body
        for name, messages in body["fields"].items():
            assert isinstance(name, str) and isinstance(messages, list) and messages, body
            assert all(isinstance(message, str) and message for message in messages), body
    if field is not None:
        named = [name for name in body.get("fields", {}) if name_covers(name, field)]
        assert named, f"expected the error to name {field!r}: {body}"
        assert field.split(".")[0].split("[")[0] in body["message"] or field in body["message"], body
    return body


def name_covers(name: str, field: str) -> bool:
    """The error `name` is the field itself or a path inside it (`task_inputs.x[0].id` is inside `task_inputs`)."""
    return name == field or name.startswith(field + ".") or name.startswith(field + "[")
