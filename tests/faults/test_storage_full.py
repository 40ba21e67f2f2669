"""The results storage full (a 1 MB tmpfs): the run ends Failed with the storage error as its message, and the server
and the worker go on (docs/faults.md)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.conftest import figures
from tests.support.server import start_server
from tests.workers.conftest import SERVER_SETTINGS, Cluster

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

FLOWS = textwrap.dedent(
    """
    from orchestrator import flow, task


    @task(persist_result=True)
    def payload(size: int) -> bytes:
        return b"x" * size


    @flow(persist_result=True, result_storage="local-file-system/tiny-disk")
    def produce(size: int) -> int:
        return len(payload(size))


    @flow(persist_result=True, result_storage="local-file-system/tiny-disk")
    def produce_itself(size: int) -> bytes:
        return b"y" * size
    """
)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (a real file system that fills up; needs the right to mount)."""
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_results_storage_fails_the_run_with_the_storage_error_and_everything_goes_on(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """A full disk is an ordinary failure of one run: a clear message, and no process of the platform stops."""
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "flows.py").write_text(FLOWS)
    with start_server(home=tmp_path / "server", args=["--no-services"], settings=SERVER_SETTINGS) as server:
        cluster = Cluster(server, flows_dir, tmp_path)
        try:
            cluster.call(
                "POST",
                "block_documents/",
                json={"block_type": "local-file-system", "name": "tiny-disk", "data": {"basepath": str(tiny_disk)}},
            )
            pool = cluster.pool()
            deployment = cluster.deployment(pool, "flows.py:produce")
            worker = cluster.start_worker("--pool", pool)
            started = time.monotonic()
            too_big = cluster.create_run(deployment, size=4 * 1024 * 1024)["id"]
            (failed,) = cluster.wait_final([too_big], timeout=60)
            failed_in = time.monotonic() - started
            message = failed["state"]["message"] or ""
            itself = cluster.create_run(cluster.deployment(pool, "flows.py:produce_itself"), size=4 * 1024 * 1024)
            (flow_failed,) = cluster.wait_final([itself["id"]], timeout=60)
            small = cluster.create_run(deployment, size=1024)["id"]
            (completed,) = cluster.wait_final([small], timeout=60)
            health = cluster.api.get("health/").status_code
            left_on_disk = sum(path.stat().st_size for path in tiny_disk.rglob("*") if path.is_file())
            worker_alive = worker.process.poll() is None
        finally:
            cluster.stop_workers()
            cluster.api.close()
    figures(
        "results storage full",
        failed_run_state=failed["state_name"],
        message=message,
        seconds_to_failed=f"{failed_in:.1f}",
        flow_result_run_state=flow_failed["state_name"],
        flow_result_message=flow_failed["state"]["message"],
        next_run=completed["state_name"],
        server_health=health,
        bytes_left_on_disk=left_on_disk,
        worker_alive=worker_alive,
    )
    assert failed["state_name"] == "Failed", failed["state"]
    assert "No space left on device" in message and "\n" not in message, message
    assert flow_failed["state_name"] == "Failed", flow_failed["state"]
    assert "No space left on device" in flow_failed["state"]["message"], flow_failed["state"]
    assert completed["state_name"] == "Completed", completed["state"]
    assert health == 200 and worker_alive
    assert left_on_disk < 64 * 1024, "a failed write left its partial file behind"
