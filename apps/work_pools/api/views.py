"""Work pool endpoints (looked up by name): pools, their queues and workers, a worker's poll and heartbeat.
Each view parses, calls one service or selector, and renders."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.db import fetch_row
from apps.core.errors import NotFound
from apps.runs.api.serializers import FlowRunSerializer
from apps.runs.models import FlowRun, TaskRun
from apps.work_pools import selectors, services, waiting
from apps.work_pools.api import serializers as s
from apps.work_pools.models import WorkPool

# A name in a URL: anything but '/' and control characters (names cannot contain them either).
NAME_PATTERN = "[^/\\x00-\\x1f\\x7f]+"


class WorkPoolViewSet(viewsets.GenericViewSet):
    queryset = selectors.work_pools_all()
    serializer_class = s.WorkPoolSerializer
    lookup_field = "name"
    lookup_value_regex = NAME_PATTERN
    filterset_class = None
    ordering_fields = ["name", "created", "updated"]

    def _pool(self, name: str) -> WorkPool:
        return selectors.work_pool_require(name=name)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.WorkPoolSerializer(page, many=True).data)

    @extend_schema(request=s.WorkPoolCreateSerializer, responses=s.WorkPoolSerializer)
    def create(self, request: Request) -> Response:
        """Create a pool with its `default` queue (409 if the name is taken)."""
        serializer = s.WorkPoolCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pool = services.work_pool_create(**serializer.validated_data)
        return Response(s.WorkPoolSerializer(pool).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(s.WorkPoolSerializer(self._pool(name)).data)

    @extend_schema(request=s.WorkPoolUpdateSerializer, responses=s.WorkPoolSerializer)
    def partial_update(self, request: Request, name: str) -> Response:
        pool = self._pool(name)
        serializer = s.WorkPoolUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(
            s.WorkPoolSerializer(services.work_pool_update(pool=pool, values=serializer.validated_data)).data
        )

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request: Request, name: str) -> Response:
        services.work_pool_delete(pool=self._pool(name))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], operation_id="work_pools_queues_list", responses=s.WorkQueueSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        operation_id="work_pools_queues_create",
        request=s.WorkQueueCreateSerializer,
        responses=s.WorkQueueSerializer,
    )
    @action(detail=True, methods=["get", "post"], filterset_class=None)
    def queues(self, request: Request, name: str) -> Response:
        pool = self._pool(name)
        if request.method == "GET":
            page = self.paginate_queryset(selectors.work_queues_of(pool=pool).select_related("pool"))
            return self.get_paginated_response(s.WorkQueueSerializer(page, many=True).data)
        serializer = s.WorkQueueCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        queue = services.work_queue_create(pool=pool, **serializer.validated_data)
        return Response(s.WorkQueueSerializer(queue).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], operation_id="work_pools_queue_retrieve", request=None)
    @extend_schema(methods=["PATCH"], operation_id="work_pools_queue_update", request=s.WorkQueueUpdateSerializer)
    @extend_schema(methods=["DELETE"], operation_id="work_pools_queue_destroy", request=None, responses={204: None})
    @extend_schema(responses=s.WorkQueueSerializer)
    @action(
        detail=True,
        methods=["get", "patch", "delete"],
        url_path=f"queues/(?P<queue_name>{NAME_PATTERN})",
        filterset_class=None,
        pagination_class=None,
    )
    def queue(self, request: Request, name: str, queue_name: str) -> Response:
        queue = selectors.work_queue_require(pool=self._pool(name), name=queue_name)
        if request.method == "DELETE":
            services.work_queue_delete(queue=queue)
            return Response(status=status.HTTP_204_NO_CONTENT)
        if request.method == "PATCH":
            serializer = s.WorkQueueUpdateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            queue = services.work_queue_update(queue=queue, values=serializer.validated_data)
        return Response(s.WorkQueueSerializer(queue).data)

    @extend_schema(responses=s.WorkerSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_class=None)
    def workers(self, request: Request, name: str) -> Response:
        """The pool's workers with their last heartbeat and status (online or offline)."""
        page = self.paginate_queryset(selectors.workers_of(pool=self._pool(name)).select_related("pool"))
        return self.get_paginated_response(s.WorkerSerializer(page, many=True).data)

    @extend_schema(request=s.GetScheduledFlowRunsSerializer, responses=FlowRunSerializer(many=True))
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def get_scheduled_flow_runs(self, request: Request, name: str) -> Response:
        """A worker's poll: the due runs it may claim (without claiming them); records its heartbeat."""
        pool = self._pool(name)
        serializer = s.GetScheduledFlowRunsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        runs = selectors.flow_runs_due(
            pool=pool,
            before=data.get("scheduled_before"),
            limit=data["limit"],
            queue_names=data.get("work_queue_names"),
        )
        if data.get("worker_name"):
            services.worker_heartbeat(pool=pool, name=data["worker_name"])
        return Response(FlowRunSerializer(runs, many=True).data)

    @extend_schema(request=s.WorkerHeartbeatSerializer, responses=dict)
    @action(detail=True, methods=["post"], url_path="workers/heartbeat", filterset_class=None, pagination_class=None)
    def heartbeat(self, request: Request, name: str) -> Response:
        """A worker is alive; the answer lists which of its runs are being cancelled (it stops them)."""
        pool = self._pool(name)
        serializer = s.WorkerHeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.worker_heartbeat(pool=pool, name=serializer.validated_data["name"])
        return Response(
            {"cancelling": selectors.flow_runs_cancelling(run_ids=serializer.validated_data["flow_run_ids"])}
        )


class FlowRunWaitingView(APIView):
    """`GET /api/flow_runs/{id}/waiting/`: why a flow run has not started (docs/waiting.md): its status and the
    ordered reasons, each a code, a sentence and its details."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, run_id: str) -> Response:
        run = FlowRun.objects.select_related("deployment").filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"no flow run with id {run_id}")
        return Response(waiting.flow_run_waiting(run=run).to_json())


class TaskRunWaitingView(APIView):
    """`GET /api/task_runs/{id}/waiting/`: why a task run has not started (docs/waiting.md)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, run_id: str) -> Response:
        run = fetch_row(TaskRun, run_id)
        if run is None:
            raise NotFound(f"no task run with id {run_id}")
        return Response(waiting.task_run_waiting(run=run).to_json())
