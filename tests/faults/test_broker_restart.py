"""Redis restarted (killed, nothing persisted) while a celery pool has runs queued: no run is lost and none runs
twice (docs/faults.md). Redis is a throwaway server of this test: the shared one on 6379 serves other test runs."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.conftest import OwnRedis, figures, wait_until
from tests.support.server import sqlite_pass_only, start_server
from tests.workers.conftest import FLOWS
from tests.workers.test_celery_pool import CeleryCluster

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, sqlite_pass_only]

REPOSITORY = Path(__file__).resolve().parents[2]
QUEUED = 10
DURING_OUTAGE = 4
REDIS_DOWN_SECONDS = 2.0


def test_a_redis_restart_loses_no_queued_celery_run_and_runs_none_twice(tmp_path: Path, own_redis: OwnRedis) -> None:
    """Redis without persistence forgets its queues when it restarts: the server must send those runs again, and a
    message that survives in a worker's prefetch must not run its run a second time."""
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "flows.py").write_text(FLOWS)
    log = tmp_path / "executions.log"
    settings = {
        "ORCHESTRATOR_BROKER_URL": own_redis.url,
        "DJANGO_SETTINGS_MODULE": "tests.faults.celery_settings",
        "PYTHONPATH": str(REPOSITORY),
        "CELERY_POOL_TEST_PREFIX": f"orchestrator-faults-{uuid.uuid4().hex[:8]}:",
    }
    with start_server(home=tmp_path / "server", settings=settings) as server:
        cluster = CeleryCluster(server, flows_dir, tmp_path)
        try:
            pool = cluster.pool()
            deployment = cluster.deployment(pool, "flows.py:record")
            cluster.start_celery_worker(pool, "--limit", "1")
            runs = [cluster.create_run(deployment, log=str(log), seconds=0.3)["id"] for _ in range(QUEUED)]
            executed = lambda: len(log.read_text().split()) if log.exists() else 0  # noqa: E731
            wait_until(lambda: executed() >= 1, 60, "no run started on the Celery worker")
            queued_at_kill = QUEUED - executed()
            own_redis.kill()
            runs += [cluster.create_run(deployment, log=str(log), seconds=0.3)["id"] for _ in range(DURING_OUTAGE)]
            time.sleep(REDIS_DOWN_SECONDS)
            own_redis.start()
            back = time.monotonic()
            finished = cluster.wait_final(runs, timeout=120)
            all_done_in = time.monotonic() - back
            time.sleep(2.5)  # a re-sent message arriving late must not run anything again
            executions = Counter(log.read_text().split())
        finally:
            cluster.stop_workers()
            cluster.api.close()
    states = Counter(run["state_name"] for run in finished)
    twice = [run_id for run_id, count in executions.items() if count > 1]
    figures(
        "redis restart",
        runs=len(runs),
        queued_at_kill=queued_at_kill,
        created_during_outage=DURING_OUTAGE,
        final_states=dict(states),
        executions=sum(executions.values()),
        executed_twice=len(twice),
        lost=len(set(runs) - set(executions)),
        all_done_seconds_after_redis_back=f"{all_done_in:.1f}",
    )
    assert states == {"Completed": len(runs)}, states
    assert not twice, twice
    assert set(executions) == set(runs)
