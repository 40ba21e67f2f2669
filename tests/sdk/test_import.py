"""`import orchestrator` in a user's flow file must stay cheap: no Django, well under a second."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.cli import orchestrator_env
from tests.support.server import sqlite_pass_only

# A fresh interpreter importing the SDK: no database involved.
pytestmark = sqlite_pass_only

PROBE = """
import json, sys, time
started = time.process_time()
import orchestrator
from orchestrator import flow, task, get_run_logger, unmapped, tags
from orchestrator.tasks import task_input_hash
from orchestrator.states import Completed
from orchestrator.task_runners import ThreadPoolTaskRunner
elapsed = time.process_time() - started
print(json.dumps({"seconds": elapsed, "django": sorted(m for m in sys.modules if m.split(".")[0] == "django")}))
"""


def test_importing_the_sdk_does_not_load_django_and_is_fast(tmp_path: Path):
    """Every flow file imports the SDK; Django loads only when a run is recorded in-process.

    The cost is the CPU time of the import (not wall time, which other processes on a busy machine inflate)."""
    timings = []
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, "-c", PROBE], env=orchestrator_env(tmp_path), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        probe = json.loads(result.stdout)
        assert probe["django"] == []
        timings.append(probe["seconds"])
    assert min(timings) < 0.3, timings
