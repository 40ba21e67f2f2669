"""Deployment endpoints: parse, call one service or selector, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.errors import NotFound
from apps.deployments import selectors, services
from apps.deployments.api import serializers as s
from apps.deployments.api.filters import DeploymentFilterSet
from apps.deployments.models import Deployment
from apps.flows.models import Flow
from apps.flows.services import flow_get_or_create
from apps.runs.api.serializers import FlowRunSerializer

UUID_PATTERN = "[0-9a-fA-F-]{32,36}"


class DeploymentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    queryset = selectors.deployments_with_schedules()
    serializer_class = s.DeploymentSerializer
    filterset_class = DeploymentFilterSet
    ordering_fields = ["name", "created", "updated"]
    lookup_value_regex = UUID_PATTERN

    def _fresh(self, deployment: Deployment) -> Deployment:
        """The deployment as stored now, schedules included (a service may have replaced them)."""
        fresh = selectors.deployment_get(deployment_id=deployment.id)
        if fresh is None:
            raise NotFound(f"no deployment with id {deployment.id}")
        return fresh

    @extend_schema(request=s.DeploymentWriteSerializer, responses=s.DeploymentSerializer)
    def create(self, request: Request) -> Response:
        """Create the deployment, or update the one with this flow and name (redeploy): 201 new, 200 updated."""
        serializer = s.DeploymentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "flow" in data:
            flow = Flow.objects.filter(pk=data["flow"]).first()
            if flow is None:
                raise NotFound(f"no flow with id {data['flow']}", field="flow")
        else:
            flow, _ = flow_get_or_create(name=data["flow_name"])
        deployment, created = services.deployment_upsert(
            flow=flow, name=data["name"], values=serializer.values(), schedules=serializer.schedules_given()
        )
        return Response(
            s.DeploymentSerializer(self._fresh(deployment)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=s.DeploymentFieldsSerializer, responses=s.DeploymentSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        deployment = self.get_object()
        serializer = s.DeploymentFieldsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deployment = services.deployment_update(
            deployment=deployment, values=serializer.values(), schedules=serializer.schedules_given()
        )
        return Response(s.DeploymentSerializer(self._fresh(deployment)).data)

    def perform_destroy(self, instance: Deployment) -> None:
        services.deployment_delete(deployment=instance)

    @extend_schema(request=s.CreateFlowRunSerializer, responses=FlowRunSerializer)
    @action(detail=True, methods=["post"])
    def create_flow_run(self, request: Request, pk=None) -> Response:
        """An ad hoc run (SCHEDULED for now or `scheduled_time`), parameters checked against the schema."""
        deployment = self.get_object()
        serializer = s.CreateFlowRunSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run, created = services.deployment_create_flow_run(deployment=deployment, **serializer.validated_data)
        return Response(FlowRunSerializer(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses=s.DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk=None) -> Response:
        deployment = services.deployment_pause(deployment=self.get_object())
        return Response(s.DeploymentSerializer(self._fresh(deployment)).data)

    @extend_schema(request=None, responses=s.DeploymentSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk=None) -> Response:
        deployment = services.deployment_resume(deployment=self.get_object())
        return Response(s.DeploymentSerializer(self._fresh(deployment)).data)

    @extend_schema(request=None, responses=dict)
    @action(detail=True, methods=["post"])
    def schedule_runs(self, request: Request, pk=None) -> Response:
        """Create this deployment's upcoming runs now (what the scheduler service does for every deployment)."""
        deployment = self.get_object()
        created = services.schedule_upcoming_runs(deployment_ids=[deployment.id])
        return Response({"created": created})

    @extend_schema(
        methods=["GET"],
        operation_id="deployments_schedules_list",
        request=None,
        responses=s.DeploymentScheduleSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        operation_id="deployments_schedules_create",
        request=s.ScheduleWriteSerializer,
        responses=s.DeploymentScheduleSerializer,
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def schedules(self, request: Request, pk=None) -> Response:
        deployment = self.get_object()
        if request.method == "GET":
            rows = selectors.deployment_schedules(deployment=deployment)
            return Response(s.DeploymentScheduleSerializer(rows, many=True).data)
        serializer = s.ScheduleWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = services.deployment_schedule_create(deployment=deployment, **serializer.validated_data)
        return Response(s.DeploymentScheduleSerializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], operation_id="deployments_schedule_retrieve", request=None)
    @extend_schema(methods=["PATCH"], operation_id="deployments_schedule_update", request=s.ScheduleUpdateSerializer)
    @extend_schema(methods=["DELETE"], operation_id="deployments_schedule_destroy", request=None, responses=None)
    @extend_schema(responses=s.DeploymentScheduleSerializer)
    @action(
        detail=True,
        methods=["get", "patch", "delete"],
        url_path=f"schedules/(?P<schedule_id>{UUID_PATTERN})",
        pagination_class=None,
        filterset_class=None,
    )
    def schedule(self, request: Request, pk=None, schedule_id=None) -> Response:
        deployment = self.get_object()
        row = selectors.deployment_schedule_get(deployment=deployment, schedule_id=schedule_id)
        if row is None:
            raise NotFound(f"no schedule with id {schedule_id} on this deployment")
        if request.method == "DELETE":
            services.deployment_schedule_delete(schedule_row=row)
            return Response(status=status.HTTP_204_NO_CONTENT)
        if request.method == "PATCH":
            serializer = s.ScheduleUpdateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            row = services.deployment_schedule_update(schedule_row=row, **serializer.validated_data)
        return Response(s.DeploymentScheduleSerializer(row).data)
