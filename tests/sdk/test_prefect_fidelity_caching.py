"""Prefect 3 fidelity: with result persistence on, tasks are cached by inputs, task source and flow run (Prefect 3's
default cache policy); cache_key_fn and task_input_hash hit across flow runs and processes; cache_expiration
expires."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator import flow, task
from tests.sdk.helpers import flow_runs_of, task_runs_of
from tests.support.cli import orchestrator_env
from tests.support.server import sqlite_pass_only

FLOW_FILE = Path(__file__).parent / "flow_files" / "cached_across_processes.py"


def _names(flow_name: str) -> list[list[str]]:
    return [[task_run.state_name for task_run in task_runs_of(run)] for run in flow_runs_of(flow_name)]


@pytest.mark.django_db(transaction=True)
def test_with_persistence_the_default_cache_policy_is_inputs_task_source_and_flow_run():
    """Same inputs in the same flow run: Cached. Other inputs, another flow run, or a task whose code changed
    under the same name: run again. Without persistence nothing is cached."""
    calls: list[str] = []

    @task
    def load(x: int) -> int:
        calls.append(f"load {x}")
        return x + 1

    def load_changed(x: int) -> int:
        calls.append(f"changed {x}")
        return x + 2

    load_changed.__qualname__ = load.fn.__qualname__  # the same task key, other source code
    changed = task(name="load")(load_changed)
    assert changed.task_key == load.task_key

    @flow(name="persisting", persist_result=True)
    def persisting() -> list[int]:
        return [load(1), load(1), load(2), changed(1)]

    @flow(name="not-persisting")
    def not_persisting() -> list[int]:
        return [load(1), load(1)]

    assert persisting() == [2, 2, 3, 3]
    assert persisting() == [2, 2, 3, 3]
    assert not_persisting() == [2, 2]
    assert calls == ["load 1", "load 2", "changed 1"] * 2 + ["load 1", "load 1"]
    assert _names("persisting") == [["Completed", "Cached", "Completed", "Completed"]] * 2
    assert _names("not-persisting") == [["Completed", "Completed"]]


@pytest.mark.django_db(transaction=True)
def test_cache_expiration_expires_entries_of_the_default_cache_policy():
    """cache_expiration bounds the default policy's entries too: after it the task runs again."""
    calls: list[int] = []

    @task(persist_result=True, cache_expiration=timedelta(seconds=0.3))
    def fetch(x: int) -> int:
        calls.append(x)
        return x

    @flow(name="expiring-default-cache")
    def expiring_default_cache() -> None:
        fetch(1)
        fetch(1)
        time.sleep(0.35)
        fetch(1)

    expiring_default_cache()
    assert calls == [1, 1]
    assert _names("expiring-default-cache") == [["Completed", "Cached", "Completed"]]


@sqlite_pass_only
def test_cache_key_fn_and_task_input_hash_hit_across_processes(tmp_path: Path):
    """A second `python flow.py` process is answered from the cache the first one filled (same home)."""
    work_log = tmp_path / "work.log"
    env = orchestrator_env(tmp_path / "home", WORK_LOG=str(work_log))

    def run(x: int, day: str) -> list:
        result = subprocess.run(
            [sys.executable, str(FLOW_FILE), str(x), day], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    assert run(1, "monday") == [["Completed", 10], ["Completed", "report for monday"]]
    assert run(1, "monday") == [["Cached", 10], ["Cached", "report for monday"]]
    assert run(2, "monday") == [["Completed", 20], ["Cached", "report for monday"]]
    assert work_log.read_text().splitlines() == ["hashed 1", "keyed monday", "hashed 2"]
