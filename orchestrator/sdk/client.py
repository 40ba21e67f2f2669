"""One client interface, two implementations.

`EphemeralClient` records runs in-process through the same services and engine the server uses (Django
loads on first use, the SQLite database in ORCHESTRATOR_HOME is migrated if needed). `HttpClient` talks to a
server's REST API with keep-alive, a bearer key and retries with backoff. `get_client()` picks one from
ORCHESTRATOR_API_URL, so the same flow file behaves the same in both modes.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from apps.orchestration.states import State, StateType
from orchestrator import config
from orchestrator.sdk.exceptions import APIError


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


class EphemeralClient:
    """Records runs in this process's database connection (SQLite in ORCHESTRATOR_HOME by default)."""

    mode = "ephemeral"

    def __init__(self) -> None:
        _setup_django()
        self._flow_ids: dict[str, str] = {}

    def ensure_flow(self, name: str) -> str:
        if name not in self._flow_ids:
            from apps.flows.services import flow_get_or_create

            flow, _ = flow_get_or_create(name=name)
            self._flow_ids[name] = str(flow.id)
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
            parent_task_run=parent,
            empirical_policy=empirical_policy,
            flow_version=flow_version,
        )
        return _flow_run_info(run)

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
    ) -> RunInfo:
        from apps.runs import services

        run, _ = services.task_run_create(
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

    def _propose(self, kind: str, run_id: str, state: State, force: bool) -> StateResult:
        from apps.orchestration import engine

        result = engine.propose_state(kind=kind, run_id=run_id, state=_with_transition_id(state), force=force)
        return StateResult(result.status.value, result.state, result.reason, result.delay_seconds)

    def read_flow_run(self, run_id: str) -> RunInfo:
        from apps.runs.models import FlowRun

        return _flow_run_info(FlowRun.objects.get(pk=run_id))

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

    def close(self) -> None:
        from django.db import connection

        connection.close()


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

    def __init__(self, api_url: str, api_key: str | None = None) -> None:
        import httpx

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

    def read_flow_run(self, run_id: str) -> RunInfo:
        return _run_info_from_json(self._request("GET", f"flow_runs/{run_id}/"))

    def create_logs(self, entries: list[dict[str, Any]]) -> None:
        self._request("POST", "logs/", entries)

    def close(self) -> None:
        self._client.close()


def _state_body(state: State) -> dict[str, Any]:
    body = state.to_json()
    body.pop("id", None)
    body.pop("timestamp", None)
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


def get_client() -> EphemeralClient | HttpClient:
    """The client for the current settings (one per process and setting, shared by threads)."""
    api_url = config.get("ORCHESTRATOR_API_URL")
    key = (api_url, config.get("ORCHESTRATOR_API_KEY") if api_url else None)
    client = _clients.get(key)
    if client is None:
        with _client_lock:
            client = _clients.get(key)
            if client is None:
                client = HttpClient(api_url, key[1]) if api_url else EphemeralClient()
                _clients[key] = client
    return client


def is_terminal_type(state_type: StateType | str) -> bool:
    return StateType(state_type) in {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
