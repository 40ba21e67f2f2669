"""Helpers of the notification tests: failing runs through the engine, and the consumer over the whole stream."""

from __future__ import annotations

from django.db import transaction

from apps.events.models import Event
from apps.events.stream import StreamEvent
from apps.flows.services import flow_get_or_create
from apps.notifications.consumer import deliveries_enqueue, policies_changed
from apps.orchestration.engine import propose_state
from apps.orchestration.rules.base import RunKind
from apps.runs.models import FlowRun
from apps.runs.services import flow_run_create
from orchestrator.states import Failed, Running, State


def run_into(state: State, *, flow: str = "etl", tags: list[str] | None = None, pool: str | None = None) -> FlowRun:
    """A new flow run taken from Running into `state` by the engine (which writes the event)."""
    flow_row, _ = flow_get_or_create(name=flow)
    run, _ = flow_run_create(flow=flow_row, state=Running(), tags=tags or [], work_pool_name=pool)
    propose_state(kind=RunKind.FLOW_RUN, run_id=run.id, state=state, force=True)
    return run


def fail_run(**kwargs: object) -> FlowRun:
    return run_into(Failed(message="boom"), **kwargs)  # type: ignore[arg-type]


def enqueue_everything() -> int:
    """Hand every event written so far to the consumer's handler, twice over if called twice, as the runner would.
    The events are read from the table in id order, in the test's own transaction (the stream reader, which sees
    only committed events, has its own tests in tests/events; tests/notifications/test_server.py runs the whole
    path on a real server)."""
    policies_changed()
    rows = Event.objects.order_by("id").values_list("id", "name", "resource_type", "resource_id", "payload", "occurred")
    with transaction.atomic():
        return deliveries_enqueue([StreamEvent((*row, 0)) for row in rows])
