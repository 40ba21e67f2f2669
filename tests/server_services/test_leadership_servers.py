"""Two `orchestrator server start` processes on one PostgreSQL database: one scheduler pass at a time, takeover
within two intervals after a SIGKILL, and no duplicate or missing scheduled run while servers die and restart."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection

from apps.server_services.models import ServiceRun
from tests.server_services import chaos
from tests.server_services.helpers import REPOSITORY, database_url_of_this_test, wait_for
from tests.server_services.leadership_settings import SCHEDULER_INTERVAL_SECONDS
from tests.support.server import start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="two servers on one database: PostgreSQL"),
]

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.server_services.leadership_settings", "PYTHONPATH": str(REPOSITORY)}
BATCH = 50


def scheduler_pass_after(moment: datetime) -> datetime | None:
    """The start of the first scheduler pass that ran (held the lock) after `moment`."""
    return (
        ServiceRun.objects.filter(service="scheduler", skipped=False, started_at__gt=moment)
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )


def test_one_pass_at_a_time_takeover_after_a_kill_and_no_duplicate_or_missing_run(tmp_path: Path) -> None:
    """Several servers for availability must neither double the scheduler's work nor lose runs when one dies."""
    assert connection.vendor == "postgresql"
    url = database_url_of_this_test()
    anchor_base = datetime.now(UTC)
    deployment_ids: list = []
    takeovers: list[float] = []
    with ExitStack() as servers:
        running = [
            servers.enter_context(start_server(home=tmp_path / name, database_url=url, settings=SETTINGS))
            for name in ("a", "b")
        ]
        deployment_ids += chaos.deployments_create(count=BATCH, anchor_base=anchor_base, label="before")
        wait_for(lambda: scheduler_pass_after(anchor_base), what="a first scheduler pass")

        # Kill the oldest server, create deployments while it is gone, start a new one: twice.
        for round_number in range(2):
            victim = running.pop(0)
            killed_at = datetime.now(UTC)
            chaos.kill_tree(victim.process.pid)
            victim.process.wait()
            deployment_ids += chaos.deployments_create(count=BATCH, anchor_base=anchor_base, label=f"r{round_number}")
            taken = wait_for(lambda at=killed_at: scheduler_pass_after(at), what="the survivor's pass")
            takeovers.append((taken - killed_at).total_seconds())
            home = tmp_path / f"new-{round_number}"
            running.append(servers.enter_context(start_server(home=home, database_url=url, settings=SETTINGS)))

        expected = len(deployment_ids) * len(chaos.expected_times(anchor_base))
        wait_for(lambda: len(chaos.scheduled_runs()) >= expected, what="every scheduled run")
        found, duplicates, missing = chaos.duplicates_and_missing(deployment_ids, anchor_base)
        overlaps = chaos.overlapping_passes("scheduler")
        skipped = ServiceRun.objects.filter(service="scheduler", skipped=True).count()
        ran = ServiceRun.objects.filter(service="scheduler", skipped=False).count()

    print(
        f"\nleadership: {len(deployment_ids)} deployments, {found} scheduled runs, {duplicates} duplicate, "
        f"{missing} missing; scheduler passes: {ran} ran, {skipped} skipped, {overlaps} overlapping; "
        f"takeover after SIGKILL: {', '.join(f'{seconds:.1f}s' for seconds in takeovers)} "
        f"(interval {SCHEDULER_INTERVAL_SECONDS}s)"
    )
    assert (duplicates, missing, overlaps) == (0, 0, 0)
    assert found == expected
    assert max(takeovers) < 2 * SCHEDULER_INTERVAL_SECONDS
