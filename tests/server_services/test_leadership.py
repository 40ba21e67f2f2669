"""One pass of a singleton service at a time across processes: the database lock, and the record of a skipped pass."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from apps.server_services.leadership import advisory_lock_key, service_lock
from apps.server_services.models import ServiceLease, ServiceRun
from apps.server_services.services import service_run
from tests.server_services.helpers import database_url_of_this_test, services_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def held_elsewhere(name: str) -> Iterator[None]:
    """The service's lock as another process holds it: its own PostgreSQL session, or a running SQLite lease."""
    if connection.vendor == "postgresql":
        import psycopg

        with psycopg.connect(database_url_of_this_test(), autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", [advisory_lock_key(name)])
            yield
        return
    ServiceLease.objects.create(service=name, holder="another host", expires_at=timezone.now() + timedelta(hours=1))
    try:
        yield
    finally:
        ServiceLease.objects.filter(service=name).delete()


def test_a_pass_while_another_process_holds_the_lock_is_skipped_and_recorded_as_such() -> None:
    """Two servers on one database must not run the scheduler at once; `services ls` shows who stood aside."""
    with held_elsewhere("pause_timeouts"):
        record = service_run(name="pause_timeouts")

    assert (record.skipped, record.result, record.error) == (True, None, None)
    assert service_run(name="pause_timeouts").skipped is False  # released: the next pass runs
    assert ServiceRun.objects.filter(skipped=True).count() == 1


def test_the_lock_is_free_again_after_a_pass_even_a_failing_one(settings) -> None:
    """A failed pass must not keep the service from running on the next interval, here or on another server."""
    settings.RETENTION_DAYS = "thirty"
    assert service_run(name="retention").error is not None

    with service_lock(name="retention") as held:
        assert held


def test_a_second_holder_is_refused_while_the_first_holds_it() -> None:
    """The lock is exclusive within one process too (the services' worker has several threads)."""
    with service_lock(name="scheduler") as first, service_lock(name="scheduler") as second:
        assert (first, second) == (True, False)
    with service_lock(name="scheduler") as again:
        assert again


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_an_expired_lease_of_a_dead_process_is_taken_over() -> None:
    """On SQLite a killed server cannot release its lease: it must expire rather than block the service forever."""
    ServiceLease.objects.create(service="late_runs", holder="killed", expires_at=timezone.now() - timedelta(seconds=1))

    assert service_run(name="late_runs").skipped is False
    assert ServiceLease.objects.get(service="late_runs").expires_at <= timezone.now()  # released after the pass


HOLD_AND_WAIT = """
import sys, time, django
django.setup()
from apps.server_services.leadership import service_lock
with service_lock(name="scheduler") as held:
    print("held" if held else "refused", flush=True)
    time.sleep(60)
"""


def test_a_lock_held_by_a_killed_process_is_taken_over() -> None:
    """A server killed mid-pass must not stop the scheduler everywhere: PostgreSQL frees its lock with its
    connection, and on SQLite its lease runs out (ORCHESTRATOR_SERVICE_LEASE_SECONDS)."""
    env = services_env(Path(tempfile.mkdtemp()), ORCHESTRATOR_SERVICE_LEASE_SECONDS="1")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AND_WAIT], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with service_lock(name="scheduler") as held:
            assert not held
    finally:
        holder.kill()
        holder.wait()
    killed = time.monotonic()

    def free() -> bool:
        with service_lock(name="scheduler") as held:
            return held

    wait_for(free, timeout=10, what="the killed holder's lock to be free")
    assert time.monotonic() - killed < (1 if connection.vendor == "postgresql" else 3)
