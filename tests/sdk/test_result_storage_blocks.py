"""Results stored in file-system blocks: `result_storage=` takes a block or its `"type/name"` slug, the state's
reference names the block, and `state.result()` reads the result back from S3 (moto on loopback) in this process or
in another one; a storage that fails fails the run and records no result."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from apps.runs.models import FlowRun
from orchestrator import flow, task
from orchestrator.blocks import LocalFileSystem, RemoteFileSystem
from orchestrator.sdk.exceptions import ResultPersistenceError
from orchestrator.states import StateType
from tests.sdk.helpers import flow_run_named, task_runs_of
from tests.sdk.test_blocks import unreachable_settings
from tests.support.s3 import S3Server
from tests.support.server import RunningServer


@pytest.mark.django_db(transaction=True)
def test_a_flow_result_goes_to_a_remote_file_system_block_named_by_its_slug(s3: S3Server):
    """The result is an object under the block's basepath; the reference names the block and the key, so a state
    read back from the database loads the result from S3."""
    RemoteFileSystem(basepath=s3.url("results"), settings=s3.settings).save("lake")

    @flow(name="to-the-lake", persist_result=True, result_storage="remote-file-system/lake")
    def to_the_lake() -> dict:
        return {"rows": 3, "tables": ["a", "b"]}

    assert to_the_lake() == {"rows": 3, "tables": ["a", "b"]}

    run = flow_run_named("to-the-lake")
    reference = run.state_data
    assert reference == {
        "storage": "block",
        "block": "remote-file-system/lake",
        "path": reference["path"],
        "serializer": "cloudpickle",
    }
    assert s3.keys() == [f"results/{reference['path']}"]
    assert pickle.loads(s3.read(f"results/{reference['path']}")) == {"rows": 3, "tables": ["a", "b"]}
    assert FlowRun.objects.get(pk=run.pk).state.result() == {"rows": 3, "tables": ["a", "b"]}


@pytest.mark.django_db(transaction=True)
def test_a_task_result_goes_to_a_block_instance_as_json(s3: S3Server, tmp_path: Path):
    """A loaded block works as well as its slug; JSON on request; a LocalFileSystem block keeps the flow's own."""
    RemoteFileSystem(basepath=s3.url("tasks"), settings=s3.settings).save("task-lake")
    LocalFileSystem(basepath=str(tmp_path / "flows")).save("flows")
    lake = RemoteFileSystem.load("task-lake")

    @task(persist_result=True, result_storage=lake, result_serializer="json")
    def count_rows() -> dict:
        return {"rows": 5}

    @flow(name="mixed-storage", persist_result=True, result_storage="local-file-system/flows")
    def mixed() -> int:
        return count_rows()["rows"] * 2

    assert mixed() == 10
    run = flow_run_named("mixed-storage")
    [task_run] = task_runs_of(run)
    task_reference = task_run.state_data
    assert (task_reference["block"], task_reference["serializer"]) == ("remote-file-system/task-lake", "json")
    assert json.loads(s3.read(f"tasks/{task_reference['path']}")) == {"rows": 5}
    assert task_run.state.result() == {"rows": 5}
    flow_reference = run.state_data
    assert flow_reference["block"] == "local-file-system/flows"
    assert (tmp_path / "flows" / flow_reference["path"]).is_file()
    assert FlowRun.objects.get(pk=run.pk).state.result() == 10


@pytest.mark.django_db(transaction=True)
def test_a_cache_hit_reads_the_cached_result_from_the_block(s3: S3Server):
    """A cached task's result lives in the block: a later run's cache hit reads it from S3, not from memory."""
    RemoteFileSystem(basepath=s3.url("cache"), settings=s3.settings).save("cache")
    calls: list[int] = []

    @task(cache_key_fn=lambda context, arguments: "block-cache-key", result_storage="remote-file-system/cache")
    def expensive() -> list[int]:
        calls.append(1)
        return [1, 2, 3]

    @flow(name="cached-in-a-block")
    def cached() -> list[int]:
        return expensive()

    assert cached() == [1, 2, 3]
    assert cached() == [1, 2, 3]
    assert calls == [1]
    first, second = (
        task_runs_of(run)[0] for run in FlowRun.objects.filter(flow__name="cached-in-a-block").order_by("created")
    )
    assert (first.state_name, second.state_name) == ("Completed", "Cached")
    assert second.state_data["block"] == "remote-file-system/cache"
    assert s3.keys() == [f"cache/{first.state_data['path']}"]


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_storage_fails_the_run_with_the_storage_error_and_records_no_result():
    """The write fails, so the run is Failed with the storage's one-line error and no state holds a reference."""
    RemoteFileSystem(basepath="s3://lake/results", settings=unreachable_settings()).save("down")

    @flow(name="storage-down", persist_result=True, result_storage="remote-file-system/down")
    def storage_down() -> int:
        return 1

    with pytest.raises(ResultPersistenceError) as failed:
        storage_down()

    message = str(failed.value)
    assert message.startswith(
        "the result could not be stored in block 'remote-file-system/down': cannot write s3://lake/results/"
    )
    assert "EndpointConnectionError: Could not connect to the endpoint URL" in message
    assert "\n" not in message
    run = flow_run_named("storage-down")
    assert (run.state_type, run.state_name, run.state.message) == (StateType.FAILED, "Failed", message)
    assert all(state.data is None for state in run.states.all())


@pytest.mark.django_db(transaction=True)
def test_a_missing_storage_block_fails_the_run_saying_how_to_create_it():
    """A slug naming no block fails the run when the result is written, with the SDK's missing-block line."""

    @flow(name="storage-missing", persist_result=True, result_storage="remote-file-system/nowhere")
    def storage_missing() -> int:
        return 1

    with pytest.raises(ResultPersistenceError) as failed:
        storage_missing()
    assert str(failed.value) == (
        "the result could not be stored in block 'remote-file-system/nowhere': no block "
        "'remote-file-system/nowhere'; create it with RemoteFileSystem(...).save('nowhere') or in the admin"
    )
    assert flow_run_named("storage-missing").state.data is None


def test_an_unsaved_remote_block_is_refused_where_the_flow_is_declared(s3: S3Server, tmp_path: Path):
    """Another process could not load a block that has no name: the decorator says to save it first; an unsaved
    LocalFileSystem is simply its folder."""
    with pytest.raises(ValueError, match=r"save the RemoteFileSystem block first \(\.save\(NAME\)\)"):
        flow(persist_result=True, result_storage=RemoteFileSystem(basepath=s3.url(), settings=s3.settings))(lambda: 1)
    local = flow(result_storage=LocalFileSystem(basepath=str(tmp_path)))(lambda: 1)
    assert local.result_storage == str(tmp_path)


WRITER = """
import json, sys
from orchestrator import flow
from orchestrator.sdk.context import get_run_context

@flow(name="writes-to-the-lake", persist_result=True, result_storage="remote-file-system/lake")
def writes(source: str) -> dict:
    class Point:  # a local class and a lambda: plain pickle refuses both, cloudpickle stores them by value
        def __init__(self, x, y):
            self.x, self.y = x, y

    print(json.dumps({"flow_run": get_run_context().flow_run.id}))
    return {"rows": 42, "source": source, "point": Point(3, 4), "double": lambda n: n * 2}

writes(sys.argv[1])
"""

READER = """
import json, sys
import orchestrator.sdk.results  # State.result() reads persisted results through the SDK
from orchestrator.client import get_client

state = get_client().read_flow_run(sys.argv[1]).state
result = state.result()
point, double = result.pop("point"), result.pop("double")
print(json.dumps({"reference": state.data, "result": result, "point": [point.x, point.y], "doubled": double(21)}))
"""


def run_python(source: str, *args: str, env: dict[str, str], server: RunningServer) -> Any:
    result = subprocess.run([sys.executable, "-c", source, *args], env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"the script failed:\n{result.stderr[-4000:]}\n--- server ---\n{server.output()[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_another_process_reads_a_result_persisted_to_a_remote_block(
    server_client, orchestrator_server_process: RunningServer, s3: S3Server, tmp_path: Path
):
    """One process runs the flow against a server; another, with its own home, loads the block from the server and
    the result from S3 through the run's state; cloudpickle carries a local class and a lambda across."""
    RemoteFileSystem(basepath=s3.url("runs"), settings=s3.settings).save("lake")  # over HTTP, as admin
    server = orchestrator_server_process

    written = run_python(WRITER, "crm", env=server.client_env(tmp_path / "writer-home"), server=server)
    read = run_python(READER, written["flow_run"], env=server.client_env(tmp_path / "reader-home"), server=server)

    assert read["result"] == {"rows": 42, "source": "crm"}
    assert (read["point"], read["doubled"], read["reference"]["serializer"]) == ([3, 4], 42, "cloudpickle")
    assert read["reference"]["block"] == "remote-file-system/lake"
    assert s3.keys() == [f"runs/{read['reference']['path']}"]
    assert not (tmp_path / "writer-home" / "storage").exists()  # nothing went to the local default storage
