"""Flow run and task run endpoints: parse, call one service or selector, render."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.db import fetch_row, fetch_value
from apps.core.errors import NotFound
from apps.flows.models import Flow
from apps.orchestration import engine
from apps.orchestration.rules.base import RunKind
from apps.runs import selectors, services
from apps.runs.api import serializers as s
from apps.runs.api.filters import FlowRunFilterSet, TaskRunFilterSet
from apps.runs.api.record_fast_path import records_accept
from apps.runs.models import FlowRun, TaskRun


def _deployment_model() -> type:
    """The model a flow run's `deployment` points to (through the foreign key: runs does not import deployments,
    which builds on runs)."""
    return FlowRun._meta.get_field("deployment").related_model


RUN_ORDERING = ["created", "expected_start_time", "start_time", "end_time", "name", "state_type", "updated"]


def _require_run(kind: RunKind, run_id: Any) -> None:
    if fetch_value(engine.run_kind_spec(kind).model, run_id, "id") is None:
        raise NotFound(f"no {kind.replace('_', ' ')} with id {run_id}")


def _set_state(kind: RunKind, run_id: Any, request: Request) -> Response:
    """The API's hottest write: no detail route queryset; the engine loads and locks the run itself, and says
    when it does not exist. An unknown run is a 404 even when the body is invalid too."""
    serializer = s.SetStateSerializer(data=request.data)
    if not serializer.is_valid():
        _require_run(kind, run_id)
        raise ValidationError(serializer.errors)
    state, force, proposed_at = serializer.proposal()
    result = engine.propose_state(kind=kind, run_id=run_id, state=state, force=force, proposed_at=proposed_at)
    if result.state is None and result.run is None:
        _require_run(kind, run_id)  # the run exists, so the engine refused with nothing to show
        raise NotFound(result.reason or "run not found")
    return Response(result.to_json(), status=status.HTTP_201_CREATED if result.accepted else status.HTTP_200_OK)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    ordering_fields = RUN_ORDERING
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"


class FlowRunViewSet(RunViewSet):
    queryset = FlowRun.objects.select_related("flow")
    serializer_class = s.FlowRunSerializer
    filterset_class = FlowRunFilterSet

    @extend_schema(request=s.FlowRunCreateSerializer, responses=s.FlowRunSerializer)
    def create(self, request: Request) -> Response:
        serializer = s.FlowRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        flow = fetch_row(Flow, data["flow"])  # the ORM's .first() would compile an ORDER BY per request
        if flow is None:
            raise NotFound(f"no flow with id {data['flow']}", field="flow")
        if data.get("deployment") and fetch_value(_deployment_model(), data["deployment"], "id") is None:
            raise NotFound(f"no deployment with id {data['deployment']}", field="deployment")
        parent = None
        if data.get("parent_task_run"):
            parent = fetch_row(TaskRun, data["parent_task_run"])
            if parent is None:
                raise NotFound(f"no task run with id {data['parent_task_run']}", field="parent_task_run")
        run, created = services.flow_run_create(
            flow=flow,
            name=data.get("name"),
            parameters=data.get("parameters"),
            tags=data.get("tags"),
            state=s.state_from(data.get("state")),
            next_state=s.state_from(data.get("next_state")),
            deployment_id=data.get("deployment"),
            parent_task_run=parent,
            idempotency_key=data.get("idempotency_key"),
            work_pool_name=data.get("work_pool_name"),
            work_queue_name=data.get("work_queue_name"),
            flow_version=data.get("flow_version"),
            empirical_policy=data.get("empirical_policy"),
        )
        return Response(
            s.FlowRunSerializer(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(request=s.FlowRunUpdateSerializer, responses=s.FlowRunSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        serializer = s.FlowRunUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = services.flow_run_update(run=run, **serializer.validated_data)
        return Response(s.FlowRunSerializer(run).data)

    def perform_destroy(self, instance: FlowRun) -> None:
        services.flow_run_delete(run=instance)

    @extend_schema(request=s.SetStateSerializer, responses={201: dict, 200: dict})
    @action(detail=True, methods=["post"])
    def set_state(self, request: Request, pk=None) -> Response:
        return _set_state(engine.FLOW_RUN, pk, request)

    @extend_schema(responses=s.StateRecordSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def states(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        return Response([row.as_state().to_json() for row in selectors.flow_run_states(run=run)])

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def graph(self, request: Request, pk=None) -> Response:
        return Response(selectors.flow_run_graph(run=self.get_object()))

    @extend_schema(request=None, responses=dict)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        result = services.flow_run_resume(run=self.get_object())
        return Response(result.to_json(), status=status.HTTP_201_CREATED if result.accepted else status.HTTP_200_OK)


class TaskRunViewSet(RunViewSet):
    queryset = TaskRun.objects.all()
    serializer_class = s.TaskRunSerializer
    filterset_class = TaskRunFilterSet

    @extend_schema(request=s.TaskRunCreateSerializer, responses=s.TaskRunSerializer)
    def create(self, request: Request) -> Response:
        serializer = s.TaskRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        flow_run_id = data.get("flow_run")
        if flow_run_id and fetch_value(FlowRun, flow_run_id, "id") is None:
            raise NotFound(f"no flow run with id {flow_run_id}", field="flow_run")
        run, created = services.task_run_create(
            flow_run_id=flow_run_id or None,
            task_key=data["task_key"],
            dynamic_key=data.get("dynamic_key") or "0",
            name=data.get("name"),
            tags=data.get("tags"),
            cache_key=data.get("cache_key"),
            cache_expiration=data.get("cache_expiration"),
            task_inputs=data.get("task_inputs"),
            task_version=data.get("task_version"),
            empirical_policy=data.get("empirical_policy"),
            state=s.state_from(data.get("state")),
            next_state=s.state_from(data.get("next_state")),
        )
        return Response(
            s.TaskRunSerializer(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    def perform_destroy(self, instance: TaskRun) -> None:
        services.task_run_delete(run=instance)

    @extend_schema(request=s.TaskRunsRecordSerializer, responses=dict)
    @action(detail=False, methods=["post"], pagination_class=None, filterset_class=None)
    def record(self, request: Request) -> Response:
        """Task runs a client already ran, and later states of task runs, in one transaction (SDK batches)."""
        accepted = records_accept(request.data)  # the SDK's batches, checked without DRF's per-field machinery
        if accepted is None:
            serializer = s.TaskRunsRecordSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            accepted = serializer.records()
        task_runs, states = accepted
        run_answers, state_answers = services.task_runs_record(task_runs=task_runs, states=states)
        return Response({"task_runs": run_answers, "states": state_answers})

    @extend_schema(request=s.TaskRunUpdateSerializer, responses=s.TaskRunSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        serializer = s.TaskRunUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(s.TaskRunSerializer(services.task_run_update(run=run, **serializer.validated_data)).data)

    @extend_schema(request=s.SetStateSerializer, responses={201: dict, 200: dict})
    @action(detail=True, methods=["post"])
    def set_state(self, request: Request, pk=None) -> Response:
        return _set_state(engine.TASK_RUN, pk, request)

    @extend_schema(responses=s.StateRecordSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def states(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        return Response([row.as_state().to_json() for row in selectors.task_run_states(run=run)])
