"""The SDK side of deployments, in-process: the parameter schema, `flow.deploy`, `run_deployment`, and
executing a deployment's existing run (what `serve` and workers do)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Literal

import pydantic
import pytest

from apps.deployments.models import Deployment
from apps.runs.models import FlowRun
from orchestrator import flow
from orchestrator.client import InvalidInput, NotFound, get_client, release_database_connections
from orchestrator.deployments import run_deployment
from orchestrator.sdk.deployments import parameter_schema
from orchestrator.sdk.engine import run_flow_sync
from orchestrator.states import Pending

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def ephemeral_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process tests never talk to a server, whatever the environment running the suite says."""
    monkeypatch.delenv("ORCHESTRATOR_API_URL", raising=False)
    yield


@pytest.fixture(scope="module", autouse=True)
def sdk_connections_released(django_db_setup, django_db_blocker) -> Iterator[None]:
    """The SDK's ORM threads hold connections; PostgreSQL drops the test database only once they are closed."""
    yield
    with django_db_blocker.unblock():
        release_database_connections()


class Options(pydantic.BaseModel):
    dry_run: bool = False


@flow(name="report")
def report(day: date, limit: int = 10, mode: Literal["fast", "full"] = "fast", options: Options | None = None) -> str:
    return f"{day.isoformat()}:{limit}:{mode}"


def test_parameter_schema_describes_the_signature() -> None:
    """Types, defaults and required parameters become a JSON schema the server checks runs against."""
    schema = parameter_schema(report.fn)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["day"]
    properties = schema["properties"]
    assert properties["day"]["format"] == "date"
    assert properties["limit"]["type"] == "integer" and properties["limit"]["default"] == 10
    assert properties["mode"]["enum"] == ["fast", "full"]
    assert "Options" in schema["$defs"]
    assert [properties[name]["position"] for name in ("day", "limit", "mode", "options")] == [0, 1, 2, 3]


def test_parameter_schema_accepts_anything_for_unknown_types_and_extra_names_with_kwargs() -> None:
    """A class without a JSON schema must not block deploying; **kwargs allows other parameters."""

    class Opaque:
        pass

    def fn(thing: Opaque, **extra) -> None:
        pass

    schema = parameter_schema(fn)
    assert schema["properties"]["thing"] == {"title": "thing", "position": 0}
    assert "additionalProperties" not in schema


def test_flow_deploy_registers_a_deployment_with_entrypoint_schema_and_schedule() -> None:
    """`flow.deploy(...)` is the SDK's `orchestrator deploy`: workers find everything they need on it."""
    deployment = report.deploy(name="daily", work_pool_name="local", cron="0 6 * * *", timezone="Europe/Berlin")
    stored = Deployment.objects.get(pk=deployment["id"])
    assert stored.flow.name == "report" and stored.work_pool_name == "local"
    assert stored.entrypoint == "tests/deployments/test_sdk.py:report"
    assert stored.parameter_openapi_schema["required"] == ["day"]
    assert [row.schedule["cron"] for row in stored.schedules.all()] == ["0 6 * * *"]
    assert FlowRun.objects.filter(deployment=stored, auto_scheduled=True).count() >= 3
    again = report.deploy(name="daily", work_pool_name="other")
    assert again["id"] == deployment["id"] and again["schedules"] == []  # a redeploy states the whole deployment


def test_flow_deploy_with_a_storage_block_uploads_its_folder_and_a_worker_loads_it_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`storage_block=` uploads the flow's folder; the loading every pool uses (process and celery) fetches the
    prefix into ORCHESTRATOR_HOME/code and runs from there once the original folder is gone."""
    from orchestrator.blocks import LocalFileSystem
    from orchestrator.workers.loading import CodeLocation, deployment_flow_load, load_flow

    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text(
        "from orchestrator import flow\n\n\n@flow(name='packed')\ndef packed(x: int = 1) -> int:\n    return x + 1\n"
    )
    LocalFileSystem(basepath=str(tmp_path / "store")).save("code")
    packed = load_flow("flows.py:packed", str(project))
    deployment = packed.deploy(name="stored", work_pool_name="local", storage_block="local-file-system/code")
    prefix = deployment["storage_path"]
    assert (deployment["entrypoint"], deployment["path"]) == ("flows.py:packed", None)
    assert (tmp_path / "store" / prefix / "flows.py").is_file()
    shutil.rmtree(project)
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "worker-home"))
    loaded, folder = deployment_flow_load(CodeLocation.of(deployment))
    assert folder == str(tmp_path / "worker-home" / "code" / prefix)
    assert loaded.fn(2) == 3
    assert deployment_flow_load(CodeLocation.of(deployment))[1] == folder  # the cache is reused


def test_run_deployment_without_waiting_returns_the_scheduled_run() -> None:
    """`timeout=0` starts the run and returns at once, for fire-and-forget triggers."""
    report.deploy(name="adhoc", work_pool_name="local")
    run = run_deployment("report/adhoc", parameters={"day": "2026-01-02"}, timeout=0)
    assert run.state.name == "Scheduled" and run.parameters["day"] == "2026-01-02"
    assert run.deployment_id == str(Deployment.objects.get(name="adhoc").id)


def test_run_deployment_refuses_bad_parameters_and_unknown_deployments() -> None:
    """The error names the parameter, before any run exists."""
    report.deploy(name="adhoc", work_pool_name="local")
    with pytest.raises(InvalidInput) as caught:
        run_deployment("report/adhoc", parameters={"day": "2026-01-02", "mode": "slow"}, timeout=0)
    assert caught.value.status_code == 400 and "parameters.mode" in caught.value.message
    with pytest.raises(NotFound) as caught:
        run_deployment("report/nope", timeout=0)
    assert caught.value.status_code == 404
    assert not FlowRun.objects.filter(auto_scheduled=False).exists()


def test_run_deployment_waits_for_the_run_that_another_process_executes() -> None:
    """A claimer (here a thread standing in for a worker) executes the existing run; run_deployment sees it end."""
    report.deploy(name="adhoc", work_pool_name="local")
    client = get_client()

    def worker() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            waiting = list(FlowRun.objects.filter(deployment__name="adhoc", state_type="SCHEDULED"))
            if waiting:
                run = waiting[0]
                assert client.set_flow_run_state(str(run.id), Pending()).status == "ACCEPT"
                run_flow_sync(report, (), dict(run.parameters), return_state=True, flow_run_id=str(run.id))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        parameters = {"day": "2026-03-04", "limit": 3}
        run = run_deployment("report/adhoc", parameters=parameters, timeout=30, poll_interval=0.1)
    finally:
        thread.join(timeout=30)
    assert run.state.name == "Completed"
    stored = FlowRun.objects.get(pk=run.id)
    assert [row.name for row in stored.states.order_by("timestamp")] == ["Scheduled", "Pending", "Running", "Completed"]
    assert FlowRun.objects.filter(flow__name="report").count() == 1  # the existing run was executed, not a new one


def test_executing_an_existing_run_with_bad_parameters_fails_it_before_user_code() -> None:
    """A run created with parameters the function cannot take ends Failed, with the reason, not Crashed."""
    deployment = report.deploy(name="strict", work_pool_name="local")
    run = get_client().create_flow_run_from_deployment(deployment["id"], parameters={"day": "2026-01-01"})
    FlowRun.objects.filter(pk=run.id).update(parameters={"day": "not a date"})
    get_client().set_flow_run_state(run.id, Pending())
    state = run_flow_sync(report, (), {"day": "not a date"}, return_state=True, flow_run_id=run.id)
    assert state.type == "FAILED" and "day" in state.message
    assert FlowRun.objects.get(pk=run.id).state_name == "Failed"


ATTEMPTS: list[int] = []


@flow(name="flaky", retries=1)
def flaky() -> str:
    ATTEMPTS.append(1)
    if len(ATTEMPTS) == 1:
        raise ValueError("the first attempt fails")
    return "ok"


def test_a_deployments_runs_keep_the_flows_retries() -> None:
    """@flow(retries=1) must hold for runs a deployment creates, not only for direct calls."""
    ATTEMPTS.clear()
    deployment = flaky.deploy(name="retrying", work_pool_name="local")
    assert deployment["empirical_policy"] == {"retries": 1, "retry_delay": 0}
    run = get_client().create_flow_run_from_deployment(deployment["id"])
    get_client().set_flow_run_state(run.id, Pending())
    state = run_flow_sync(flaky, (), {}, return_state=True, flow_run_id=run.id)
    assert state.name == "Completed" and len(ATTEMPTS) == 2
    stored = FlowRun.objects.get(pk=run.id)
    assert stored.run_count == 2 and "AwaitingRetry" in [row.name for row in stored.states.all()]
