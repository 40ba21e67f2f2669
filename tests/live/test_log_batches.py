"""A batch of log lines writes one `logs.written` event whose id range holds exactly the batch's lines, in the
order they were sent: what the publisher reads for a watched run (apps/logs/services.py)."""

from __future__ import annotations

import pytest

from apps.events.models import Event
from apps.flows.models import Flow
from apps.logs.models import Log
from apps.logs.services import LOGS_WRITTEN, log_ids_for_batch, logs_create
from apps.runs.services import flow_run_create


def test_a_batch_s_ids_are_ordered_uuids_in_a_range_of_their_own() -> None:
    """The range query must return this batch's lines only, in the order they were sent."""
    first, second = log_ids_for_batch(1000), log_ids_for_batch(1000)
    assert first == sorted(first) and second == sorted(second)
    assert {line_id.version for line_id in first} == {8} and {line_id.variant for line_id in first} == {
        "specified in RFC 4122"
    }
    assert first[-1] < second[0] or second[-1] < first[0]  # the ranges do not overlap
    assert len(set(first) | set(second)) == 2000


@pytest.mark.django_db
def test_a_batch_writes_one_event_naming_its_runs_and_its_range() -> None:
    """One event per batch, not per line: 100,000 lines must not mean 100,000 events."""
    flow = Flow.objects.create(name="logs-batch")
    runs = [flow_run_create(flow=flow)[0] for _ in range(2)]
    before = Event.objects.filter(name=LOGS_WRITTEN).count()

    logs_create(entries=[{"flow_run": runs[n % 2], "message": f"line {n}"} for n in range(7)])

    event = Event.objects.filter(name=LOGS_WRITTEN).order_by("-id").first()
    assert Event.objects.filter(name=LOGS_WRITTEN).count() == before + 1
    assert event.payload["flow_run_ids"] == sorted(str(run.id) for run in runs)
    assert event.payload["count"] == 7
    in_range = Log.objects.filter(pk__gte=event.payload["first_id"], pk__lte=event.payload["last_id"]).order_by("pk")
    assert [line.message for line in in_range] == [f"line {n}" for n in range(7)]
