"""The concurrency tests use the in-process client (CLI, SDK) in this process: no server, whatever the environment
says, and its database connections closed before the test database is dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.client import release_database_connections


@pytest.fixture(autouse=True)
def ephemeral_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ORCHESTRATOR_API_URL", raising=False)
    yield


@pytest.fixture(scope="session", autouse=True)
def in_process_connections_released(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """PostgreSQL refuses to drop a database that has sessions: the ORM threads' connections are closed first."""
    yield
    with django_db_blocker.unblock():
        release_database_connections()
