"""Seed a database with N flow runs (default 1,000,000) for measuring the UI and the admin at scale.

This is a fixture for measurements, not product code: it writes rows straight into the tables (executemany on
SQLite, COPY on PostgreSQL, in batches), bypassing the engine, so that a million runs take minutes instead of
hours. The runs are spread over the last 30 days with a realistic mix of states (mostly Completed, some Failed,
Crashed, Cancelled, Late, Scheduled, Running, Pending), 50 flows, 150 deployments, 5 work pools, tags, and their
state history rows. One run, named `big-run`, has 10,000 task runs (with upstream edges, in layers of 100) and
100,000 log lines.

    .venv/bin/python benchmarks/ui_seed.py [--database sqlite|postgresql] [--runs 1000000] [--reset]

The database is the one `ui_pages.py` measures: SQLite in `--home` (default /tmp/orch-ui-bench), or the
PostgreSQL database `orch_ui_bench` (override either with `--database-url`). Prints how long each part took.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_HOME = "/tmp/orch-ui-bench"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
BATCH = 20_000
BIG_RUN_NAME = "big-run"
BIG_RUN_TASKS = 10_000
BIG_RUN_LOGS = 100_000

# (state type, state name, share): the final states of the runs older than a day.
STATE_MIX = [
    ("COMPLETED", "Completed", 0.88),
    ("FAILED", "Failed", 0.05),
    ("CRASHED", "Crashed", 0.005),
    ("CANCELLED", "Cancelled", 0.01),
    ("SCHEDULED", "Late", 0.005),
]
ADJECTIVES = (
    "amber ancient brave bright calm clever cosmic crimson daring eager fancy fierce gentle golden happy hidden "
    "jolly keen lively lucky merry mighty nimble noble olive proud quick quiet rapid shiny silent silver smooth "
    "snowy steady sunny swift tidy vivid witty"
).split()
ANIMALS = (
    "badger bear beaver bison camel cheetah cobra coyote crane deer dingo dolphin eagle falcon ferret finch fox "
    "gecko goose heron hyena ibis jackal koala lemur lynx marten moose newt otter panda parrot puffin quail "
    "raven salmon seal tapir toucan walrus wombat"
).split()
TAGS = ["etl", "nightly", "prod", "dev", "reporting", "ml", "critical", "team-a", "team-b", "team-c", "hourly"]
POOLS = ["default", "k8s-prod", "k8s-dev", "celery-etl", "gpu"]


def database_url(kind: str, home: str, given: str | None) -> str:
    """The database both ui_seed.py and ui_pages.py use unless told otherwise."""
    if given:
        return given
    if kind == "sqlite":
        return f"sqlite:///{Path(home) / 'orchestrator.db'}"
    return f"{PG_URL}/orch_ui_bench"


def setup_django(kind: str, home: str, url: str) -> None:
    """Point this process's Django at the benchmark database (created on PostgreSQL when missing)."""
    Path(home).mkdir(parents=True, exist_ok=True)
    for key in [key for key in os.environ if key.startswith("ORCHESTRATOR_")]:
        del os.environ[key]
    os.environ.update(ORCHESTRATOR_HOME=home, ORCHESTRATOR_DATABASE_URL=url)
    os.environ["DJANGO_SETTINGS_MODULE"] = "orchestrator.settings"
    if kind == "postgresql":
        import psycopg

        server, name = url.rsplit("/", 1)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                connection.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()


def drop_database(kind: str, home: str, url: str) -> None:
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Writer:
    """Bulk rows into one table: the model's columns in order, constant defaults computed once per table."""

    def __init__(self, model: Any) -> None:
        from django.db import connection

        self.connection = connection
        self.vendor = connection.vendor
        self.table = model._meta.db_table
        self.fields = [field for field in model._meta.concrete_fields]
        self.columns = [field.column for field in self.fields]
        self.defaults: dict[str, Any] = {}
        for field in self.fields:
            if field.has_default():  # a callable default (dict, list, now) is taken once per table
                self.defaults[field.attname] = self.value(field.get_default())
            elif field.null:
                self.defaults[field.attname] = None
        now = self.value(datetime.now(UTC))
        self.defaults.setdefault("updated", now)

    def value(self, value: Any) -> Any:
        """A Python value as this database stores it (what Django would write)."""
        if isinstance(value, dict | list):
            return json.dumps(value)
        if self.vendor == "sqlite":
            if isinstance(value, uuid.UUID):
                return value.hex
            if isinstance(value, datetime):
                return str(value.astimezone(UTC).replace(tzinfo=None))  # as Django writes it
            if isinstance(value, bool):
                return int(value)
        return value

    def write(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert rows (dicts of attname -> value already converted by `value`, missing ones take defaults)."""
        names = [field.attname for field in self.fields]
        defaults = self.defaults
        count = 0
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(tuple(row[name] if name in row else defaults[name] for name in names))
            if len(batch) >= BATCH:
                self._flush(batch)
                count += len(batch)
                batch = []
        if batch:
            self._flush(batch)
            count += len(batch)
        return count

    def _flush(self, batch: list[tuple[Any, ...]]) -> None:
        self.connection.ensure_connection()
        raw = self.connection.connection
        columns = ", ".join(f'"{column}"' for column in self.columns)
        if self.vendor == "sqlite":
            marks = ", ".join("?" for _ in self.columns)
            # Django's SQLite connection is in autocommit mode: without BEGIN every row would be a transaction.
            raw.execute("BEGIN")
            raw.executemany(f'INSERT INTO "{self.table}" ({columns}) VALUES ({marks})', batch)
            raw.execute("COMMIT")
        else:
            with raw.cursor() as cursor, cursor.copy(f'COPY "{self.table}" ({columns}) FROM STDIN') as copy:
                for row in batch:
                    copy.write_row(row)
            raw.commit()


def timed(label: str, action: Callable[[], int]) -> None:
    started = time.perf_counter()
    count = action()
    print(f"  {label:28} {count:>10,} rows  {time.perf_counter() - started:7.1f} s", flush=True)


def seed(runs: int, seed_value: int) -> None:
    from apps.deployments.models import Deployment
    from apps.flows.models import Flow
    from apps.logs.models import Log
    from apps.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState
    from apps.work_pools.models import WorkPool

    random.seed(seed_value)
    pools = [WorkPool.objects.get_or_create(name=name)[0] for name in POOLS]
    flows = [Flow.objects.get_or_create(name=f"flow-{index:02d}")[0] for index in range(50)]
    deployments = [
        Deployment.objects.get_or_create(
            flow=flow,
            name=f"deployment-{index}",
            defaults={"work_pool_name": pools[(number * 3 + index) % len(pools)].name, "tags": ["prod"]},
        )[0]
        for number, flow in enumerate(flows)
        for index in range(3)
    ]
    run_writer, state_writer = Writer(FlowRun), Writer(FlowRunState)
    value = run_writer.value
    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    span = (now - start).total_seconds()
    recent = now - timedelta(days=1)
    weights = [share for _, _, share in STATE_MIX]
    big_run: dict[str, Any] = {}
    state_rows: list[dict[str, Any]] = []

    def state_row(run_id: Any, state_type: str, name: str, at: datetime, message: str | None = None) -> Any:
        at_value = value(at)
        state_rows.append(
            {
                "id": value(uuid.uuid4()),
                "flow_run_id": run_id,
                "type": state_type,
                "name": name,
                "timestamp": at_value,
                "message": message,
                "created": at_value,
                "updated": at_value,
            }
        )
        return state_rows[-1]["id"]

    def flow_runs() -> Iterator[dict[str, Any]]:
        for index in range(runs):
            created = start + timedelta(seconds=span * index / runs)
            run_id = uuid.uuid4()
            run_id_value = value(run_id)
            deployment = deployments[random.randrange(len(deployments))] if random.random() < 0.85 else None
            flow = deployment.flow if deployment else flows[random.randrange(len(flows))]
            if index == runs - 3600:  # about an hour ago
                state_type, state_name = "COMPLETED", "Completed"
            elif created > recent and random.random() < 0.08:
                state_type, state_name = random.choice([("RUNNING", "Running"), ("PENDING", "Pending")])
            elif created > recent and random.random() < 0.3:
                state_type, state_name = "SCHEDULED", "Scheduled"
            else:
                state_type, state_name, _ = random.choices(STATE_MIX, weights)[0]
            duration = random.uniform(2, 600)
            expected = created + timedelta(seconds=30)
            started = expected + timedelta(seconds=random.uniform(0, 5))
            message = None
            row: dict[str, Any] = {}
            if state_type == "SCHEDULED":
                if state_name == "Scheduled":
                    expected = now + timedelta(seconds=random.uniform(60, 3 * 86400))
                state_id = state_row(run_id_value, "SCHEDULED", state_name, created)
                state_at = created
            else:
                state_row(run_id_value, "PENDING", "Pending", started - timedelta(seconds=1))
                state_at = started - timedelta(seconds=1)
                state_id = None
                if state_type != "PENDING":
                    state_at = started
                    state_id = state_row(run_id_value, "RUNNING", "Running", started)
                    row.update(start_time=value(started), run_count=1, estimated_start_time_delta=1.0)
                if state_type not in ("PENDING", "RUNNING"):
                    state_at = started + timedelta(seconds=duration)
                    if state_type == "FAILED":
                        message = "Flow run encountered an exception: ValueError('bad row in input')"
                    state_id = state_row(run_id_value, state_type, state_name, state_at, message)
                    row.update(end_time=value(state_at), total_run_time=duration)
                state_id = state_id or state_rows[-1]["id"]
            tags = random.sample(TAGS, random.randint(1, 3))
            row.update(
                id=run_id_value,
                created=value(created),
                updated=value(state_at),
                name=f"{random.choice(ADJECTIVES)}-{random.choice(ANIMALS)}",
                tags=json.dumps(tags),
                flow_id=value(flow.id),
                deployment_id=value(deployment.id) if deployment else None,
                auto_scheduled=value(deployment is not None),
                work_pool_name=deployment.work_pool_name if deployment else None,
                work_queue_name="default" if deployment else None,
                parameters=json.dumps({"batch": index % 100}),
                state_id=state_id,
                state_type=state_type,
                state_name=state_name,
                state_timestamp=value(state_at),
                state_message=message,
                expected_start_time=value(expected),
                next_scheduled_start_time=value(expected) if state_type == "SCHEDULED" else None,
            )
            if index == runs - 3600:
                row["name"] = BIG_RUN_NAME
                big_run.update(id=run_id, started=started)
            yield row

    def flow_runs_and_states() -> int:
        count = 0
        chunk: list[dict[str, Any]] = []
        for row in flow_runs():
            chunk.append(row)
            if len(chunk) >= BATCH:
                count += run_writer.write(chunk)
                state_writer.write(state_rows)
                chunk.clear()
                state_rows.clear()
        count += run_writer.write(chunk)
        state_writer.write(state_rows)
        state_rows.clear()
        return count

    timed("flow runs + state history", flow_runs_and_states)
    print(f"  {'':28} {FlowRunState.objects.count():>10,} state rows", flush=True)
    seed_big_run(big_run["id"], big_run["started"], Writer(TaskRun), Writer(TaskRunState), Writer(Log))
    from django.db import connection

    if connection.vendor == "postgresql":
        # What autovacuum would soon do for tables that grew this much: statistics for the planner, and the
        # visibility map that lets an index-only scan (a capped count) skip the table. SQLite is left as the
        # product leaves it: without ANALYZE statistics (with them, a column that is mostly NULL, such as
        # parent_task_run, looks useless to index and SQLite scans the table instead).
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"  {'vacuum, statistics':28} {'':>10}       {time.perf_counter() - started:7.1f} s", flush=True)


def seed_big_run(run_id: uuid.UUID, started: datetime, task_writer: Writer, state_writer: Writer, log_writer: Writer):
    """10,000 task runs in layers of 100, each fed by one or two task runs of the layer before; 100,000 logs."""
    value = task_writer.value
    layer_size = 100
    task_ids = [uuid.uuid4() for _ in range(BIG_RUN_TASKS)]
    run_value = value(run_id)
    states: list[dict[str, Any]] = []

    def task_runs() -> Iterator[dict[str, Any]]:
        for index, task_id in enumerate(task_ids):
            layer, position = divmod(index, layer_size)
            begin = started + timedelta(seconds=layer * 3 + position * 0.01)
            end = begin + timedelta(seconds=random.uniform(0.1, 2.5))
            inputs: dict[str, Any] = {}
            if layer:
                before = task_ids[(layer - 1) * layer_size : layer * layer_size]
                upstream = {before[position], before[random.randrange(layer_size)]}
                inputs = {"rows": [{"input_type": "task_run", "id": str(upstream_id)} for upstream_id in upstream]}
            state_type = "FAILED" if index % 997 == 0 else "COMPLETED"
            final_id = uuid.uuid4()
            for state_id, kind, at in (
                (uuid.uuid4(), "PENDING", begin),
                (uuid.uuid4(), "RUNNING", begin),
                (final_id, state_type, end),
            ):
                states.append(
                    {
                        "id": value(state_id),
                        "task_run_id": value(task_id),
                        "type": kind,
                        "name": kind.title(),
                        "timestamp": value(at),
                        "created": value(at),
                        "updated": value(at),
                    }
                )
            yield {
                "id": value(task_id),
                "created": value(begin),
                "updated": value(end),
                "name": f"process-{position}-{layer}",
                "tags": "[]",
                "flow_run_id": run_value,
                "task_key": f"process-{position}",
                "dynamic_key": str(layer),
                "task_inputs": json.dumps(inputs),
                "state_id": value(final_id),
                "state_type": state_type,
                "state_name": state_type.title(),
                "state_timestamp": value(end),
                "run_count": 1,
                "flow_run_run_count": 1,
                "expected_start_time": value(begin),
                "start_time": value(begin),
                "end_time": value(end),
                "total_run_time": (end - begin).total_seconds(),
            }

    def logs() -> Iterator[dict[str, Any]]:
        per_task = BIG_RUN_LOGS // BIG_RUN_TASKS
        for index in range(BIG_RUN_LOGS):
            task_index = index // per_task
            layer, position = divmod(task_index, layer_size)
            at = started + timedelta(seconds=layer * 3 + position * 0.01 + (index % per_task) * 0.001)
            level = 40 if index % 1000 == 0 else 30 if index % 100 == 0 else 10 if index % 7 == 0 else 20
            at_value = value(at)
            yield {
                "id": value(uuid.uuid4()),
                "created": at_value,
                "updated": at_value,
                "flow_run_id": run_value,
                "task_run_id": value(task_ids[task_index]),
                "name": "orchestrator.task_runs",
                "level": level,
                "message": f"processed batch {index % per_task} of task {task_index}: {random.randint(1, 9999)} rows",
                "timestamp": at_value,
            }

    timed("big run's task runs", lambda: task_writer.write(list(task_runs())))
    timed("their state history", lambda: state_writer.write(states))
    timed("big run's log lines", lambda: log_writer.write(logs()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--home", default=DEFAULT_HOME, help="ORCHESTRATOR_HOME (holds the SQLite file)")
    parser.add_argument("--database-url", help="another database than the default one of --database")
    parser.add_argument("--reset", action="store_true", help="drop the database first")
    parser.add_argument("--seed", type=int, default=11, help="random seed")
    options = parser.parse_args()
    if options.runs < 3600:
        parser.error("--runs must be 3600 or more (the big run is the one created an hour ago)")
    url = database_url(options.database, options.home, options.database_url)
    if options.reset:
        drop_database(options.database, options.home, url)
    setup_django(options.database, options.home, url)
    from django.core.management import call_command

    from apps.runs.models import FlowRun

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    if FlowRun.objects.exists():
        sys.exit(f"{url} already has flow runs: pass --reset to start again")
    print(f"seeding {options.runs:,} flow runs into {url}", flush=True)
    seed(options.runs, options.seed)
    print(f"done in {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
