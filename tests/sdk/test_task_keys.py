"""A task's key names its code the same way however the file is run or loaded, so caches keyed by it hit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from orchestrator.workers.loading import load_flow

FLOW_FILE = textwrap.dedent(
    """
    from orchestrator import flow, task

    @task
    def double(x):
        return 2 * x

    @flow
    def pipeline():
        return double(1)

    if __name__ == "__main__":
        print(double.task_key)
    """
)


def test_a_script_and_a_worker_loaded_entrypoint_give_the_same_task_key(tmp_path: Path, monkeypatch) -> None:
    """`python jobs/etl.py` in the deployment's folder and a worker loading `jobs/etl.py:pipeline` there (twice,
    under random module names) agree on the key: `jobs.etl.double`."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "etl.py").write_text(FLOW_FILE)
    script = subprocess.run(
        [sys.executable, "jobs/etl.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    monkeypatch.chdir(tmp_path)
    loaded = [load_flow("jobs/etl.py:pipeline", str(tmp_path)) for _ in range(2)]
    keys = {flow.fn.__globals__["double"].task_key for flow in loaded}
    assert keys == {script.stdout.strip()} == {"jobs.etl.double"}


def test_an_imported_module_keeps_its_import_name() -> None:
    """A task in an importable module is named by the module, wherever the process runs."""
    from orchestrator.sdk.tasks import task

    @task
    def local_step(x: int) -> int:
        return x

    assert local_step.task_key == f"{__name__}.test_an_imported_module_keeps_its_import_name.<locals>.local_step"
