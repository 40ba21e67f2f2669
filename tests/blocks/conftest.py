"""Each blocks test has its own key file (a fresh ORCHESTRATOR_HOME) and no ORCHESTRATOR_ENCRYPTION_KEY."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import release_database_connections


@pytest.fixture(autouse=True)
def key_home(settings: Any, tmp_path: Path) -> Iterator[Path]:
    from apps.blocks import encryption

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    settings.ORCHESTRATOR_HOME = home
    settings.ENCRYPTION_KEYS = None
    encryption.forget_keys()
    yield home
    encryption.forget_keys()


@pytest.fixture(scope="session", autouse=True)
def in_process_connections_released(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """The in-process client's ORM threads (the CLI tests) keep connections to the test database; PostgreSQL
    refuses to drop a database that has sessions, so they are closed before pytest-django drops it."""
    yield
    with django_db_blocker.unblock():
        release_database_connections()
