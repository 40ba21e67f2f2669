"""Migration 0002 turns each task run id of the old `active_slots` list into a lease, so slots held during an
upgrade stay held (and expire if nobody renews them)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("concurrency", "0001_initial")]
AFTER = [("concurrency", "0002_leases")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_active_slots_become_leases_and_back() -> None:
    old = _migrate(BEFORE)
    old.get_model("concurrency", "ConcurrencyLimit").objects.create(tag="db", limit=2, active_slots=["run-a", "run-b"])
    new = _migrate(AFTER)
    leases = new.get_model("concurrency", "ConcurrencyLease").objects.order_by("holder_id")
    assert [(lease.limit.tag, lease.holder_kind, lease.holder_id, lease.slots) for lease in leases] == [
        ("db", "task_run", "run-a", 1),
        ("db", "task_run", "run-b", 1),
    ]
    old = _migrate(BEFORE)
    assert sorted(old.get_model("concurrency", "ConcurrencyLimit").objects.get(tag="db").active_slots) == [
        "run-a",
        "run-b",
    ]
    _migrate(AFTER)
