"""One pass of a singleton service at a time, across processes and hosts sharing the database.

PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection of its own, held for the pass; the
database releases it when that connection ends, so a killed server frees it at once. SQLite: a lease row
(ServiceLease) taken with a conditional UPDATE, renewed while the pass runs, that expires when its process dies.
Design: docs/services.md, "Leadership".
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from apps.server_services.models import ServiceLease

# The namespace of our advisory lock keys, so another application's locks on the same database never collide.
LOCK_KEY_PREFIX = "orchestrator.service:"


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for a service's advisory lock."""
    digest = hashlib.sha256((LOCK_KEY_PREFIX + name).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def service_lock(*, name: str) -> Iterator[bool]:
    """Yield True when this process holds the service's lock for the block, False when another process does."""
    if connection.vendor == "postgresql":
        with _advisory_lock(name) as held:
            yield held
    else:
        with _lease(name) as held:
            yield held


@contextmanager
def _advisory_lock(name: str) -> Iterator[bool]:
    import psycopg

    # Not Django's connection: the service's own work may close or replace it (a failed transaction, a
    # CONN_MAX_AGE recycle), and the lock must last exactly as long as the pass.
    params = connection.settings_dict
    conninfo = psycopg.conninfo.make_conninfo(
        **{
            key: str(value)
            for key, value in {
                "dbname": params["NAME"],
                "user": params.get("USER"),
                "password": params.get("PASSWORD"),
                "host": params.get("HOST"),
                "port": params.get("PORT"),
            }.items()
            if value
        },
        application_name=f"orchestrator service lock: {name}",
    )
    with psycopg.connect(conninfo, autocommit=True) as lock_connection:
        key = advisory_lock_key(name)
        row = lock_connection.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
        held = bool(row and row[0])
        try:
            yield held
        finally:
            if held and not lock_connection.closed:
                lock_connection.execute("SELECT pg_advisory_unlock(%s)", [key])


def _holder() -> str:
    return f"{socket.gethostname()[:80]} pid {os.getpid()} {uuid.uuid4().hex[:12]}"


def _lease_take(name: str, holder: str, seconds: float) -> bool:
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    if ServiceLease.objects.filter(service=name, expires_at__lte=now).update(holder=holder, expires_at=until):
        return True
    try:
        with transaction.atomic():
            ServiceLease.objects.create(service=name, holder=holder, expires_at=until)
    except IntegrityError:  # the row exists and its lease runs: another process has the pass
        return False
    return True


def _lease_renew(name: str, holder: str, seconds: float, stop: threading.Event) -> None:
    try:
        while not stop.wait(seconds / 3):
            until = timezone.now() + timedelta(seconds=seconds)
            ServiceLease.objects.filter(service=name, holder=holder).update(expires_at=until)
    finally:
        connections.close_all()  # this thread's own connections


@contextmanager
def _lease(name: str) -> Iterator[bool]:
    seconds = float(settings.SERVICE_LEASE_SECONDS)
    holder = _holder()
    if not _lease_take(name, holder, seconds):
        yield False
        return
    stop = threading.Event()
    renewer = threading.Thread(
        target=_lease_renew, args=(name, holder, seconds, stop), name=f"lease {name}", daemon=True
    )
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        ServiceLease.objects.filter(service=name, holder=holder).update(expires_at=timezone.now())
