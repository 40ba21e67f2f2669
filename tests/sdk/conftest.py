"""Fixtures for the SDK tests (the readers they share are in tests/sdk/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from orchestrator.client import release_database_connections
from tests.support.s3 import S3Server, moto_server
from tests.support.server import RunningServer


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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Server]:
    """moto's S3 server on loopback, started once for the session (tests/support/s3.py)."""
    with moto_server() as server:
        yield server


@pytest.fixture
def s3(s3_endpoint: S3Server) -> S3Server:
    """The S3 server with a new, empty bucket for this test."""
    return s3_endpoint.new_bucket()


@pytest.fixture
def server_client(orchestrator_server_process: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """This process's client pointed at a real server with its admin key; returns a function that switches the
    key (e.g. to a write-scoped one)."""
    server = orchestrator_server_process
    monkeypatch.setenv("ORCHESTRATOR_API_URL", server.api_url)
    monkeypatch.setenv("ORCHESTRATOR_API_KEY", server.api_key)

    def use_key(scope: str) -> None:
        with server.api_client() as api:
            answer = api.post("api_keys/", json={"name": f"sdk-{scope}", "scope": scope})
        assert answer.status_code == 201, answer.text
        monkeypatch.setenv("ORCHESTRATOR_API_KEY", answer.json()["key"])

    return use_key
