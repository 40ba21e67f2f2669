"""Deployments, the runs their schedules must have, and servers killed with SIGKILL: shared by the leadership test
and benchmarks/leadership.py.

Every deployment gets one interval schedule of EVERY_SECONDS anchored half an hour after `anchor_base`, so the
runs wanted within the one-day horizon are the same set for any "now" in that half hour: that set is computed
here, independently of the scheduler, and compared with what the servers created.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

EVERY_SECONDS = 4 * 3600
HORIZON_SECONDS = 86400
ANCHOR_OFFSET = timedelta(minutes=30)


def deployments_create(*, count: int, anchor_base: datetime, label: str) -> list[uuid.UUID]:
    """`count` deployments with one schedule each, written directly (no API call schedules them at once: the
    scheduler service alone must create their runs)."""
    from apps.deployments import schedules
    from apps.deployments.models import Deployment, DeploymentSchedule
    from apps.flows.services import flow_get_or_create

    flow = flow_get_or_create(name="leadership-chaos")[0]
    anchor = (anchor_base + ANCHOR_OFFSET).isoformat()
    deployments = Deployment.objects.bulk_create(
        Deployment(flow=flow, name=f"{label}-{index}", work_pool_name="chaos") for index in range(count)
    )
    DeploymentSchedule.objects.bulk_create(
        DeploymentSchedule(
            deployment=deployment,
            schedule=schedules.normalize({"interval": EVERY_SECONDS, "anchor_date": anchor}),
        )
        for deployment in deployments
    )
    return [deployment.id for deployment in deployments]


def expected_times(anchor_base: datetime) -> list[datetime]:
    """The start times every deployment must have: anchor + k * interval within the horizon."""
    first = anchor_base + ANCHOR_OFFSET
    count = (HORIZON_SECONDS - int(ANCHOR_OFFSET.total_seconds())) // EVERY_SECONDS + 1
    return [first + timedelta(seconds=k * EVERY_SECONDS) for k in range(count)]


def scheduled_runs() -> list[tuple[uuid.UUID, datetime]]:
    from apps.runs.models import FlowRun

    return list(
        FlowRun.objects.filter(auto_scheduled=True).order_by().values_list("deployment_id", "expected_start_time")
    )


def duplicates_and_missing(deployment_ids: list[uuid.UUID], anchor_base: datetime) -> tuple[int, int, int]:
    """(runs found, duplicate runs, missing runs) against the expected set."""
    found = Counter(scheduled_runs())
    expected = {(deployment_id, moment) for deployment_id in deployment_ids for moment in expected_times(anchor_base)}
    duplicates = sum(count - 1 for count in found.values() if count > 1)
    missing = len(expected - set(found))
    unexpected = len(set(found) - expected)
    return sum(found.values()), duplicates, missing + unexpected


def overlapping_passes(service: str) -> int:
    """How many recorded passes of `service` started before the previous one had finished (0: one at a time)."""
    from apps.server_services.models import ServiceRun

    passes = list(
        ServiceRun.objects.filter(service=service, skipped=False)
        .order_by("started_at")
        .values_list("started_at", "finished_at")
    )
    return sum(1 for previous, current in zip(passes, passes[1:], strict=False) if current[0] < previous[1])


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.extend(process_tree(int(entry.name)))
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a server and every process it started: no clean-up runs, no lock is released by our code."""
    for member in process_tree(pid):
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
