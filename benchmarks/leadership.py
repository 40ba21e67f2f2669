"""Scheduler leadership under restarts: servers on one database, one killed (SIGKILL, all its processes) and a new
one started every few seconds, while deployments are created; then every scheduled run is checked.

Prints the deployments and runs, duplicate and missing runs against the set computed from the schedules (0 and 0
expected), scheduler passes that overlapped (0 expected), the time from each kill to the next pass, and the
longest gap between two passes (under two intervals expected).

    .venv/bin/python benchmarks/leadership.py [--deployments 1000] [--seconds 60] [--restart-every 4]
                                              [--database postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import database, server  # noqa: E402

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.server_services.leadership_settings", "PYTHONPATH": str(ROOT)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long servers are killed and restarted")
    parser.add_argument("--restart-every", type=float, default=4.0, help="seconds between two kills")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    options = parser.parse_args()

    with database(options.database) as (home, url), contextlib.ExitStack() as servers:
        os.environ.update(ORCHESTRATOR_DATABASE_URL=url, ORCHESTRATOR_HOME=str(home / "bench"), **SETTINGS)
        import django

        django.setup()
        from apps.server_services.models import ServiceRun
        from tests.server_services import chaos
        from tests.server_services.leadership_settings import SCHEDULER_INTERVAL_SECONDS

        started = 0

        def start() -> object:
            nonlocal started
            started += 1
            return servers.enter_context(server(home / f"server-{started}", url, **SETTINGS))

        running = [start() for _ in range(options.servers)]
        anchor_base = datetime.now(UTC)
        batches = max(1, int(options.seconds / options.restart_every))
        per_batch = -(-options.deployments // batches)
        deployment_ids: list = []
        kills: list[datetime] = []
        deadline = time.monotonic() + options.seconds
        while len(deployment_ids) < options.deployments or time.monotonic() < deadline:
            if len(deployment_ids) < options.deployments:
                count = min(per_batch, options.deployments - len(deployment_ids))
                deployment_ids += chaos.deployments_create(
                    count=count, anchor_base=anchor_base, label=f"batch-{len(kills)}"
                )
            time.sleep(options.restart_every)
            victim = running.pop(0)
            kills.append(datetime.now(UTC))
            chaos.kill_tree(victim.process.pid)
            victim.process.wait()
            running.append(start())

        expected = len(deployment_ids) * len(chaos.expected_times(anchor_base))
        wait_until = time.monotonic() + 120
        while len(chaos.scheduled_runs()) < expected and time.monotonic() < wait_until:
            time.sleep(0.5)
        found, duplicates, missing = chaos.duplicates_and_missing(deployment_ids, anchor_base)
        passes = list(
            ServiceRun.objects.filter(service="scheduler", skipped=False)
            .order_by("started_at")
            .values_list("started_at", flat=True)
        )
        skipped = ServiceRun.objects.filter(service="scheduler", skipped=True).count()
        takeovers = [
            min(((moment - killed).total_seconds() for moment in passes if moment > killed), default=float("inf"))
            for killed in kills
        ]
        gaps = [(later - earlier).total_seconds() for earlier, later in zip(passes, passes[1:], strict=False)]
        overlaps = chaos.overlapping_passes("scheduler")

    print(f"database: {options.database}; {options.servers} servers, {len(kills)} killed with SIGKILL and restarted")
    print(f"deployments: {len(deployment_ids)}; scheduled runs: {found} (expected {expected})")
    print(f"duplicate runs: {duplicates}; missing runs: {missing}")
    print(f"scheduler passes: {len(passes)} ran, {skipped} skipped (lock held elsewhere), {overlaps} overlapping")
    print(
        f"next pass after a kill: max {max(takeovers):.1f}s, mean {sum(takeovers) / len(takeovers):.1f}s; "
        f"longest gap between passes: {max(gaps, default=0):.1f}s (interval {SCHEDULER_INTERVAL_SECONDS}s)"
    )
    ok = duplicates == 0 and missing == 0 and overlaps == 0 and max(gaps, default=0) < 2 * SCHEDULER_INTERVAL_SECONDS
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
