"""`orchestrator server database reset|upgrade` on the suite's database engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import throwaway_database


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh database: a new SQLite file, or a throwaway PostgreSQL database."""
    with throwaway_database(tmp_path) as url:
        yield url


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return orchestrator_env(tmp_path, ORCHESTRATOR_DATABASE_URL=database_url)


@contextmanager
def connect(database_url: str) -> Iterator[Any]:
    """A DB-API connection to the database the CLI uses, opened without Django (autocommit)."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    else:
        import psycopg

        connection = psycopg.connect(database_url, autocommit=True)
    try:
        yield connection
    finally:
        connection.close()


def marker_groups(database_url: str) -> int:
    """How many `marker` rows auth_group holds: a table every schema has, with SQL both engines accept."""
    with connect(database_url) as connection:
        return connection.execute("SELECT count(*) FROM auth_group WHERE name = 'marker'").fetchone()[0]


def upgraded_with_data(env: dict[str, str], database_url: str) -> None:
    assert run_orchestrator("server", "database", "upgrade", env=env).returncode == 0
    with connect(database_url) as connection:
        connection.execute("INSERT INTO auth_group (name) VALUES ('marker')")
    assert marker_groups(database_url) == 1


def test_upgrade_applies_migrations_then_reports_up_to_date(env: dict[str, str]) -> None:
    """`upgrade` after an install must be safe to run twice and say what it did."""
    first = run_orchestrator("server", "database", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("database upgraded: applied ")
    second = run_orchestrator("server", "database", "upgrade", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "database up to date"


def test_reset_asks_and_anything_but_yes_aborts_keeping_the_data(env: dict[str, str], database_url: str) -> None:
    """Dropping every run is irreversible: "n", or no answer at all (a script without --yes), changes nothing."""
    upgraded_with_data(env, database_url)
    for answer in ("n\n", ""):
        result = run_orchestrator("server", "database", "reset", env=env, input=answer)
        assert result.returncode == 1
        assert "Reset the database? [y/N]" in result.stdout
        assert result.stderr.strip() == "error: aborted; the database was not changed"
        assert marker_groups(database_url) == 1


def test_reset_answer_yes_drops_the_data(env: dict[str, str], database_url: str) -> None:
    """Typing `yes` at the prompt is the interactive way to confirm."""
    upgraded_with_data(env, database_url)
    result = run_orchestrator("server", "database", "reset", env=env, input="yes\n")
    assert result.returncode == 0, result.stderr
    assert marker_groups(database_url) == 0


def test_reset_with_yes_drops_everything_and_reapplies_the_schema(env: dict[str, str], database_url: str) -> None:
    """--yes is for scripts: no prompt, an empty database with the full schema afterwards."""
    upgraded_with_data(env, database_url)
    result = run_orchestrator("server", "database", "reset", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert "Reset the database?" not in result.stdout
    assert "database reset: " in result.stdout and "applied " in result.stdout
    assert marker_groups(database_url) == 0
    again = run_orchestrator("server", "database", "upgrade", env=env)
    assert again.stdout.strip() == "database up to date"
