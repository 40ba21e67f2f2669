"""Retention over a simulated month: runs arrive every day, the retention service runs every day, and the database
size must level off within 10% of its steady state.

A fake "now" advances day by day. Each day gets `--runs-per-day` x `--scale` finished flow runs, each with
`--tasks` task runs, their state histories (3 states a run), `--logs` log lines and the outbox events of their
state changes, written in bulk with timestamps spread over that day; then `retention_delete_expired(now=end of
day)` runs (with ORCHESTRATOR_RETENTION_DAYS = `--retention-days`). On PostgreSQL, a plain VACUUM (ANALYZE) follows
each day, as autovacuum would have done within a real day. Prints the database size and the rows kept each day,
the steady state (the mean size of the days after the retention period has filled), and whether every day from
then on stays within 10% of it.

    .venv/bin/python benchmarks/retention.py [--database sqlite|postgresql] [--days 30] [--retention-days 7]
        [--runs-per-day 100000] [--scale 0.01]      # --scale 1 simulates the full 100,000 runs a day
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import database  # noqa: E402

TOLERANCE = 0.10
START = datetime(2026, 1, 1, tzinfo=UTC)


def day_write(*, day: datetime, runs: int, tasks: int, logs: int, flow) -> None:
    """One day of finished runs, as the engine would have left them (bulk, for speed)."""
    from apps.events.models import Event
    from apps.logs.models import Log
    from apps.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState

    step = timedelta(seconds=86400 / max(1, runs))
    flow_runs, flow_states, task_runs, task_states, lines, events = [], [], [], [], [], []
    for index in range(runs):
        start = day + index * step
        end = start + timedelta(seconds=30)
        run = FlowRun(
            id=uuid.uuid4(),
            flow=flow,
            name=f"run-{day:%m%d}-{index}",
            state_id=uuid.uuid4(),
            state_type="COMPLETED",
            state_name="Completed",
            state_timestamp=end,
            start_time=start,
            end_time=end,
            expected_start_time=start,
            run_count=1,
            total_run_time=30.0,
            parameters={"day": f"{day:%Y-%m-%d}", "index": index},
            work_pool_name="simulated",
        )
        flow_runs.append(run)
        for offset, (state_type, name) in enumerate((("PENDING", "Pending"), ("RUNNING", "Running"))):
            flow_states.append(
                FlowRunState(flow_run=run, type=state_type, name=name, timestamp=start + timedelta(seconds=offset))
            )
        flow_states.append(
            FlowRunState(id=run.state_id, flow_run=run, type="COMPLETED", name="Completed", timestamp=end)
        )
        for task_index in range(tasks):
            task = TaskRun(
                id=uuid.uuid4(),
                flow_run=run,
                task_key=f"task-{task_index}",
                name=f"task-{task_index}-{index}",
                state_type="COMPLETED",
                state_name="Completed",
                state_timestamp=end,
                start_time=start,
                end_time=end,
            )
            task_runs.append(task)
            for state_type, name in (("PENDING", "Pending"), ("RUNNING", "Running"), ("COMPLETED", "Completed")):
                task_states.append(TaskRunState(task_run=task, type=state_type, name=name, timestamp=start))
        for line in range(logs):
            lines.append(
                Log(flow_run=run, message=f"step {line} of run {index}: processed 1000 records", timestamp=start)
            )
        for state in ("Pending", "Running", "Completed"):
            events.append(
                Event(
                    name="flow_run.state_changed",
                    resource_type="flow_run",
                    resource_id=run.id,
                    payload={"state": state, "flow_run": str(run.id)},
                    occurred=start,
                )
            )
    batch = 2000
    FlowRun.objects.bulk_create(flow_runs, batch_size=batch)
    FlowRunState.objects.bulk_create(flow_states, batch_size=batch)
    TaskRun.objects.bulk_create(task_runs, batch_size=batch)
    TaskRunState.objects.bulk_create(task_states, batch_size=batch)
    Log.objects.bulk_create(lines, batch_size=batch)
    Event.objects.bulk_create(events, batch_size=batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--retention-days", type=int, default=7)
    parser.add_argument("--runs-per-day", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=0.01, help="fraction of --runs-per-day simulated")
    parser.add_argument("--tasks", type=int, default=3, help="task runs per flow run")
    parser.add_argument("--logs", type=int, default=5, help="log lines per flow run")
    options = parser.parse_args()
    runs_per_day = max(1, round(options.runs_per_day * options.scale))

    with database(options.database) as (home, url):
        os.environ.update(
            ORCHESTRATOR_DATABASE_URL=url,
            ORCHESTRATOR_HOME=str(home),
            ORCHESTRATOR_RETENTION_DAYS=str(options.retention_days),
            ORCHESTRATOR_RETENTION_PASS_SECONDS="3600",
            DJANGO_SETTINGS_MODULE="orchestrator.settings",
        )
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", interactive=False, verbosity=0)
        from apps.flows.services import flow_get_or_create
        from apps.runs.models import FlowRun
        from apps.server_services.database import database_size, database_vacuum
        from apps.server_services.retention import retention_delete_expired

        flow = flow_get_or_create(name="retention-simulation")[0]
        print(
            f"{options.database}: {runs_per_day} runs a day ({options.runs_per_day} x {options.scale}), "
            f"{options.tasks} task runs and {options.logs} log lines each, retention {options.retention_days} days"
        )
        print(f"{'day':>4} {'runs kept':>10} {'deleted':>9} {'retention s':>11} {'size MB':>9}")
        sizes: list[int] = []
        for day_number in range(options.days):
            day = START + timedelta(days=day_number)
            day_write(day=day, runs=runs_per_day, tasks=options.tasks, logs=options.logs, flow=flow)
            started = time.perf_counter()
            deleted = retention_delete_expired(now=day + timedelta(days=1))
            took = time.perf_counter() - started
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("VACUUM (ANALYZE)")  # what autovacuum does within a real day
            else:
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes.append(database_size())
            print(
                f"{day_number + 1:>4} {FlowRun.objects.count():>10} {deleted.get('flow_runs', 0):>9} "
                f"{took:>11.2f} {sizes[-1] / 1_048_576:>9.1f}"
            )
        # Full from the day after the retention period has filled (one more day for cut-off boundaries).
        settled = sizes[options.retention_days + 1 :]
        if not settled:
            print("not enough days to reach a steady state: use --days > --retention-days + 1")
            return 1
        steady = sum(settled) / len(settled)
        worst = max(abs(size - steady) / steady for size in settled)
        print(
            f"steady state: {steady / 1_048_576:.1f} MB (mean of days {options.retention_days + 2}-{options.days}); "
            f"largest deviation {worst:.1%} (limit {TOLERANCE:.0%}); peak {max(sizes) / 1_048_576:.1f} MB"
        )
        before, after = database_vacuum()
        print(f"vacuum: {before / 1_048_576:.1f} MB -> {after / 1_048_576:.1f} MB")
        ok = worst <= TOLERANCE
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
