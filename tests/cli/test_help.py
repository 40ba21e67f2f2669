"""The CLI's front: `orchestrator --help` lists the orchestrator's command groups, not Django's internals, whose
commands stay reachable under `orchestrator django ...`; a command's help shows only its own options."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import sqlite_pass_only

# Profiles and help are files and text: no command here uses the suite's database.
pytestmark = sqlite_pass_only

GROUPS = ["server", "config", "deploy", "deployment", "flow-run", "work-pool", "work-queue", "worker", "version"]


@pytest.mark.parametrize("args", [(), ("--help",), ("help",), ("-h",)])
def test_the_front_lists_our_command_groups_with_one_line_each(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A newcomer sees what the product does, in the order they will need it."""
    result = run_orchestrator(*args, env=orchestrator_env(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rule = next(index for index, line in enumerate(lines) if line.startswith("─"))
    listed = [line.split()[0] for line in lines[rule + 1 :] if line.strip()]
    assert listed[: len(GROUPS) - 1] == GROUPS[:-1]
    assert "version" in listed and "django" in listed
    for internal in ("flush", "startproject", "testserver", "sqlflush", "makemigrations"):
        assert internal not in listed
    assert all(line == line.rstrip() for line in result.stdout.splitlines())


def test_a_command_help_shows_no_django_plumbing(tmp_path: Path) -> None:
    """`--settings`, `--pythonpath` and friends say nothing to a user of `deploy`."""
    result = run_orchestrator("deploy", "--help", env=orchestrator_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "--name" in result.stdout
    for plumbing in ("--settings", "--pythonpath", "--traceback", "--no-color", "--verbosity", "--skip-checks"):
        assert plumbing not in result.stdout


def test_help_for_one_command_and_djangos_commands_stay_reachable(tmp_path: Path) -> None:
    env = orchestrator_env(tmp_path)
    assert "--pool" in run_orchestrator("help", "deploy", env=env).stdout
    django = run_orchestrator("django", env=env)
    assert django.returncode == 0 and "migrate" in django.stdout and "flush" in django.stdout
    check = run_orchestrator("django", "check", env=env)
    assert check.returncode == 0 and "no issues" in check.stdout
    assert run_orchestrator("changepassword", "--help", env=env).returncode == 0
