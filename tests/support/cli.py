"""Run the real `orchestrator` console script in a subprocess with a clean, explicit environment.

    env = orchestrator_env(tmp_path, ORCHESTRATOR_API_URL="http://127.0.0.1:4200/api")
    result = run_orchestrator("config", "view", env=env)
    assert result.returncode == 0, result.stderr

`orchestrator_env` drops every ORCHESTRATOR_* variable the test run inherited (the suite's database URL
included), so a subprocess sees only the home and the settings a test names.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def orchestrator_executable() -> str:
    """The console script installed beside the interpreter running the tests (.venv/bin/orchestrator)."""
    return str(Path(sys.executable).with_name("orchestrator"))


def orchestrator_env(home: Path, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ORCHESTRATOR_") and key != "DJANGO_SETTINGS_MODULE"
    }
    env.update(ORCHESTRATOR_HOME=str(home), PYTHONUNBUFFERED="1", **settings)
    return env


def run_orchestrator(
    *args: str, env: dict[str, str], input: str = "", timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `orchestrator ARGS...`; stdin is `input` (empty by default, so prompts read end-of-file). In a session of
    its own, with no terminal: password prompts (getpass) read stdin too, never the terminal running the tests."""
    return subprocess.run(
        [orchestrator_executable(), *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        start_new_session=True,
    )
