"""Scheduler speed: 1,000 deployments with hourly interval schedules, on SQLite and on PostgreSQL.

Prints, per database, how long the first `schedule_upcoming_runs()` pass takes (it creates every upcoming
run up to the one-day horizon: about 25,000 runs with their Scheduled state and outbox event), how long an
idle pass takes (nothing to do), and a `mark_late_runs()` pass with nothing late. Targets: under 10 s and
under 1 s.

    .venv/bin/python benchmarks/scheduler.py [--deployments 1000] [--database sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import database, environment  # noqa: E402

TARGET_FIRST_PASS_SECONDS = 10.0
TARGET_IDLE_PASS_SECONDS = 1.0


def measure(deployment_count: int) -> dict[str, float]:
    """Run inside a process whose environment names the database (Django reads it once, at set-up)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from apps.deployments import schedules
    from apps.deployments.models import Deployment, DeploymentSchedule
    from apps.deployments.services import mark_late_runs, schedule_upcoming_runs
    from apps.flows.services import flow_get_or_create
    from apps.runs.models import FlowRun

    flows = [flow_get_or_create(name=f"bench-flow-{index}")[0] for index in range(10)]
    deployments = Deployment.objects.bulk_create(
        [
            Deployment(flow=flows[index % 10], name=f"bench-{index}", parameters={"n": index}, work_pool_name="bench")
            for index in range(deployment_count)
        ]
    )
    DeploymentSchedule.objects.bulk_create(
        [
            DeploymentSchedule(deployment=deployment, schedule=schedules.normalize({"interval": 3600}))
            for deployment in deployments
        ]
    )
    started = time.perf_counter()
    created = schedule_upcoming_runs()
    first_pass = time.perf_counter() - started
    started = time.perf_counter()
    created_again = schedule_upcoming_runs()
    idle_pass = time.perf_counter() - started
    started = time.perf_counter()
    late = mark_late_runs()
    late_pass = time.perf_counter() - started
    return {
        "deployments": deployment_count,
        "runs_created": created,
        "runs_in_database": FlowRun.objects.count(),
        "first_pass_seconds": round(first_pass, 3),
        "idle_pass_created": created_again,
        "idle_pass_seconds": round(idle_pass, 3),
        "late_pass_marked": late,
        "late_pass_seconds": round(late_pass, 3),
    }


def run(kind: str, deployment_count: int) -> dict[str, float]:
    with database(kind) as (home, database_url):
        env = environment(home, database_url)
        output = subprocess.run(
            [sys.executable, __file__, "--measure", "--deployments", str(deployment_count)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if output.returncode != 0:
            raise SystemExit(f"{kind}: the measurement failed:\n{output.stderr}")
        return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure:
        print(json.dumps(measure(arguments.deployments)))
        return
    kinds = ["sqlite", "postgresql"] if arguments.database == "both" else [arguments.database]
    failed = False
    for kind in kinds:
        result = run(kind, arguments.deployments)
        first_ok = result["first_pass_seconds"] < TARGET_FIRST_PASS_SECONDS
        idle_ok = result["idle_pass_seconds"] < TARGET_IDLE_PASS_SECONDS and result["idle_pass_created"] == 0
        failed = failed or not (first_ok and idle_ok)
        print(
            f"{kind:<10} {result['deployments']} deployments: first pass {result['first_pass_seconds']:.2f} s "
            f"({result['runs_created']} runs; target < {TARGET_FIRST_PASS_SECONDS:.0f} s: "
            f"{'ok' if first_ok else 'MISSED'}), idle pass {result['idle_pass_seconds']:.3f} s "
            f"({result['idle_pass_created']} runs; target < {TARGET_IDLE_PASS_SECONDS:.0f} s: "
            f"{'ok' if idle_ok else 'MISSED'}), late-runs pass {result['late_pass_seconds']:.3f} s"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
