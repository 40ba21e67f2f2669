"""Insert N finished flow runs (with their state history) straight into the database the environment names.

Used by api_throughput.py to give the read benchmark 10,000 runs to filter without 30,000 API calls.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.flows.models import Flow  # noqa: E402
from apps.runs.models import FlowRun, FlowRunState  # noqa: E402

STATE_TYPES = ["COMPLETED", "FAILED", "COMPLETED", "CANCELLED", "COMPLETED", "CRASHED"]


def seed(count: int) -> None:
    flows = [Flow.objects.get_or_create(name=f"bench-flow-{index}")[0] for index in range(10)]
    now = timezone.now()
    runs, states = [], []
    for index in range(count):
        state_type = STATE_TYPES[index % len(STATE_TYPES)]
        started = now - timedelta(seconds=count - index)
        state_id = uuid.uuid4()
        run = FlowRun(
            flow=flows[index % len(flows)],
            name=f"seeded-run-{index}",
            tags=["bench", f"shard-{index % 7}"],
            state_id=state_id,
            state_type=state_type,
            state_name=state_type.title(),
            state_timestamp=started + timedelta(seconds=1),
            expected_start_time=started,
            start_time=started,
            end_time=started + timedelta(seconds=1),
            total_run_time=1.0,
            run_count=1,
        )
        runs.append(run)
        for offset, (kind, name) in enumerate([("PENDING", "Pending"), ("RUNNING", "Running")]):
            states.append(
                FlowRunState(flow_run=run, type=kind, name=name, timestamp=started + timedelta(milliseconds=offset))
            )
        states.append(
            FlowRunState(
                id=state_id, flow_run=run, type=state_type, name=state_type.title(), timestamp=run.state_timestamp
            )
        )
    with transaction.atomic():
        FlowRun.objects.bulk_create(runs, batch_size=1000)
        FlowRunState.objects.bulk_create(states, batch_size=1000)
    # A table that grew by 10,000 rows at once gets fresh planner statistics, as PostgreSQL's autovacuum would
    # give it shortly after; without them the planner assumes the table is nearly empty.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


if __name__ == "__main__":
    seed(int(sys.argv[1]))
