"""Code storage end to end: `deploy --storage remote-file-system/code` uploads the flow's folder to S3 (moto on
loopback) under its content hash, and a process worker in an empty folder, on a machine without the code, fetches it
into its cache and runs it; a storage that fails fails the run with one line and the worker goes on."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import orchestrator_env, orchestrator_executable, run_orchestrator
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, S3Server, moto_server
from tests.support.server import sqlite_pass_only
from tests.workers.conftest import WORKER_SETTINGS, Cluster, Worker

# The worker downloads and runs files; the database adds nothing here.
pytestmark = [pytest.mark.e2e, sqlite_pass_only]

MANIFEST = ".orchestrator-manifest.json"

# A flow that needs its whole folder: a neighbour module, a data file read by a relative path.
FLOW = textwrap.dedent(
    """
    from pathlib import Path

    from orchestrator import flow

    import greeting


    @flow(name="stored-greeter")
    def greet(out: str) -> str:
        text = greeting.phrase() + " " + Path("message.txt").read_text().strip()
        Path(out).write_text(text)
        return text
    """
)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    return s3_server.new_bucket()


def make_project(root: Path, phrase: str = "hello from") -> Path:
    """A flow folder with a neighbour module, a data file, an ignore file, a file it ignores and a cache folder."""
    root.mkdir(parents=True)
    (root / "flows.py").write_text(FLOW)
    (root / "greeting.py").write_text(f"def phrase():\n    return {phrase!r}\n")
    (root / "message.txt").write_text("the bucket\n")
    (root / ".orchestratorignore").write_text("# local only\nsecrets.env\n")
    (root / "secrets.env").write_text("TOKEN=never-uploaded\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "greeting.cpython-311.pyc").write_bytes(b"\0")
    return root


def code_block(cluster: Cluster, s3: S3Server, name: str = "code") -> str:
    """A remote-file-system block on the bucket, created over the API with the admin key; returns its slug."""
    body = {
        "block_type": "remote-file-system",
        "name": name,
        "data": {"basepath": s3.url("code"), "settings": s3.settings},
    }
    cluster.call("POST", "block_documents/", json={**body, "overwrite": True})
    return f"remote-file-system/{name}"


def deployment_named(cluster: Cluster, name: str) -> dict:
    found = cluster.call("GET", "deployments/", params={"flow_name": "stored-greeter", "name": name})
    [deployment] = found["results"] if isinstance(found, dict) else found
    return deployment


def deploy(cluster: Cluster, project: Path, name: str, pool: str, storage: str) -> tuple[str, str]:
    """`orchestrator deploy` run in the project folder; (its output, the prefix the deployment records)."""
    env = cluster.server.client_env(project.parent / f"deployer-{uuid.uuid4().hex[:6]}")
    command = ("deploy", "flows.py:greet", "--name", name, "--pool", pool, "--storage", storage)
    deployed = run_orchestrator(*command, env=env, cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    deployment = deployment_named(cluster, name)
    assert deployment["storage_block"] == storage and deployment["path"] is None
    assert deployment["entrypoint"] == "flows.py:greet"
    return deployed.stdout, deployment["storage_path"]


def upload_and_register(
    cluster: Cluster, project: Path, name: str, pool: str, storage: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """What `deploy --storage` does, from this process (faster than the CLI, which the test above covers): upload
    the folder through the SDK over HTTP, then register the deployment with its prefix. Returns the prefix."""
    from orchestrator.sdk.code_storage import code_upload, storage_block_load

    monkeypatch.setenv("ORCHESTRATOR_API_URL", cluster.server.api_url)
    monkeypatch.setenv("ORCHESTRATOR_API_KEY", cluster.server.api_key)
    prefix = code_upload(block=storage_block_load(storage), folder=project).prefix
    body = {
        "flow_name": "stored-greeter",
        "name": name,
        "entrypoint": "flows.py:greet",
        "work_pool_name": pool,
        "storage_block": storage,
        "storage_path": prefix,
    }
    cluster.call("POST", "deployments/", json=body)
    return prefix


def start_worker(cluster: Cluster, pool: str, folder: Path, *, scope: str, **settings: str) -> Worker:
    """A process worker with a key of `scope`, its own home and `folder` (empty) as its working folder."""
    key = cluster.call("POST", "api_keys/", json={"name": f"worker-{uuid.uuid4().hex[:6]}", "scope": scope})["key"]
    folder.mkdir(parents=True)
    env = {name: value for name, value in orchestrator_env(folder / ".home").items() if not name.startswith("AWS_")}
    env.update(WORKER_SETTINGS, ORCHESTRATOR_API_URL=cluster.server.api_url, ORCHESTRATOR_API_KEY=key, **settings)
    process = subprocess.Popen(
        [orchestrator_executable(), "worker", "start", "--pool", pool],
        env=env,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker = Worker(process)
    cluster.workers.append(worker)
    worker.wait_for_output("started")
    return worker


def run_deployment(cluster: Cluster, name: str, **parameters: str) -> dict:
    return cluster.create_run(deployment_named(cluster, name)["id"], **parameters)


def test_a_deployment_runs_from_its_storage_on_a_worker_without_the_code(
    workers: Cluster, s3: S3Server, tmp_path: Path
) -> None:
    """The issue's test: the original folder is deleted before the run; the worker (a write key, so the block's
    settings are withheld: its S3 credentials come from its environment) fetches the upload and runs it."""
    storage = code_block(workers, s3)
    pool = workers.pool()
    project = make_project(tmp_path / "project")

    output, prefix = deploy(workers, project, "from-s3", pool, storage)
    assert f"uploaded 4 file(s) in {storage} under {prefix}/" in output
    assert s3.keys() == sorted(
        f"code/{prefix}/{name}" for name in (".orchestratorignore", MANIFEST, "flows.py", "greeting.py", "message.txt")
    )
    again, same_prefix = deploy(workers, project, "from-s3", pool, storage)
    assert same_prefix == prefix and f"unchanged (4 file(s)) in {storage} under {prefix}/" in again

    shutil.rmtree(project)
    worker_folder = tmp_path / "worker"
    credentials = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    start_worker(workers, pool, worker_folder, scope="write", AWS_ENDPOINT_URL=s3.endpoint_url, **credentials)
    out = tmp_path / "out.txt"
    run = run_deployment(workers, "from-s3", out=str(out))

    [finished] = workers.wait_final([run["id"]])
    assert finished["state_name"] == "Completed", (finished["state"]["message"], workers.worker_output())
    assert out.read_text() == "hello from the bucket"
    cached = worker_folder / ".home" / "code" / prefix
    in_cache = {path.name for path in cached.iterdir()} - {"__pycache__"}  # Python's own, made by the run
    assert in_cache == {".orchestratorignore", "flows.py", "greeting.py", "message.txt"}
    assert [path.name for path in worker_folder.iterdir()] == [".home"]  # nothing landed in its working folder


def test_a_storage_failure_fails_the_run_with_one_line_and_the_worker_goes_on(
    workers: Cluster, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefix gone from the bucket fails that run naming the block and the cause; the next run completes. A
    write key without credentials in its environment is told what to give the worker."""
    storage = code_block(workers, s3)
    pool = workers.pool()
    good_prefix = upload_and_register(workers, make_project(tmp_path / "good"), "good", pool, storage, monkeypatch)
    gone_project = make_project(tmp_path / "gone", phrase="bye from")
    gone_prefix = upload_and_register(workers, gone_project, "gone", pool, storage, monkeypatch)
    assert gone_prefix != good_prefix  # other code, another prefix
    bucket = s3.boto3_client()
    for key in s3.keys(f"code/{gone_prefix}/"):
        bucket.delete_object(Bucket=s3.bucket, Key=key)

    start_worker(workers, pool, tmp_path / "admin-worker", scope="admin")
    failed = run_deployment(workers, "gone", out=str(tmp_path / "gone.txt"))
    [failed] = workers.wait_final([failed["id"]])
    message = failed["state"]["message"]
    assert failed["state_name"] == "Failed" and "\n" not in message, message
    assert message.startswith(
        f"cannot fetch the flow's code (prefix {gone_prefix}) from block '{storage}': cannot read "
        f"{s3.url('code')}/{gone_prefix}/{MANIFEST}: FileNotFoundError"
    ), message
    completed = run_deployment(workers, "good", out=str(tmp_path / "good.txt"))
    [completed] = workers.wait_final([completed["id"]])
    assert completed["state_name"] == "Completed", (completed["state"]["message"], workers.worker_output())
    assert (tmp_path / "good.txt").read_text() == "hello from the bucket"

    workers.stop_workers()
    start_worker(workers, pool, tmp_path / "keyless-worker", scope="write", AWS_EC2_METADATA_DISABLED="true")
    refused = run_deployment(workers, "good", out=str(tmp_path / "refused.txt"))
    [refused] = workers.wait_final([refused["id"]])
    assert refused["state_name"] == "Failed", refused
    assert "NoCredentialsError" in refused["state"]["message"] and "admin-scoped" in refused["state"]["message"]
    assert "\n" not in refused["state"]["message"]
