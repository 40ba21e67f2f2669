"""`orchestrator server database reset|upgrade` on the suite's database engine (SQLite or PostgreSQL)."""

from __future__ import annotations

import os
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


def test_reset_refuses_while_another_process_uses_the_database(env: dict[str, str], database_url: str) -> None:
    """A reset under a running server deleted the file it kept writing to: everything after was lost. While any
    other process holds the database, reset refuses and names it; once it is gone, reset works."""
    upgraded_with_data(env, database_url)
    with connect(database_url) as holder:
        holder.execute("SELECT count(*) FROM auth_group").fetchone()
        refused = run_orchestrator("server", "database", "reset", "--yes", env=env)
        assert refused.returncode != 0
        assert refused.stderr.startswith("error: ") and "is in use by" in refused.stderr, refused.stderr
        if database_url.startswith("sqlite"):
            assert str(os.getpid()) in refused.stderr  # the test process, named by its pid
        else:
            assert "1 other process(es)" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert marker_groups(database_url) == 1  # nothing was touched
    done = run_orchestrator("server", "database", "reset", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert marker_groups(database_url) == 0


def test_reset_creates_the_admin_user_again_and_says_where_its_password_is(
    env: dict[str, str], database_url: str
) -> None:
    """After a reset the admin user was missing until the next start: now the reset makes it and says how."""
    upgraded_with_data(env, database_url)
    result = run_orchestrator("server", "database", "reset", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert "created the admin user: username admin; its password is in " in result.stdout
    with connect(database_url) as connection:
        assert connection.execute("SELECT count(*) FROM auth_user WHERE is_superuser").fetchone()[0] == 1


def test_upgrade_creates_a_postgresql_database_that_does_not_exist(tmp_path: Path, database_url: str) -> None:
    """`FATAL: database ... does not exist` was a newcomer's first error: the role may create it, so it does."""
    if not database_url.startswith("postgres"):
        return  # SQLite creates its file by itself; this is about PostgreSQL (the suite runs on both)
    import uuid

    import psycopg

    missing = database_url.rsplit("/", 1)[0] + f"/orch_missing_{uuid.uuid4().hex[:12]}"
    env = orchestrator_env(tmp_path, ORCHESTRATOR_DATABASE_URL=missing)
    try:
        result = run_orchestrator("server", "database", "upgrade", env=env)
        assert result.returncode == 0, result.stderr
        assert "created PostgreSQL database 'orch_missing_" in result.stdout
        assert "database upgraded: applied" in result.stdout
    finally:
        with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{missing.rsplit("/", 1)[1]}" WITH (FORCE)')
