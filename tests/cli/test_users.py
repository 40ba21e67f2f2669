"""Django's user commands through the `orchestrator` CLI on a fresh home: `createsuperuser --noinput` (what an
install script runs) and `changepassword` make the schema they need first, and the user logs in with the result."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import sqlite_pass_only

# A fresh home's own SQLite database, not the suite's.
pytestmark = sqlite_pass_only

CHECK_PASSWORD = (
    "from django.contrib.auth import authenticate; from apps.accounts.roles import role_of; "
    "user = authenticate(username='ann', password='{password}'); print('login:', role_of(user))"
)


def logs_in_as(env: dict[str, str], password: str) -> str:
    result = run_orchestrator("django", "shell", "-c", CHECK_PASSWORD.format(password=password), env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_createsuperuser_and_changepassword_work_on_a_fresh_home(tmp_path: Path) -> None:
    env = orchestrator_env(
        tmp_path / "home",
        DJANGO_SUPERUSER_USERNAME="ann",
        DJANGO_SUPERUSER_PASSWORD="first-long-password",
        DJANGO_SUPERUSER_EMAIL="ann@example.com",
    )
    created = run_orchestrator("createsuperuser", "--noinput", env=env)
    assert created.returncode == 0, created.stderr
    assert "Superuser created successfully." in created.stdout
    assert logs_in_as(env, "first-long-password") == "login: Admin"

    again = run_orchestrator("createsuperuser", "--noinput", env=env)
    assert again.returncode != 0 and "already taken" in again.stderr and "Traceback" not in again.stderr

    # changepassword reads the new password twice; with no terminal, from stdin.
    changed = run_orchestrator("changepassword", "ann", env=env, input="second-long-password\n" * 2)
    assert changed.returncode == 0, changed.stderr
    assert "Password changed successfully for user 'ann'" in changed.stdout
    assert logs_in_as(env, "second-long-password") == "login: Admin"
    assert logs_in_as(env, "first-long-password") == "login: None"

    unknown = run_orchestrator("django", "changepassword", "bob", env=env)
    assert unknown.returncode != 0 and "user 'bob' does not exist" in unknown.stderr
