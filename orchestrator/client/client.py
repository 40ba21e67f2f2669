"""`OrchestratorClient`: every call the SDK, the CLI and the workers make to the API, over one of two transports.

- HTTP (ORCHESTRATOR_API_URL set): an `httpx.Client` with keep-alive and the bearer key (ORCHESTRATOR_API_KEY).
- In-process (unset): the same requests answered by this process's own Django application (in_process.py).

Retries, timeouts and errors live here once: connection failures, 5xx and 429 are retried with capped
exponential backoff (ORCHESTRATOR_CLIENT_RETRIES, ..._BACKOFF_SECONDS, ..._BACKOFF_CAP_SECONDS); refusals (4xx)
are not; every failure is one `ClientError` line naming the request and the cause (errors.py). A server that
answered this client before and then goes away (a restart: connections refused or cut, 502/503/504) is waited for
longer, up to ORCHESTRATOR_CLIENT_OUTAGE_SECONDS (docs/faults.md); a server never reached fails after the retries.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from orchestrator import config
from orchestrator.client.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServerError,
    ServerUnreachable,
    SlotsUnavailable,
    Unauthorized,
)
from orchestrator.client.models import RunInfo, StateResult, recorded_state_body, state_body, with_transition_id
from orchestrator.states import State

IN_PROCESS_BASE_URL = "http://in-process/api/"
# Answers of a server that is restarting or whose database is (a proxy's 502 and 504, the API's own 503).
OUTAGE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class ClientSettings:
    """The client's tunables (README: configuration)."""

    retries: int = 5
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    backoff_seconds: float = 0.1
    backoff_cap_seconds: float = 5.0
    outage_seconds: float = 120.0

    @classmethod
    def from_config(cls) -> ClientSettings:
        """The settings' values; ConfigError (one line naming the setting) for a malformed one."""
        return cls(
            retries=int(_setting("ORCHESTRATOR_CLIENT_RETRIES")),
            timeout_seconds=float(_setting("ORCHESTRATOR_CLIENT_TIMEOUT_SECONDS")),
            connect_timeout_seconds=float(_setting("ORCHESTRATOR_CLIENT_CONNECT_TIMEOUT_SECONDS")),
            backoff_seconds=float(_setting("ORCHESTRATOR_CLIENT_BACKOFF_SECONDS")),
            backoff_cap_seconds=float(_setting("ORCHESTRATOR_CLIENT_BACKOFF_CAP_SECONDS")),
            outage_seconds=float(_setting("ORCHESTRATOR_CLIENT_OUTAGE_SECONDS")),
        )


def _setting(name: str) -> str:
    value, source = config.resolve(name)
    validate = config.SETTINGS[name].validate
    if value is None:
        raise config.ConfigError(f"{name} ({source}): not set")
    problem = validate(value) if validate is not None else None
    if problem:
        raise config.ConfigError(f"{name} ({source}): {problem}")
    return value


def _quote(name: str) -> str:
    return quote(name, safe="")


class OrchestratorClient:
    """The API's operations as typed methods; `api_url=None` answers them in this process."""

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        retries: int | None = None,
        settings: ClientSettings | None = None,
    ) -> None:
        import httpx

        self.settings = settings or ClientSettings.from_config()
        # e.g. a worker's poll: it tries again on its next tick instead
        self.retries = self.settings.retries if retries is None else retries
        self.api_url = api_url
        self.in_process = api_url is None
        # Set once the server answered (any status): from then on a refused connection is an outage to ride out
        # (a restart), not a wrong URL or a server never started.
        self.answered_before = False
        # In-process, task run records skip the request (in_process.record_task_runs); False sends them through
        # the API like every other call (the test that compares both paths uses it).
        self.direct_recording = True
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        timeout = httpx.Timeout(self.settings.timeout_seconds, connect=self.settings.connect_timeout_seconds)
        if api_url is None:
            from orchestrator.client.in_process import in_process_transport

            transport = in_process_transport()
            self._http = httpx.Client(
                base_url=IN_PROCESS_BASE_URL, headers=headers, timeout=timeout, transport=transport
            )
        else:
            self._http = httpx.Client(
                base_url=api_url.rstrip("/") + "/",
                headers=headers,
                timeout=timeout,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            )
        self._httpx = httpx

    @property
    def mode(self) -> str:
        return "ephemeral" if self.in_process else "http"

    # -- one request, its retries and its errors --------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        *,
        retries: int | None = None,
    ) -> Any:
        """The decoded JSON answer (None when empty); ClientError after the retries, or at once for a 4xx."""
        return self._send(method, path, json=json, params=params, retries=retries)[1]

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retries: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        attempts = 1 + (self.retries if retries is None else retries)
        delay = self.settings.backoff_seconds
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except self._httpx.TransportError as exc:
                outage = not isinstance(exc, self._httpx.TimeoutException)
                if not self._try_again(attempt, attempts, started, outage=outage):
                    raise self._unreachable(method, path, exc, attempt) from None
            else:
                self.answered_before = True
                status = response.status_code
                if status < 400:
                    return status, (response.json() if response.content else None)
                if status < 500 and status != 429:
                    raise self._error(method, response, attempt) from None
                if not self._try_again(attempt, attempts, started, outage=status in OUTAGE_STATUSES):
                    raise self._error(method, response, attempt) from None
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, self.settings.backoff_cap_seconds)

    def _try_again(self, attempt: int, attempts: int, started: float, *, outage: bool) -> bool:
        """Whether a failed attempt is sent again: within the retries, or while a server that answered before is
        down or unavailable, for ORCHESTRATOR_CLIENT_OUTAGE_SECONDS. A caller that asked for no retries (a worker's
        poll: its next tick asks again) gets none, and nor does the in-process mode: no server restarts there, and
        a database it cannot reach is reported after the retries."""
        if attempt < attempts:
            return True
        return (
            attempts > 1
            and not self.in_process
            and outage
            and self.answered_before
            and time.monotonic() - started < self.settings.outage_seconds
        )

    # -- answers of a known shape: a JSON object, a list of objects, or a page's `results` ---------------------
    def _object(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._as_object(self.request(method, path, json, params), method, path)

    def _objects(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return self._as_objects(self.request(method, path, json, params), method, path)

    def _results(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return self._as_objects(self._object(method, path, json, params).get("results"), method, path)

    def _as_object(self, answer: Any, method: str, path: str) -> dict[str, Any]:
        """`answer` when it is a JSON object; else a ServerError naming the request (not the API's answer)."""
        if not isinstance(answer, dict):
            raise self._unexpected(answer, "a JSON object", method, path)
        return answer

    def _as_objects(self, answer: Any, method: str, path: str) -> list[dict[str, Any]]:
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise self._unexpected(answer, "a list of JSON objects", method, path)
        return answer

    def _unexpected(self, answer: Any, expected: str, method: str, path: str) -> ServerError:
        got = "nothing" if answer is None else f"a {type(answer).__name__}"
        where = self._describe(method, self._http.base_url.join(path), status=500)
        return ServerError(
            f"the answer is {got}, not {expected}: is ORCHESTRATOR_API_URL this orchestrator's API?", request=where
        )

    def _describe(self, method: str, url: Any, *, status: int | None = None) -> str:
        """The request as an error names it: its method and URL. In-process there is no URL to check, and a
        refusal (4xx) is the message alone; a server failure still names the path, for the server log."""
        if self.in_process:
            return f"{method} {urlsplit(str(url)).path} (in-process)" if status is None or status >= 500 else ""
        return f"{method} {url}"

    def _unreachable(self, method: str, path: str, exc: Exception, attempts: int) -> ServerUnreachable:
        url = self._http.base_url.join(path)
        host = urlsplit(str(url)).hostname
        text = str(exc) or type(exc).__name__
        lowered = text.lower()
        if isinstance(exc, self._httpx.TimeoutException):
            cause = f"no answer within {self.settings.timeout_seconds:g} s"
        elif (
            "name or service not known" in lowered or "name resolution" in lowered or "nodename nor servname" in lowered
        ):
            cause = f"the host name {host!r} does not resolve; check ORCHESTRATOR_API_URL"
        elif "refused" in lowered:
            cause = "connection refused; is the server running (`orchestrator server start`)?"
        else:
            cause = text.splitlines()[0]
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        return ServerUnreachable(f"cannot reach the API: {cause}{tries}", request=self._describe(method, url))

    def _error(self, method: str, response: Any, attempts: int) -> ClientError:
        status = response.status_code
        where = self._describe(method, response.request.url, status=status)
        content_type = response.headers.get("content-type", "")
        payload = None
        if "json" in content_type:
            try:
                payload = response.json()
            except ValueError:
                payload = None
        if isinstance(payload, dict) and payload.get("message"):
            message = str(payload["message"])
        elif status == 404:
            base_path = urlsplit(str(self._http.base_url)).path.rstrip("/")
            if not base_path.endswith("/api"):
                message = (
                    f"answered 404 with {'an HTML page' if 'html' in content_type else 'a non-API page'}: "
                    f"ORCHESTRATOR_API_URL must end in /api (e.g. http://127.0.0.1:4200/api)"
                )
            else:
                message = "answered 404 with a page that is not the API's; check ORCHESTRATOR_API_URL"
        else:
            first = next((line.strip() for line in response.text.splitlines() if line.strip()), "")
            kind = "an HTML page" if "html" in content_type else (first[:200] or "an empty body")
            message = f"answered {status} {response.reason_phrase} with {kind}"
        if status >= 500 or status == 429:
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            return ServerError(f"the server failed{tries}: {message}", status_code=status, request=where)
        if status == 404 and not isinstance(payload, dict):  # not the API's answer: a wrong URL, not a missing object
            return ClientError(message, status_code=status, request=where)
        kind = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 423: SlotsUnavailable}.get(
            status, InvalidInput
        )
        return kind(message, status_code=status, request=where)

    # -- flows and runs (the SDK's hot path) ------------------------------------------------------------------
    def ensure_flow(self, name: str) -> str:
        """The id of the flow named `name`, created if needed. Not cached: the flow may be deleted (UI, API, a
        reset database) while this process lives."""
        return str(self._object("POST", "flows/", {"name": name})["id"])

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
        body: dict[str, Any] = {
            "flow": flow_id,
            "name": name,
            "parameters": parameters,
            "tags": tags,
            "parent_task_run": parent_task_run_id,
            "flow_version": flow_version,
            "state": state_body(state),
            # Makes a retried create return the run the first attempt made.
            "idempotency_key": uuid.uuid4().hex,
        }
        if next_state is not None:
            body["next_state"] = state_body(next_state)
        if empirical_policy:
            body["empirical_policy"] = empirical_policy
        return RunInfo.from_json(self.request("POST", "flow_runs/", body))

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
        body: dict[str, Any] = {
            "flow_run": flow_run_id,
            "task_key": task_key,
            "dynamic_key": dynamic_key,
            "name": name,
            "tags": tags,
            "cache_key": cache_key,
            "cache_expiration": cache_expiration.isoformat() if cache_expiration else None,
            "task_inputs": task_inputs or {},
            "state": state_body(state),
        }
        if next_state is not None:
            body["next_state"] = state_body(next_state)
        if empirical_policy:
            body["empirical_policy"] = empirical_policy
        return RunInfo.from_json(self.request("POST", "task_runs/", body))

    def set_flow_run_state(self, run_id: str, state: State, *, force: bool = False) -> StateResult:
        return self._propose("flow_runs", run_id, state, force)

    def set_task_run_state(self, run_id: str, state: State, *, force: bool = False) -> StateResult:
        return self._propose("task_runs", run_id, state, force)

    def _propose(self, collection: str, run_id: str, state: State, force: bool) -> StateResult:
        body = {"state": state_body(state), "force": force}
        return StateResult.from_json(self.request("POST", f"{collection}/{run_id}/set_state/", body), state)

    def record_task_runs(
        self, task_runs: list[dict[str, Any]], states: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Record task runs this process already ran, and later states (see RunRecordShipper): one request."""
        for record in task_runs:
            for state in record["states"]:
                with_transition_id(state)
        for item in states:
            with_transition_id(item["state"])
        if self.in_process and self.direct_recording:
            from orchestrator.client.in_process import record_task_runs

            return record_task_runs(task_runs, states)
        body = {
            "task_runs": [
                {**record, "states": [recorded_state_body(state) for state in record["states"]]} for record in task_runs
            ],
            "states": [{"task_run": item["task_run"], "state": recorded_state_body(item["state"])} for item in states],
        }
        answer = self._object("POST", "task_runs/record/", body)
        return answer["task_runs"], answer["states"]

    def read_flow_run(self, run_id: str) -> RunInfo:
        return RunInfo.from_json(self.request("GET", f"flow_runs/{run_id}/"))

    def create_logs(self, entries: list[dict[str, Any]], *, batch_key: str | None = None) -> None:
        """Store log lines. A batch sent again with the same `batch_key` (its answer was lost) is stored once."""
        headers = {"Idempotency-Key": batch_key} if batch_key else None
        self._send("POST", "logs/", json=entries, headers=headers)

    # -- flow runs as the CLI shows them (the API's JSON) -----------------------------------------------------
    def read_flow_run_json(self, run_id: str) -> dict[str, Any]:
        return self._object("GET", f"flow_runs/{run_id}/")

    def read_flow_run_states(self, run_id: str) -> list[dict[str, Any]]:
        """The run's state history, oldest first."""
        return self._objects("GET", f"flow_runs/{run_id}/states/")

    def read_flow_runs(
        self,
        *,
        state_types: list[str] | None = None,
        state_names: list[str] | None = None,
        flow_name: str | None = None,
        deployment_id: str | None = None,
        ordering: str | None = None,
        upcoming: bool | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if upcoming is not None:
            params["upcoming"] = "true" if upcoming else "false"
        if state_types:
            params["state_type"] = ",".join(state_types)
        if state_names:
            params["state_name"] = ",".join(state_names)
        if flow_name:
            params["flow_name"] = flow_name
        if deployment_id:
            params["deployment"] = deployment_id
        if ordering:
            params["ordering"] = ordering
        return self._results("GET", "flow_runs/", params=params)

    def read_flow_run_waiting(self, run_id: str) -> dict[str, Any]:
        """Why the run has not started yet (its time, a paused or full pool or queue, no online worker...):
        `{"status", "not_waiting_because", "state_type", "state_name", "reasons": [{"code", "message",
        "details"}]}` (docs/waiting.md)."""
        return self._object("GET", f"flow_runs/{run_id}/waiting/")

    def read_task_run_waiting(self, run_id: str) -> dict[str, Any]:
        """Why the task run has not started yet, in the shape of `read_flow_run_waiting`."""
        return self._object("GET", f"task_runs/{run_id}/waiting/")

    def propose_flow_run_state_json(self, run_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """`POST flow_runs/{id}/set_state/` with a state given as JSON; the engine's answer as JSON."""
        return self._object("POST", f"flow_runs/{run_id}/set_state/", {"state": state})

    def read_logs(self, *, flow_run_id: str, since: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The run's log lines (and its tasks'), oldest first, from `since` on."""
        params: dict[str, Any] = {"flow_run": flow_run_id, "limit": limit, "ordering": "timestamp"}
        if since:
            params["timestamp__gte"] = since
        return self._results("GET", "logs/", params=params)

    # -- deployments ------------------------------------------------------------------------------------------
    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update (redeploy) a deployment; returns the API's JSON shape."""
        return self.upsert_deployment(body)[0]

    def upsert_deployment(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or update a deployment; (its JSON, whether it was created)."""
        status, payload = self._send("POST", "deployments/", json=body)
        return self._as_object(payload, "POST", "deployments/"), status == 201

    def read_deployment(self, reference: str) -> dict[str, Any]:
        """A deployment by `flow/deployment` name or id (NotFound if none)."""
        if "/" in reference:
            flow_name, _, name = reference.partition("/")
            params = {"flow_name": flow_name, "name": name}
            found = self._results("GET", "deployments/", params=params)
            if not found:
                url = self._http.base_url.join("deployments/")
                raise NotFound(
                    f"no deployment {reference!r}", status_code=404, request=self._describe("GET", url, status=404)
                )
            return found[0]
        try:
            uuid.UUID(reference)
        except ValueError:
            url = self._http.base_url.join("deployments/")
            raise NotFound(
                f"no deployment {reference!r} (give FLOW/DEPLOYMENT or an id)",
                status_code=404,
                request=self._describe("GET", url, status=404),
            ) from None
        try:
            return self._object("GET", f"deployments/{reference}/")
        except NotFound as exc:
            raise NotFound(f"no deployment {reference!r}", status_code=404, request=exc.request) from None

    def read_deployments(self, *, work_pool_name: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if work_pool_name is not None:
            params["work_pool_name"] = work_pool_name
        return self._results("GET", "deployments/", params=params)

    def set_deployment_paused(self, deployment_id: str, paused: bool) -> dict[str, Any]:
        return self._object("POST", f"deployments/{deployment_id}/{'pause' if paused else 'resume'}/")

    def create_flow_run_from_deployment_json(
        self,
        deployment_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        scheduled_time: datetime | None = None,
    ) -> dict[str, Any]:
        """An ad hoc run of the deployment (Scheduled), as JSON; a retried request returns the run the first one
        made."""
        body: dict[str, Any] = {"parameters": parameters or {}, "tags": tags or [], "idempotency_key": uuid.uuid4().hex}
        if scheduled_time is not None:
            body["scheduled_time"] = scheduled_time.isoformat()
        return self._object("POST", f"deployments/{deployment_id}/create_flow_run/", body)

    def create_flow_run_from_deployment(
        self,
        deployment_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        scheduled_time: datetime | None = None,
    ) -> RunInfo:
        """An ad hoc run of the deployment (Scheduled), its parameters checked against the deployment's schema."""
        return RunInfo.from_json(
            self.create_flow_run_from_deployment_json(
                deployment_id, parameters=parameters, tags=tags, scheduled_time=scheduled_time
            )
        )

    def schedule_deployment_runs(self, deployment_id: str) -> int:
        """Create the deployment's upcoming scheduled runs now (what the scheduler service does)."""
        return int(self.request("POST", f"deployments/{deployment_id}/schedule_runs/")["created"])

    def read_deployment_runs_due(self, deployment_id: str, *, before: datetime, limit: int = 10) -> list[RunInfo]:
        """The deployment's SCHEDULED runs whose time is before `before`, oldest first."""
        params = {
            "deployment": deployment_id,
            "state_type": "SCHEDULED",
            "expected_start_time__lte": before.isoformat(),
            "ordering": "expected_start_time",
            "limit": limit,
        }
        return [RunInfo.from_json(item) for item in self.request("GET", "flow_runs/", params=params)["results"]]

    def read_deployment_upcoming_runs(self, deployment_id: str, *, limit: int = 5) -> list[dict[str, Any]]:
        """The deployment's next SCHEDULED runs, soonest first."""
        return self.read_flow_runs(
            state_types=["SCHEDULED"], deployment_id=deployment_id, ordering="expected_start_time", limit=limit
        )

    # -- work pools, queues and workers -----------------------------------------------------------------------
    def create_work_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("POST", "work_pools/", body)

    def read_work_pools(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        return self._results("GET", "work_pools/", params={"limit": limit})

    def read_work_pool(self, name: str) -> dict[str, Any]:
        """A work pool by name (NotFound if none)."""
        return self._object("GET", f"work_pools/{_quote(name)}/")

    def work_pool_exists(self, name: str) -> bool:
        try:
            self.read_work_pool(name)
        except NotFound:
            return False
        return True

    def update_work_pool(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("PATCH", f"work_pools/{_quote(name)}/", body)

    def delete_work_pool(self, name: str) -> None:
        self.request("DELETE", f"work_pools/{_quote(name)}/")

    # -- tag concurrency limits ---------------------------------------------------------------------------------
    def create_concurrency_limit(self, tag: str, limit: int) -> dict[str, Any]:
        return self._object("POST", "concurrency_limits/", {"tag": tag, "limit": limit})

    def read_concurrency_limits(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        return self._results("GET", "concurrency_limits/", params={"limit": limit})

    def read_concurrency_limit(self, tag: str) -> dict[str, Any]:
        """A tag's limit (NotFound if none)."""
        return self._object("GET", f"concurrency_limits/{_quote(tag)}/")

    def reset_concurrency_limit(self, tag: str) -> dict[str, Any]:
        """Free every slot of a tag's limit."""
        return self._object("POST", f"concurrency_limits/{_quote(tag)}/reset/")

    def delete_concurrency_limit(self, tag: str) -> None:
        self.request("DELETE", f"concurrency_limits/{_quote(tag)}/")

    # -- notification policies ----------------------------------------------------------------------------------
    def create_notification_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("POST", "notification_policies/", body)

    def read_notification_policies(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        return self._results("GET", "notification_policies/", params={"limit": limit})

    def read_notification_policy(self, name: str) -> dict[str, Any]:
        return self._object("GET", f"notification_policies/{_quote(name)}/")

    def delete_notification_policy(self, name: str) -> None:
        self.request("DELETE", f"notification_policies/{_quote(name)}/")

    def test_notification_policy(self, name: str) -> dict[str, Any]:
        """Send a test notification now (a ClientError with the channel's error when it fails)."""
        return self._object("POST", f"notification_policies/{_quote(name)}/test/")

    def read_notification_deliveries(
        self, *, policy: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if policy:
            params["policy"] = policy
        if status:
            params["status"] = status
        return self._results("GET", "notification_deliveries/", params=params)

    # -- API keys (admin scope) -------------------------------------------------------------------------------
    # -- global concurrency limits and leases ----------------------------------------------------------------
    def create_global_concurrency_limit(
        self, name: str, limit: int, *, slot_decay_per_second: float | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "limit": limit, "slot_decay_per_second": slot_decay_per_second}
        return self._object("POST", "global_concurrency_limits/", body)

    def read_global_concurrency_limits(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        return self._results("GET", "global_concurrency_limits/", params={"limit": limit})

    def read_global_concurrency_limit(self, name: str) -> dict[str, Any]:
        return self._object("GET", f"global_concurrency_limits/{_quote(name)}/")

    def reset_global_concurrency_limit(self, name: str) -> dict[str, Any]:
        return self._object("POST", f"global_concurrency_limits/{_quote(name)}/reset/")

    def delete_global_concurrency_limit(self, name: str) -> None:
        self.request("DELETE", f"global_concurrency_limits/{_quote(name)}/")

    def acquire_concurrency_slots(
        self,
        name: str,
        slots: int,
        *,
        mode: str = "concurrency",
        timeout_seconds: float | None = None,
        holder: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """A lease on `slots` slots of the global limit `name`, waiting for them (forever when `timeout_seconds`
        is None); SlotsUnavailable after the timeout. The server waits up to 10 s per request (it answers
        423 then): this asks again until the deadline."""
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        body: dict[str, Any] = {"slots": slots, "mode": mode}
        if holder is not None:
            body["holder_kind"], body["holder_id"] = holder
        while True:
            # Each request waits well within the client's own timeout.
            wait = self.settings.timeout_seconds / 2
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            try:
                return self._object(
                    "POST", f"global_concurrency_limits/{_quote(name)}/acquire/", {**body, "timeout_seconds": wait}
                )
            except ClientError as exc:
                if exc.status_code != 423:
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    raise SlotsUnavailable(
                        f"no {slots} free slot(s) on global concurrency limit {name!r} within {timeout_seconds:g} s",
                        status_code=423,
                        request=exc.request,
                    ) from None

    def wait_for_tag_slots(self, tags: list[str], *, timeout_seconds: float) -> dict[str, Any]:
        """Wait on the server until each limited tag among `tags` has a free slot: `{"free", "waited"}`."""
        return self._object("POST", "concurrency_leases/wait/", {"tags": tags, "timeout_seconds": timeout_seconds})

    def release_concurrency_lease(self, lease_id: str) -> None:
        self.request("POST", f"concurrency_leases/{lease_id}/release/")

    def renew_concurrency_leases(
        self, *, lease_ids: list[str] | None = None, task_run_ids: list[str] | None = None
    ) -> dict[str, Any]:
        """Renew these leases and those the task runs hold: `{"renewed": [ids], "lease_seconds": N}`."""
        body = {"lease_ids": lease_ids or [], "task_run_ids": task_run_ids or []}
        return self._object("POST", "concurrency_leases/renew/", body)

    def create_api_key(self, name: str, *, scope: str, expires_in_days: int | None = None) -> dict[str, Any]:
        """A new key; the answer's `key` is the only time the server shows it."""
        body: dict[str, Any] = {"name": name, "scope": scope}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self._object("POST", "api_keys/", body)

    def read_api_keys(self, *, active: bool | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if active is not None:
            params["active"] = "true" if active else "false"
        return self._results("GET", "api_keys/", params=params)

    def revoke_api_key(self, name: str) -> None:
        self.request("DELETE", f"api_keys/{_quote(name)}/")

    # -- blocks -----------------------------------------------------------------------------------------------
    def read_block_types(self) -> list[dict[str, Any]]:
        """Every block type: slug, version, description and schema (with `secret_fields`)."""
        return self._results("GET", "block_types/")

    def create_block_document(
        self, block_type: str, name: str, data: dict[str, Any], *, overwrite: bool = False
    ) -> dict[str, Any]:
        """Save a block document (Conflict if the name is taken for this type, unless `overwrite`); the answer's
        secret values are masked."""
        body = {"block_type": block_type, "name": name, "data": data, "overwrite": overwrite}
        return self._object("POST", "block_documents/", body)

    def read_block_document(self, block_type: str, name: str, *, include_secrets: bool = False) -> dict[str, Any]:
        """A block document by its type's slug and its name (NotFound if none); secrets in clear when asked
        (admin scope: Forbidden otherwise)."""
        params = {"include_secrets": "true"} if include_secrets else None
        return self._object("GET", f"block_documents/{_quote(block_type)}/{_quote(name)}/", params=params)

    def read_block_documents(self, *, block_type: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Block documents (secrets masked), by type then name."""
        params: dict[str, Any] = {"limit": limit}
        if block_type is not None:
            params["block_type"] = block_type
        return self._results("GET", "block_documents/", params=params)

    def update_block_document(self, document_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Replace a document's data (validated in full); a secret sent as ******** keeps its stored value."""
        return self._object("PATCH", f"block_documents/{_quote(str(document_id))}/", {"data": data})

    def delete_block_document(self, document_id: str) -> None:
        """Delete a document (Conflict naming the deployments whose storage it is)."""
        self.request("DELETE", f"block_documents/{_quote(str(document_id))}/")

    def read_work_queues(self, pool: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        return self._results("GET", f"work_pools/{_quote(pool)}/queues/", params={"limit": limit})

    def read_work_queue(self, pool: str, name: str) -> dict[str, Any]:
        """A queue of a work pool by name (NotFound if none)."""
        return self._object("GET", f"work_pools/{_quote(pool)}/queues/{_quote(name)}/")

    def create_work_queue(self, pool: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("POST", f"work_pools/{_quote(pool)}/queues/", body)

    def update_work_queue(self, pool: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._object("PATCH", f"work_pools/{_quote(pool)}/queues/{_quote(name)}/", body)

    def read_workers(self, pool: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        return self._results("GET", f"work_pools/{_quote(pool)}/workers/", params={"limit": limit})

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
        path = f"work_pools/{_quote(pool)}/get_scheduled_flow_runs/"
        payload = self.request("POST", path, body)
        return self._as_objects(payload["results"] if isinstance(payload, dict) else payload, "POST", path)

    def send_worker_heartbeat(
        self, pool: str, *, worker_name: str, flow_run_ids: list[str] | None = None
    ) -> dict[str, Any]:
        """Record the worker's heartbeat with the runs it executes; the answer's `cancelling` lists those of
        them to stop."""
        body = {"name": worker_name, "flow_run_ids": list(flow_run_ids or [])}
        path = f"work_pools/{_quote(pool)}/workers/heartbeat/"
        return self._as_object(self.request("POST", path, body) or {}, "POST", path)

    def update_flow_run(self, run_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """PATCH a flow run's fields (e.g. `worker_name`, `infrastructure_pid`); returns the run's JSON."""
        return self._object("PATCH", f"flow_runs/{run_id}/", fields)

    def close(self) -> None:
        """Close the HTTP connections; in-process, release this process's database connections."""
        if self.in_process:
            from orchestrator.client.in_process import release_database_connections

            release_database_connections()
        else:
            self._http.close()


_client_lock = threading.Lock()
_clients: dict[tuple[str | None, str | None], OrchestratorClient] = {}
_in_process_only = False


def use_in_process_client() -> OrchestratorClient:
    """From now on this process answers its calls in-process through its configured database, whatever
    ORCHESTRATOR_API_URL says: a celery pool's run process has the server's database (docs/workers.md)."""
    global _in_process_only
    _in_process_only = True
    return get_client()


def get_client() -> OrchestratorClient:
    """The client for the current settings (one per process and setting, shared by threads)."""
    api_url = None if _in_process_only else config.get("ORCHESTRATOR_API_URL")
    key = (api_url, config.get("ORCHESTRATOR_API_KEY") if api_url else None)
    client = _clients.get(key)
    if client is None:
        with _client_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = OrchestratorClient(api_url, key[1])
    return client
