"""What `orchestrator work-pool ...` and `orchestrator work-queue ...` share: one backend interface returning the
API's JSON shapes, served from the configured database (through the same serializers and services as the API) or
from the server when ORCHESTRATOR_API_URL is set, as apps/deployments/cli.py does for deployments."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from apps.deployments import cli as deployments_cli


def _name(value: str) -> str:
    return quote(value, safe="")


class DatabaseBackend(deployments_cli.DatabaseBackend):
    """Reads and writes the configured database in this process."""

    def _pool(self, name: str):
        from apps.work_pools.selectors import work_pool_require

        return self._call(work_pool_require, name=name)

    def _validated(self, serializer_class: type, body: dict[str, Any]) -> dict[str, Any]:
        def validate() -> dict[str, Any]:
            serializer = serializer_class(data=body)
            serializer.is_valid(raise_exception=True)
            return dict(serializer.validated_data)

        return self._call(validate)

    def create_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        from apps.work_pools import services
        from apps.work_pools.api import serializers as s

        values = self._validated(s.WorkPoolCreateSerializer, body)
        return self._json(s.WorkPoolSerializer(self._call(services.work_pool_create, **values)).data)

    def pools(self) -> list[dict[str, Any]]:
        """Every pool, with `queue_count` and `workers_online` added."""
        from apps.work_pools.api.serializers import WorkPoolSerializer
        from apps.work_pools.selectors import work_pool_summaries, work_pools_all

        pools = list(work_pools_all()[:1000])
        summaries = work_pool_summaries(pools=pools)
        rows = self._json(WorkPoolSerializer(pools, many=True).data)
        for row, pool in zip(rows, pools, strict=True):
            row["queue_count"], row["workers_online"] = summaries[pool.id]
        return rows

    def pool(self, name: str) -> dict[str, Any]:
        from apps.work_pools.api.serializers import WorkPoolSerializer

        return self._json(WorkPoolSerializer(self._pool(name)).data)

    def update_pool(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from apps.work_pools import services
        from apps.work_pools.api import serializers as s

        pool = self._pool(name)
        values = self._validated(s.WorkPoolUpdateSerializer, body)
        return self._json(s.WorkPoolSerializer(services.work_pool_update(pool=pool, values=values)).data)

    def delete_pool(self, name: str) -> None:
        from apps.work_pools import services

        services.work_pool_delete(pool=self._pool(name))

    def queues(self, pool_name: str) -> list[dict[str, Any]]:
        from apps.work_pools.api.serializers import WorkQueueSerializer
        from apps.work_pools.selectors import work_queues_of

        queues = work_queues_of(pool=self._pool(pool_name)).select_related("pool")
        return self._json(WorkQueueSerializer(queues, many=True).data)

    def workers(self, pool_name: str) -> list[dict[str, Any]]:
        from apps.work_pools.api.serializers import WorkerSerializer
        from apps.work_pools.selectors import workers_of

        workers = workers_of(pool=self._pool(pool_name)).select_related("pool")
        return self._json(WorkerSerializer(workers, many=True).data)

    def create_queue(self, pool_name: str, body: dict[str, Any]) -> dict[str, Any]:
        from apps.work_pools import services
        from apps.work_pools.api import serializers as s

        pool = self._pool(pool_name)
        values = self._validated(s.WorkQueueCreateSerializer, body)
        return self._json(s.WorkQueueSerializer(self._call(services.work_queue_create, pool=pool, **values)).data)

    def update_queue(self, pool_name: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from apps.work_pools import services
        from apps.work_pools.api import serializers as s
        from apps.work_pools.selectors import work_queue_require

        queue = self._call(work_queue_require, pool=self._pool(pool_name), name=name)
        values = self._validated(s.WorkQueueUpdateSerializer, body)
        return self._json(s.WorkQueueSerializer(services.work_queue_update(queue=queue, values=values)).data)


class HttpBackend(deployments_cli.HttpBackend):
    """The same operations through the server's REST API."""

    def create_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "work_pools/", json=body)

    def pools(self) -> list[dict[str, Any]]:
        rows = self._request("GET", "work_pools/", params={"limit": 1000})["results"]
        for row in rows:
            row["queue_count"] = len(self.queues(row["name"]))
            row["workers_online"] = sum(1 for worker in self.workers(row["name"]) if worker["status"] == "online")
        return rows

    def pool(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"work_pools/{_name(name)}/")

    def update_pool(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("PATCH", f"work_pools/{_name(name)}/", json=body)

    def delete_pool(self, name: str) -> None:
        self._request("DELETE", f"work_pools/{_name(name)}/")

    def queues(self, pool_name: str) -> list[dict[str, Any]]:
        return self._request("GET", f"work_pools/{_name(pool_name)}/queues/", params={"limit": 1000})["results"]

    def workers(self, pool_name: str) -> list[dict[str, Any]]:
        return self._request("GET", f"work_pools/{_name(pool_name)}/workers/", params={"limit": 1000})["results"]

    def create_queue(self, pool_name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", f"work_pools/{_name(pool_name)}/queues/", json=body)

    def update_queue(self, pool_name: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("PATCH", f"work_pools/{_name(pool_name)}/queues/{_name(name)}/", json=body)


def backend() -> DatabaseBackend | HttpBackend:
    """The server when ORCHESTRATOR_API_URL is set, else the configured database."""
    from orchestrator import config

    api_url = config.get("ORCHESTRATOR_API_URL")
    if api_url:
        return HttpBackend(api_url, config.get("ORCHESTRATOR_API_KEY"))
    return DatabaseBackend()


def limit_text(value: int | None) -> str:
    return "-" if value is None else str(value)


def yes_no(value: bool) -> str:
    return "yes" if value else "no"
