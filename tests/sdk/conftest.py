"""Fixtures for the SDK tests (the readers they share are in tests/sdk/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.client import release_database_connections


@pytest.fixture(autouse=True)
def ephemeral_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process tests never talk to a server, whatever the environment running the suite says."""
    monkeypatch.delenv("ORCHESTRATOR_API_URL", raising=False)
    yield


@pytest.fixture(scope="session", autouse=True)
def sdk_connections_released(django_db_setup, django_db_blocker) -> Iterator[None]:
    """The SDK's ORM threads keep their connections to the test database; PostgreSQL refuses to drop a
    database that has sessions, so they are closed before pytest-django drops it."""
    yield
    with django_db_blocker.unblock():
        release_database_connections()
