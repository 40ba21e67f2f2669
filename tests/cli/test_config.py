"""`orchestrator config set|unset|view`: the profile file, precedence and the source column."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import sqlite_pass_only

# Profiles and help are files and text: no command here uses the suite's database.
pytestmark = sqlite_pass_only

API_URL = "ORCHESTRATOR_API_URL"


def view_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """`config view`'s table as {setting: (value, source)}."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0].startswith("ORCHESTRATOR_"):
            rows[cells[0]] = (" ".join(cells[1:-1]), cells[-1])
    return rows


def config_view(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    result = run_orchestrator("config", "view", env=env)
    assert result.returncode == 0, result.stderr
    return view_rows(result.stdout)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_view_lists_every_setting_with_default_source_on_a_fresh_home(tmp_path: Path) -> None:
    """A new user sees all settings and that none has been chosen yet."""
    rows = config_view(orchestrator_env(tmp_path))
    assert rows[API_URL] == ("", "default")
    assert rows["ORCHESTRATOR_DATABASE_URL"] == (f"sqlite:///{tmp_path / 'orchestrator.db'}", "default")
    assert rows["ORCHESTRATOR_HOME"] == (str(tmp_path), "env")


def test_set_persists_in_the_profile_and_view_says_profile(tmp_path: Path) -> None:
    """`config set` is how the server's URL is remembered between shells."""
    env = orchestrator_env(tmp_path)
    result = run_orchestrator("config", "set", f"{API_URL}=http://127.0.0.1:4200/api", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "profiles.toml").exists()
    assert config_view(env)[API_URL] == ("http://127.0.0.1:4200/api", "profile")


def test_environment_beats_profile_beats_default(tmp_path: Path) -> None:
    """The documented precedence: environment > active profile > default."""
    env = orchestrator_env(tmp_path)
    assert run_orchestrator("config", "set", f"{API_URL}=http://profile:4200/api", env=env).returncode == 0
    env_with_override = {**env, API_URL: "http://environment:4200/api"}
    assert config_view(env_with_override)[API_URL] == ("http://environment:4200/api", "env")
    assert config_view(env)[API_URL] == ("http://profile:4200/api", "profile")


def test_unset_falls_back_to_the_default(tmp_path: Path) -> None:
    """Removing a key from the profile must restore the default, not leave an empty value."""
    env = orchestrator_env(tmp_path)
    run_orchestrator("config", "set", "ORCHESTRATOR_LOGGING_LEVEL=DEBUG", env=env)
    assert config_view(env)["ORCHESTRATOR_LOGGING_LEVEL"] == ("DEBUG", "profile")
    result = run_orchestrator("config", "unset", "ORCHESTRATOR_LOGGING_LEVEL", env=env)
    assert result.returncode == 0, result.stderr
    assert config_view(env)["ORCHESTRATOR_LOGGING_LEVEL"] == ("INFO", "default")


def test_view_masks_api_key_and_secret_key_from_any_source(tmp_path: Path) -> None:
    """Credentials must never appear on a screen or in a pasted bug report."""
    env = orchestrator_env(tmp_path, ORCHESTRATOR_SECRET_KEY="env-secret-value")
    set_result = run_orchestrator("config", "set", "ORCHESTRATOR_API_KEY=profile-api-key", env=env)
    assert set_result.returncode == 0
    assert "profile-api-key" not in set_result.stdout
    result = run_orchestrator("config", "view", env=env)
    assert "profile-api-key" not in result.stdout and "env-secret-value" not in result.stdout
    rows = view_rows(result.stdout)
    assert rows["ORCHESTRATOR_API_KEY"] == ("********", "profile")
    assert rows["ORCHESTRATOR_SECRET_KEY"] == ("********", "env")


def test_set_unknown_key_is_one_line_error(tmp_path: Path) -> None:
    """A typo in a setting name must be refused, not silently stored."""
    env = orchestrator_env(tmp_path)
    assert_one_line_error(run_orchestrator("config", "set", "ORCHESTRATOR_API_ULR=http://x/api", env=env), "API_ULR")
    assert not (tmp_path / "profiles.toml").exists()


def test_set_malformed_value_is_one_line_error_and_changes_nothing(tmp_path: Path) -> None:
    """A bad URL is caught when it is typed, not when the server later fails to start."""
    env = orchestrator_env(tmp_path)
    run_orchestrator("config", "set", f"{API_URL}=http://127.0.0.1:4200/api", env=env)
    result = run_orchestrator("config", "set", "ORCHESTRATOR_DATABASE_URL=foo://x", f"{API_URL}=http://o/api", env=env)
    assert_one_line_error(result, "ORCHESTRATOR_DATABASE_URL", "foo")
    rows = config_view(env)
    assert rows[API_URL] == ("http://127.0.0.1:4200/api", "profile")
    assert rows["ORCHESTRATOR_DATABASE_URL"][1] == "default"


def test_set_without_equals_sign_is_one_line_error(tmp_path: Path) -> None:
    """`config set KEY VALUE` is a common slip; it must say what shape is expected."""
    assert_one_line_error(run_orchestrator("config", "set", API_URL, env=orchestrator_env(tmp_path)), "KEY=VALUE")


def test_unset_unknown_key_is_one_line_error(tmp_path: Path) -> None:
    """Unsetting a misspelt key must not report success."""
    assert_one_line_error(run_orchestrator("config", "unset", "NOPE", env=orchestrator_env(tmp_path)), "NOPE")


def test_view_still_works_with_a_malformed_setting_so_it_can_be_fixed(tmp_path: Path) -> None:
    """`config` is the way out of a broken configuration, so it must not refuse to run because of one."""
    env = orchestrator_env(tmp_path, ORCHESTRATOR_DATABASE_URL="foo://x")
    result = run_orchestrator("config", "view", env=env)
    assert result.returncode == 0, result.stderr
    assert view_rows(result.stdout)["ORCHESTRATOR_DATABASE_URL"] == ("foo://x", "env")
    assert "ORCHESTRATOR_DATABASE_URL" in result.stderr


def test_profiles_are_listed_created_activated_and_deleted(tmp_path: Path) -> None:
    """One profile per server, as Prefect users keep them: switching profile switches every setting at once."""
    env = orchestrator_env(tmp_path)
    assert run_orchestrator("config", "set", f"{API_URL}=http://local:4200/api", env=env).returncode == 0

    created = run_orchestrator("config", "profile", "create", "prod", env=env)
    assert created.returncode == 0 and "created profile 'prod'" in created.stdout, created.stderr
    copied = run_orchestrator("config", "profile", "create", "staging", "--from", "default", env=env)
    assert copied.returncode == 0, copied.stderr
    listed = run_orchestrator("config", "profile", "ls", env=env).stdout
    rows = [line.split() for line in listed.splitlines() if line.split() and line.split()[-1].isdigit()]
    marked = {cells[-2]: cells[0] == "*" for cells in rows}
    assert marked.get("default") is True and marked.get("prod") is False and marked.get("staging") is False

    assert run_orchestrator("config", "profile", "use", "prod", env=env).returncode == 0
    assert config_view(env)[API_URL] == ("", "default")  # prod holds no settings yet
    view = run_orchestrator("config", "view", env=env).stdout
    assert "active profile: prod" in view
    assert run_orchestrator("config", "set", f"{API_URL}=http://prod:4200/api", env=env).returncode == 0
    assert run_orchestrator("config", "profile", "use", "staging", env=env).returncode == 0
    assert config_view(env)[API_URL] == ("http://local:4200/api", "profile")  # copied from default

    assert run_orchestrator("config", "profile", "delete", "prod", env=env).returncode == 0
    assert "prod" not in run_orchestrator("config", "profile", "ls", env=env).stdout


def test_profile_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    env = orchestrator_env(tmp_path)
    assert_one_line_error(run_orchestrator("config", "profile", "use", "nope", env=env), "no profile 'nope'", "create")
    assert_one_line_error(run_orchestrator("config", "profile", "delete", "default", env=env), "is active")
    assert_one_line_error(run_orchestrator("config", "profile", "create", "a b", env=env), "not a profile name")
    assert run_orchestrator("config", "profile", "create", "x", env=env).returncode == 0
    assert_one_line_error(run_orchestrator("config", "profile", "create", "x", env=env), "exists already")
    assert_one_line_error(
        run_orchestrator("config", "profile", "create", "y", "--from", "ghost", env=env), "no profile 'ghost'"
    )
