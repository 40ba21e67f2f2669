"""One client interface, two implementations.

`EphemeralClient` records runs in-process through the same services and engine the server uses (Django
loads on first use, the SQLite database in ORCHESTRATOR_HOME is migrated if needed). `HttpClient` talks to a
server's REST API with keep-alive, a bearer key and retries with backoff. `get_client()` picks one from
ORCHESTRATOR_API_URL, so the same flow file behaves the same in both modes.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator import config
from orchestrator.sdk.exceptions import APIError
from orchestrator.states import State


@dataclass
class RunInfo:
    """What the SDK knows about a flow run or task run (also what hooks receive as `flow_run` / `task_run`)."""

    id: str
    name: str
    state: State | None
    run_count: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    flow_id: str | None = None
    flow_run_id: str | None = None
    deployment_id: str | None = None
    parent_task_run_id: str | None = None
    task_key: str | None = None
    empirical_policy: dict[str, Any] = field(default_factory=dict)


@dataclass
class StateResult:
    """The engine's answer to a proposal."""

    status: str
    state: State | None
    reason: str | None = None
    delay_seconds: float = 0.0


def _with_transition_id(state: State) -> State:
    state.state_details.setdefault("transition_id", uuid.uuid4().hex)
    return state


def _fix_duplicate(result: StateResult, proposed: State) -> StateResult:
    """A retried request that the server had already applied comes back REJECTed as a duplicate: it was accepted."""
    if (
        result.status == "REJECT"
        and result.state is not None
        and result.state.state_details.get("transition_id") == proposed.state_details.get("transition_id")
    ):
        return StateResult("ACCEPT", result.state, None, 0.0)
    return result


# How many threads make the in-process client's database calls (one connection each). SQLite takes one writer
# at a time anyway; on PostgreSQL this bounds the connections a busy flow process holds.
ORM_THREADS = 8


class OrmThreads:
    """The few long-lived threads that make every ORM call of the in-process client.

    Django opens one connection per thread, and runs start threads all the time (task runners, timeouts,
    asyncio.to_thread): making the calls here keeps the connections few and reused instead of one per thread,
    never closed. It also keeps ORM calls out of event loops (Django refuses them there, and async flows call
    the client from one), and lets `close_connections()` release every connection, e.g. before a test database
    is dropped.
    """

    def __init__(self, size: int = ORM_THREADS) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"orchestrator-orm-{index}", daemon=True) for index in range(size)
        ]
        self._idents: set[int] = set()
        for thread in self._threads:
            thread.start()
            self._idents.add(thread.ident)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)` on an ORM thread and wait for its result (or exception)."""
        if threading.get_ident() in self._idents:  # already on one (a client method calling another)
            return fn(*args, **kwargs)
        job: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((job, fn, args, kwargs))
        return job.result()

    def _work(self) -> None:
        while True:
            job, fn, args, kwargs = self._jobs.get()
            if not job.set_running_or_notify_cancel():
                continue
            try:
                job.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the caller
                job.set_exception(exc)

    def close_connections(self, timeout: float = 30.0) -> None:
        """Close every thread's database connections; each thread reconnects on its next call."""
        everyone = threading.Barrier(len(self._threads) + 1, timeout=timeout)

        def close_mine() -> None:
            from django.db import connections

            connections.close_all()
            everyone.wait()  # holds this thread so that each one takes exactly one of these jobs

        for _ in self._threads:
            self._jobs.put((concurrent.futures.Future(), close_mine, (), {}))
        everyone.wait()


_orm_threads: OrmThreads | None = None
_orm_threads_lock = threading.Lock()


def orm_threads() -> OrmThreads:
    global _orm_threads
    if _orm_threads is None:
        with _orm_threads_lock:
            if _orm_threads is None:
                _orm_threads = OrmThreads()
    return _orm_threads


def release_database_connections() -> None:
    """Close the in-process client's database connections (they reopen when needed). A test suite calls this
    before it drops the test database; a long-lived process may call it when idle."""
    if _orm_threads is not None and _django_ready:
        _orm_threads.close_connections()


def _orm_call(method: Any) -> Any:
    """An EphemeralClient method that uses the ORM: it runs on the ORM threads (see OrmThreads)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return orm_threads().call(method, self, *args, **kwargs)

    return wrapper


class EphemeralClient:
    """Records runs in this process's database (SQLite in ORCHESTRATOR_HOME by default) from the ORM threads."""

    mode = "ephemeral"

    def __init__(self) -> None:
        orm_threads().call(_setup_django)

    @_orm_call
    def ensure_flow(self, name: str) -> str:
        # Not cached: the flow may be deleted (UI, API, a flushed test database) while this process lives.
        from apps.flows.services import flow_get_or_create

        flow, _ = flow_get_or_create(name=name)
        return str(flow.id)

    @_orm_call
    def create_flow_run(
        self,
        *,
        flow_id: str,
        name: str | None,
        parameters: dict[str, Any],
        tags: list[str],
        state: State,
        parent_task_run_id: str | None = None,
        empirical_policy: dict[str, Any] | None = None,
        flow_version: str | None = None,
        next_state: State | None = None,
    ) -> RunInfo:
        from apps.flows.models import Flow
        from apps.runs import services
        from apps.runs.models import TaskRun

        parent = TaskRun.objects.get(pk=parent_task_run_id) if parent_task_run_id else None
        run, _ = services.flow_run_create(
            flow=Flow.objects.get(pk=flow_id),
            name=name,
            parameters=parameters,
            tags=tags,
            state=_with_transition_id(state),
            next_state=_with_transition_id(next_state) if next_state else None,
            parent_task_run=parent,
            empirical_policy=empirical_policy,
            flow_version=flow_version,
        )
        return _flow_run_info(run)

    @_orm_call
    def create_task_run(
        self,
        *,
        flow_run_id: str | None,
        task_key: str,
        dynamic_key: str,
        name: str | None,
        tags: list[str],
        state: State,
        cache_key: str | None = None,
        cache_expiration: datetime | None = None,
        task_inputs: dict[str, Any] | None = None,
        empirical_policy: dict[str, Any] | None = None,
        next_state: State | None = None,
    ) -> RunInfo:
        from apps.runs import services

        run, _ = services.task_run_create(
            next_state=_with_transition_id(next_state) if next_state else None,
            flow_run_id=flow_run_id,
            task_key=task_key,
            dynamic_key=dynamic_key,
            name=name,
            tags=tags,
            cache_key=cache_key,
            cache_expiration=cache_expiration,
            task_inputs=task_inputs,
            empirical_policy=empirical_policy,
            state=_with_transition_id(state),
        )
        return _task_run_info(run)

    def set_flow_run_state(self, run_id: str, state: State, *, force: bool = False) -> StateResult:
        return self._propose("flow_run", run_id, state, force)

    def set_task_run_state(self, run_id: str, state: State, *, force: bool = False) -> StateResult:
        return self._propose("task_run", run_id, state, force)

    @_orm_call
    def _propose(self, kind: str, run_id: str, state: State, force: bool) -> StateResult:
        from apps.orchestration import engine

        result = engine.propose_state(kind=kind, run_id=run_id, state=_with_transition_id(state), force=force)
        return StateResult(result.status.value, result.state, result.reason, result.delay_seconds)

    @_orm_call
    def record_task_runs(
        self, task_runs: list[dict[str, Any]], states: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Record task runs this process already ran, and later states (see LogShipper)."""
        from apps.runs import services

        for record in task_runs:
            for state in record["states"]:
                _with_transition_id(state)
        for item in states:
            _with_transition_id(item["state"])
        return services.task_runs_record(task_runs=task_runs, states=states)

    @_orm_call
    def read_flow_run(self, run_id: str) -> RunInfo:
        from apps.runs.models import FlowRun

        return _flow_run_info(FlowRun.objects.get(pk=run_id))

    @_orm_call
    def create_logs(self, entries: list[dict[str, Any]]) -> None:
        from apps.logs.services import logs_create

        logs_create(
            entries=[
                {
                    "flow_run_id": entry.get("flow_run"),
                    "task_run_id": entry.get("task_run"),
                    "name": entry["name"][:200],
                    "level": entry["level"],
                    "message": entry["message"],
                    "timestamp": datetime.fromisoformat(entry["timestamp"]),
                }
                for entry in entries
            ]
        )

    # -- deployments ------------------------------------------------------------------------------------------
    @_orm_call
    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update (redeploy) a deployment from the API's JSON body; returns the API's JSON shape."""
        from apps.deployments.api.serializers import DeploymentSerializer, DeploymentWriteSerializer
        from apps.deployments.selectors import deployment_get
        from apps.deployments.services import deployment_upsert
        from apps.flows.models import Flow
        from apps.flows.services import flow_get_or_create

        def create() -> dict[str, Any]:
            serializer = DeploymentWriteSerializer(data=body)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            if "flow" in data:
                flow = Flow.objects.get(pk=data["flow"])
            else:
                flow = flow_get_or_create(name=data["flow_name"])[0]
            deployment, _ = deployment_upsert(
                flow=flow, name=data["name"], values=serializer.values(), schedules=serializer.schedules_given()
            )
            return _jsonable(DeploymentSerializer(deployment_get(deployment_id=deployment.id)).data)

        return _as_api_call(create)

    @_orm_call
    def read_deployment(self, reference: str) -> dict[str, Any]:
        """A deployment by `flow/deployment` name or id, in the API's JSON shape (APIError 404 if none)."""
        from apps.deployments.api.serializers import DeploymentSerializer
        from apps.deployments.selectors import deployment_find

        deployment = deployment_find(reference=reference)
        if deployment is None:
            raise APIError(404, f"no deployment {reference!r}")
        return _jsonable(DeploymentSerializer(deployment).data)

    @_orm_call
    def create_flow_run_from_deployment(
        self,
        deployment_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        scheduled_time: datetime | None = None,
    ) -> RunInfo:
        """An ad hoc run of the deployment (Scheduled), its parameters checked against the deployment's schema."""
        from apps.deployments.api.serializers import CreateFlowRunSerializer
        from apps.deployments.selectors import deployment_get
        from apps.deployments.services import deployment_create_flow_run

        def create() -> RunInfo:
            deployment = deployment_get(deployment_id=deployment_id)
            if deployment is None:
                raise APIError(404, f"no deployment with id {deployment_id}")
            body: dict[str, Any] = {"parameters": parameters or {}, "tags": tags or []}
            if scheduled_time is not None:
                body["scheduled_time"] = scheduled_time.isoformat()
            serializer = CreateFlowRunSerializer(data=body)
            serializer.is_valid(raise_exception=True)
            run, _ = deployment_create_flow_run(deployment=deployment, **serializer.validated_data)
            return _flow_run_info(run)

        return _as_api_call(create)

    @_orm_call
    def schedule_deployment_runs(self, deployment_id: str) -> int:
        """Create the deployment's upcoming scheduled runs now (what the scheduler service does)."""
        from apps.deployments.services import schedule_upcoming_runs

        return schedule_upcoming_runs(deployment_ids=[uuid.UUID(str(deployment_id))])

    @_orm_call
    def read_deployment_runs_due(self, deployment_id: str, *, before: datetime, limit: int = 10) -> list[RunInfo]:
        """The deployment's SCHEDULED runs whose time is before `before`, oldest first."""
        from apps.deployments.selectors import deployment_runs_due

        runs = deployment_runs_due(deployment_id=uuid.UUID(str(deployment_id)), before=before, limit=limit)
        return [_flow_run_info(run) for run in runs]

    def close(self) -> None:
        release_database_connections()


def _as_api_call(call: Any) -> Any:
    """Run a server-side call in-process; bad input raises APIError with the message the API would answer."""
    from rest_framework.exceptions import APIException

    from apps.core.api.exceptions import exception_handler
    from apps.core.errors import OrchestratorError

    try:
        return call()
    except (OrchestratorError, APIException) as exc:
        response = exception_handler(exc, {})
        raise APIError(response.status_code, response.data.get("message", str(exc))) from None


def _jsonable(data: Any) -> dict[str, Any]:
    """A serializer's output as plain JSON values (ids and times as strings), as the HTTP client gets them."""
    import json

    from rest_framework.utils.encoders import JSONEncoder

    return json.loads(json.dumps(data, cls=JSONEncoder))


def _flow_run_info(run: Any) -> RunInfo:
    return RunInfo(
        id=str(run.id),
        name=run.name,
        state=run.state,
        run_count=run.run_count,
        parameters=run.parameters,
        tags=list(run.tags),
        flow_id=str(run.flow_id),
        deployment_id=str(run.deployment_id) if run.deployment_id else None,
        parent_task_run_id=str(run.parent_task_run_id) if run.parent_task_run_id else None,
        empirical_policy=run.empirical_policy,
    )


def _task_run_info(run: Any) -> RunInfo:
    return RunInfo(
        id=str(run.id),
        name=run.name,
        state=run.state,
        run_count=run.run_count,
        tags=list(run.tags),
        flow_run_id=str(run.flow_run_id) if run.flow_run_id else None,
        task_key=run.task_key,
        empirical_policy=run.empirical_policy,
    )


_django_lock = threading.Lock()
_django_ready = False


def _setup_django() -> None:
    """Load Django for in-process recording and bring the database schema up to date (once per process)."""
    global _django_ready
    if _django_ready:
        return
    with _django_lock:
        if _django_ready:
            return
        from django.apps import apps

        if apps.ready:  # the process set Django up itself (a Celery worker, a test run): its schema is its own
            _django_ready = True
            return
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
        problems = config.problems()
        if problems:
            raise RuntimeError("invalid configuration: " + "; ".join(problems))
        import django

        django.setup()
        _migrate_if_needed()
        _django_ready = True


def _migrate_if_needed() -> None:
    """Apply migrations when the code's migrations differ from those last applied to this database."""
    from django.conf import settings

    root = Path(__file__).resolve().parent.parent.parent / "apps"
    names = sorted(str(path.relative_to(root)) for path in root.glob("*/migrations/0*.py"))
    database = settings.DATABASES["default"]
    fingerprint = hashlib.sha256(("\n".join(names) + str(database["NAME"])).encode()).hexdigest()[:16]
    stamp = settings.ORCHESTRATOR_HOME / f".schema-{fingerprint}"
    if database["ENGINE"].endswith("sqlite3") and not Path(database["NAME"]).exists():
        stamp.unlink(missing_ok=True)
    if stamp.exists():
        return
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text("\n".join(names))


class HttpClient:
    """Talks to the REST API: keep-alive, bearer key, retries with backoff on connection errors and 5xx."""

    mode = "http"
    RETRIES = 5

    def __init__(self, api_url: str, api_key: str | None = None, *, retries: int | None = None) -> None:
        import httpx

        if retries is not None:  # e.g. a worker's poll: it tries again on its next tick instead
            self.RETRIES = retries

        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._client = httpx.Client(
            base_url=api_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._flow_ids: dict[str, str] = {}

    def _request(self, method: str, path: str, json: Any = None, params: dict | None = None) -> Any:
        delay = 0.1
        for attempt in range(self.RETRIES + 1):
            try:
                response = self._client.request(method, path, json=json, params=params)
            except self._httpx.TransportError:
                if attempt == self.RETRIES:
                    raise
            else:
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        try:
                            message = response.json().get("message", response.text)
                        except ValueError:
                            message = response.text
                        raise APIError(response.status_code, message)
                    return response.json() if response.content else None
                if attempt == self.RETRIES:
                    raise APIError(response.status_code, response.text[:500])
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def ensure_flow(self, name: str) -> str:
        if name not in self._flow_ids:
            self._flow_ids[name] = self._request("POST", "flows/", {"name": name})["id"]
        return self._flow_ids[name]

    def create_flow_run(
        self,
        *,
        flow_id: str,
        name: str | None,
        parameters: dict[str, Any],
        tags: list[str],
        state: State,
        parent_task_run_id: str | None = None,
        empirical_policy: dict[str, Any] | None = None,
        flow_version: str | None = None,
        next_state: State | None = None,
    ) -> RunInfo:
        body = {
            "flow": flow_id,
            "name": name,
            "parameters": parameters,
            "tags": tags,
            "parent_task_run": parent_task_run_id,
            "flow_version": flow_version,
            "state": _state_body(_with_transition_id(state)),
            # Makes a retried create return the run the first attempt made.
            "idempotency_key": uuid.uuid4().hex,
        }
        if next_state is not None:
            body["next_state"] = _state_body(_with_transition_id(next_state))
        if empirical_policy:
            body["empirical_policy"] = empirical_policy
        return _run_info_from_json(self._request("POST", "flow_runs/", body))

    def create_task_run(
        self,
        *,
        flow_run_id: str | None,
        task_key: str,
        dynamic_key: str,
        name: str | None,
        tags: list[str],
        state: State,
        cache_key: str | None = None,
        cache_expiration: datetime | None = None,
        task_inputs: dict[str, Any] | None = None,
        empirical_policy: dict[str, Any] | None = None,
        next_state: State | None = None,
    ) -> RunInfo:
        body = {
            "flow_run": flow_run_id,
            "task_key": task_key,
            "dynamic_key": dynamic_key,
            "name": name,
            "tags": tags,
            "cache_key": cache_key,
            "cache_expiration": cache_expiration.isoformat() if cache_expiration else None,
            "task_inputs": task_inputs or {},
            "state": _state_body(_with_transition_id(state)),
        }
        if next_state is not None:
            body["next_state"] = _state_body(_with_transition_id(next_state))
        if empirical_policy:
            body["empirical_policy"] = empirical_policy
        return _run_info_from_json(self._request("POST", "task_runs/", body))

    def set_flow_run_state(self, run_id: str, state: State, *, force: bool = False) -> StateResult:
        return self._propose("flow_runs", run_id, state, force)

    def set_task_run_state(self, run_id: str, state: State, *, force: bool = False) -> StateResult:
        return self._propose("task_runs", run_id, state, force)

    def _propose(self, collection: str, run_id: str, state: State, force: bool) -> StateResult:
        body = {"state": _state_body(_with_transition_id(state)), "force": force}
        payload = self._request("POST", f"{collection}/{run_id}/set_state/", body)
        result = StateResult(
            payload["status"],
            State.from_json(payload["state"]) if payload.get("state") else None,
            payload["details"].get("reason"),
            float(payload["details"].get("delay_seconds") or 0),
        )
        return _fix_duplicate(result, state)

    def record_task_runs(
        self, task_runs: list[dict[str, Any]], states: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Record task runs this process already ran, and later states (see LogShipper): one request."""
        body = {
            "task_runs": [
                {**record, "states": [_recorded_body(state) for state in record["states"]]} for record in task_runs
            ],
            "states": [{"task_run": item["task_run"], "state": _recorded_body(item["state"])} for item in states],
        }
        answer = self._request("POST", "task_runs/record/", body)
        return answer["task_runs"], answer["states"]

    def read_flow_run(self, run_id: str) -> RunInfo:
        return _run_info_from_json(self._request("GET", f"flow_runs/{run_id}/"))

    def create_logs(self, entries: list[dict[str, Any]]) -> None:
        self._request("POST", "logs/", entries)

    # -- deployments ------------------------------------------------------------------------------------------
    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update (redeploy) a deployment; returns the API's JSON shape."""
        return self._request("POST", "deployments/", body)

    def read_deployment(self, reference: str) -> dict[str, Any]:
        """A deployment by `flow/deployment` name or id (APIError 404 if none)."""
        if "/" in reference:
            flow_name, _, name = reference.partition("/")
            found = self._request("GET", "deployments/", params={"flow_name": flow_name, "name": name})["results"]
            if not found:
                raise APIError(404, f"no deployment {reference!r}")
            return found[0]
        return self._request("GET", f"deployments/{reference}/")

    def create_flow_run_from_deployment(
        self,
        deployment_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        scheduled_time: datetime | None = None,
    ) -> RunInfo:
        """An ad hoc run of the deployment (Scheduled); a retried request returns the run the first one made."""
        body: dict[str, Any] = {"parameters": parameters or {}, "tags": tags or [], "idempotency_key": uuid.uuid4().hex}
        if scheduled_time is not None:
            body["scheduled_time"] = scheduled_time.isoformat()
        return _run_info_from_json(self._request("POST", f"deployments/{deployment_id}/create_flow_run/", body))

    def schedule_deployment_runs(self, deployment_id: str) -> int:
        """Create the deployment's upcoming scheduled runs now (what the scheduler service does)."""
        return int(self._request("POST", f"deployments/{deployment_id}/schedule_runs/")["created"])

    def read_deployment_runs_due(self, deployment_id: str, *, before: datetime, limit: int = 10) -> list[RunInfo]:
        """The deployment's SCHEDULED runs whose time is before `before`, oldest first."""
        params = {
            "deployment": deployment_id,
            "state_type": "SCHEDULED",
            "expected_start_time__lte": before.isoformat(),
            "ordering": "expected_start_time",
            "limit": limit,
        }
        return [_run_info_from_json(item) for item in self._request("GET", "flow_runs/", params=params)["results"]]

    # -- work pools and workers ------------------------------------------------------------------------------
    def read_work_pool(self, name: str) -> dict[str, Any]:
        """A work pool by name (APIError 404 if none)."""
        return self._request("GET", f"work_pools/{_quote(name)}/")

    def read_work_queue(self, pool: str, name: str) -> dict[str, Any]:
        """A queue of a work pool by name (APIError 404 if none)."""
        return self._request("GET", f"work_pools/{_quote(pool)}/queues/{_quote(name)}/")

    def get_scheduled_flow_runs(
        self,
        pool: str,
        *,
        scheduled_before: datetime,
        limit: int,
        work_queue_names: list[str] | None = None,
        worker_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """A worker's poll: the pool's due runs (not claimed), by queue priority then expected start; the server
        records the worker's heartbeat."""
        body: dict[str, Any] = {"scheduled_before": scheduled_before.isoformat(), "limit": limit}
        if work_queue_names:
            body["work_queue_names"] = list(work_queue_names)
        if worker_name:
            body["worker_name"] = worker_name
        payload = self._request("POST", f"work_pools/{_quote(pool)}/get_scheduled_flow_runs/", body)
        return payload["results"] if isinstance(payload, dict) else payload

    def send_worker_heartbeat(
        self, pool: str, *, worker_name: str, flow_run_ids: list[str] | None = None
    ) -> dict[str, Any]:
        """Record the worker's heartbeat with the runs it executes; the answer's `cancelling` lists those of
        them to stop."""
        body = {"name": worker_name, "flow_run_ids": list(flow_run_ids or [])}
        return self._request("POST", f"work_pools/{_quote(pool)}/workers/heartbeat/", body) or {}

    def update_flow_run(self, run_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """PATCH a flow run's fields (e.g. `worker_name`, `infrastructure_pid`); returns the run's JSON."""
        return self._request("PATCH", f"flow_runs/{run_id}/", fields)

    def close(self) -> None:
        self._client.close()


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _state_body(state: State) -> dict[str, Any]:
    body = state.to_json()
    body.pop("id", None)
    body.pop("timestamp", None)
    return body


def _recorded_body(state: State) -> dict[str, Any]:
    """A state the client already took a run through: with its timestamp (and a transition id, so a batch
    sent twice is recorded once)."""
    body = _with_transition_id(state).to_json()
    body.pop("id", None)
    return body


def _run_info_from_json(payload: dict[str, Any]) -> RunInfo:
    return RunInfo(
        id=payload["id"],
        name=payload["name"],
        state=State.from_json(payload["state"]) if payload.get("state") else None,
        run_count=payload.get("run_count", 0),
        parameters=payload.get("parameters") or {},
        tags=payload.get("tags") or [],
        flow_id=payload.get("flow"),
        flow_run_id=payload.get("flow_run"),
        deployment_id=payload.get("deployment"),
        parent_task_run_id=payload.get("parent_task_run"),
        task_key=payload.get("task_key"),
        empirical_policy=payload.get("empirical_policy") or {},
    )


_client_lock = threading.Lock()
_clients: dict[tuple, Any] = {}
_in_process_only = False


def use_in_process_client() -> EphemeralClient:
    """From now on this process records its runs in-process through its configured database, whatever
    ORCHESTRATOR_API_URL says: a celery pool's run process has the server's database (docs/workers.md)."""
    global _in_process_only
    _in_process_only = True
    return get_client()


def get_client() -> EphemeralClient | HttpClient:
    """The client for the current settings (one per process and setting, shared by threads)."""
    api_url = None if _in_process_only else config.get("ORCHESTRATOR_API_URL")
    key = (api_url, config.get("ORCHESTRATOR_API_KEY") if api_url else None)
    client = _clients.get(key)
    if client is None:
        with _client_lock:
            client = _clients.get(key)
            if client is None:
                client = HttpClient(api_url, key[1]) if api_url else EphemeralClient()
                _clients[key] = client
    return client
