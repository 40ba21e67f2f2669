"""What `orchestrator deploy` and `orchestrator deployment ...` share: one backend interface returning the
API's JSON shapes, served from the configured database (`DatabaseBackend`, through the same serializers and
services as the API) or from the server when ORCHESTRATOR_API_URL is set (`HttpBackend`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.base import CommandError


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`--param k=v` values: v is read as JSON when it is JSON (numbers, true, lists), else as text."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        if not separator or not key.strip():
            raise CommandError(f"--param {pair!r} is not KEY=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        parameters[key.strip()] = value
    return parameters


def _error_message(exc: BaseException) -> str:
    from rest_framework.exceptions import APIException

    from apps.core.api.exceptions import exception_handler
    from apps.core.errors import OrchestratorError

    if isinstance(exc, OrchestratorError | APIException):
        response = exception_handler(exc, {})
        return str(response.data.get("message"))
    return str(exc)


class DatabaseBackend:
    """Reads and writes the configured database in this process."""

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from rest_framework.exceptions import APIException

        from apps.core.errors import OrchestratorError

        try:
            return fn(*args, **kwargs)
        except (OrchestratorError, APIException) as exc:
            raise CommandError(_error_message(exc)) from None

    def _json(self, data: Any) -> Any:
        from rest_framework.utils.encoders import JSONEncoder

        return json.loads(json.dumps(data, cls=JSONEncoder))

    def _deployment(self, reference: str):
        from apps.deployments.selectors import deployment_find

        deployment = deployment_find(reference=reference)
        if deployment is None:
            raise CommandError(f"no deployment {reference!r} (give FLOW/DEPLOYMENT or an id)")
        return deployment

    def upsert(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        from apps.deployments.api.serializers import DeploymentSerializer, DeploymentWriteSerializer
        from apps.deployments.selectors import deployment_get
        from apps.deployments.services import deployment_upsert
        from apps.flows.services import flow_get_or_create

        def upsert() -> tuple[dict[str, Any], bool]:
            serializer = DeploymentWriteSerializer(data=body)
            serializer.is_valid(raise_exception=True)
            flow, _ = flow_get_or_create(name=serializer.validated_data["flow_name"])
            deployment, created = deployment_upsert(
                flow=flow,
                name=serializer.validated_data["name"],
                values=serializer.values(),
                schedules=serializer.schedules_given(),
            )
            return self._json(DeploymentSerializer(deployment_get(deployment_id=deployment.id)).data), created

        return self._call(upsert)

    def find(self, reference: str) -> dict[str, Any]:
        from apps.deployments.api.serializers import DeploymentSerializer

        return self._json(DeploymentSerializer(self._deployment(reference)).data)

    def list(self) -> list[dict[str, Any]]:
        from apps.deployments.api.serializers import DeploymentSerializer
        from apps.deployments.selectors import deployments_with_schedules

        return self._json(DeploymentSerializer(deployments_with_schedules()[:1000], many=True).data)

    def set_paused(self, reference: str, paused: bool) -> dict[str, Any]:
        from apps.deployments import services
        from apps.deployments.api.serializers import DeploymentSerializer
        from apps.deployments.selectors import deployment_get

        deployment = self._deployment(reference)
        change = services.deployment_pause if paused else services.deployment_resume
        change(deployment=deployment)
        return self._json(DeploymentSerializer(deployment_get(deployment_id=deployment.id)).data)

    def create_run(self, reference: str, parameters: dict[str, Any]) -> dict[str, Any]:
        from apps.deployments.api.serializers import CreateFlowRunSerializer
        from apps.deployments.services import deployment_create_flow_run
        from apps.runs.api.serializers import FlowRunSerializer

        deployment = self._deployment(reference)

        def create() -> dict[str, Any]:
            serializer = CreateFlowRunSerializer(data={"parameters": parameters})
            serializer.is_valid(raise_exception=True)
            run, _ = deployment_create_flow_run(deployment=deployment, **serializer.validated_data)
            return self._json(FlowRunSerializer(run).data)

        return self._call(create)

    def read_run(self, run_id: str) -> dict[str, Any]:
        from apps.runs.api.serializers import FlowRunSerializer
        from apps.runs.selectors import flow_run_get

        return self._json(FlowRunSerializer(flow_run_get(run_id=uuid.UUID(run_id))).data)

    def run_states(self, run_id: str) -> list[dict[str, Any]]:
        from apps.runs.api.serializers import StateRecordSerializer
        from apps.runs.selectors import flow_run_get, flow_run_states

        run = flow_run_get(run_id=uuid.UUID(run_id))
        return [] if run is None else self._json(StateRecordSerializer(flow_run_states(run=run), many=True).data)

    def work_pool_exists(self, name: str) -> bool:
        from apps.work_pools.selectors import work_pool_get

        return work_pool_get(name=name) is not None

    def upcoming_runs(self, deployment_id: str, limit: int = 5) -> list[dict[str, Any]]:
        from apps.deployments.selectors import deployment_upcoming_runs
        from apps.runs.api.serializers import FlowRunSerializer

        runs = deployment_upcoming_runs(deployment_id=uuid.UUID(deployment_id), limit=limit)
        return self._json(FlowRunSerializer(runs, many=True).data)


class HttpBackend:
    """The same operations through the server's REST API."""

    def __init__(self, api_url: str, api_key: str | None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=api_url.rstrip("/") + "/", headers=headers, timeout=30)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response; a transport failure or an error answer is one CommandError line."""
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CommandError(f"cannot reach the API at {self.client.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except (ValueError, AttributeError):
                message = response.text
            raise CommandError(f"the API answered {response.status_code}: {message[:500]}")
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else None

    def upsert(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        response = self._send("POST", "deployments/", json=body)
        return response.json(), response.status_code == 201

    def find(self, reference: str) -> dict[str, Any]:
        if "/" in reference:
            flow_name, _, name = reference.partition("/")
            found = self._request("GET", "deployments/", params={"flow_name": flow_name, "name": name})["results"]
            if not found:
                raise CommandError(f"no deployment {reference!r} (give FLOW/DEPLOYMENT or an id)")
            return found[0]
        try:
            uuid.UUID(reference)
        except ValueError:
            raise CommandError(f"no deployment {reference!r} (give FLOW/DEPLOYMENT or an id)") from None
        return self._request("GET", f"deployments/{reference}/")

    def list(self) -> list[dict[str, Any]]:
        return self._request("GET", "deployments/", params={"limit": 1000})["results"]

    def set_paused(self, reference: str, paused: bool) -> dict[str, Any]:
        deployment = self.find(reference)
        return self._request("POST", f"deployments/{deployment['id']}/{'pause' if paused else 'resume'}/")

    def create_run(self, reference: str, parameters: dict[str, Any]) -> dict[str, Any]:
        deployment = self.find(reference)
        return self._request(
            "POST", f"deployments/{deployment['id']}/create_flow_run/", json={"parameters": parameters}
        )

    def read_run(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"flow_runs/{run_id}/")

    def run_states(self, run_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"flow_runs/{run_id}/states/")

    def work_pool_exists(self, name: str) -> bool:
        from urllib.parse import quote

        import httpx

        try:
            response = self.client.get(f"work_pools/{quote(name, safe='')}/")
        except httpx.TransportError as exc:
            raise CommandError(f"cannot reach the API at {self.client.base_url}: {exc}") from None
        return response.status_code == 200

    def upcoming_runs(self, deployment_id: str, limit: int = 5) -> list[dict[str, Any]]:
        params = {"deployment": deployment_id, "state_type": "SCHEDULED", "ordering": "expected_start_time"}
        return self._request("GET", "flow_runs/", params={**params, "limit": limit})["results"]


def backend() -> DatabaseBackend | HttpBackend:
    """The server when ORCHESTRATOR_API_URL is set, else the configured database."""
    from orchestrator import config

    api_url = config.get("ORCHESTRATOR_API_URL")
    if api_url:
        return HttpBackend(api_url, config.get("ORCHESTRATOR_API_KEY"))
    return DatabaseBackend()
