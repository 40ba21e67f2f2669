"""Reads for deployments: lookups by id or name, and the runs a deployment has waiting."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from apps.deployments.models import Deployment, DeploymentSchedule
from apps.runs.models import FlowRun
from orchestrator.states import StateType


def deployments_with_schedules() -> QuerySet[Deployment]:
    return Deployment.objects.select_related("flow").prefetch_related(
        Prefetch("schedules", queryset=DeploymentSchedule.objects.order_by("created", "id"))
    )


def deployment_get(*, deployment_id: uuid.UUID | str) -> Deployment | None:
    try:
        return deployments_with_schedules().filter(pk=uuid.UUID(str(deployment_id))).first()
    except ValueError:
        return None


def deployment_get_by_name(*, flow_name: str, name: str) -> Deployment | None:
    return deployments_with_schedules().filter(flow__name=flow_name, name=name).first()


def deployment_find(*, reference: str) -> Deployment | None:
    """A deployment by `flow/deployment` name or by id."""
    if "/" in reference:
        flow_name, _, name = reference.partition("/")
        return deployment_get_by_name(flow_name=flow_name, name=name)
    return deployment_get(deployment_id=reference)


def deployment_schedules(*, deployment: Deployment) -> QuerySet[DeploymentSchedule]:
    return DeploymentSchedule.objects.filter(deployment=deployment).order_by("created", "id")


def deployment_schedule_get(*, deployment: Deployment, schedule_id: str) -> DeploymentSchedule | None:
    try:
        return deployment_schedules(deployment=deployment).filter(pk=uuid.UUID(str(schedule_id))).first()
    except ValueError:
        return None


def deployment_runs_due(*, deployment_id: uuid.UUID, before: datetime, limit: int = 10) -> list[FlowRun]:
    """The deployment's runs waiting to start (SCHEDULED) whose time has come, oldest first."""
    return list(
        FlowRun.objects.select_related("flow")
        .filter(deployment_id=deployment_id, state_type=StateType.SCHEDULED, next_scheduled_start_time__lte=before)
        .order_by("next_scheduled_start_time", "id")[:limit]
    )


def deployment_upcoming_runs(*, deployment_id: uuid.UUID, limit: int = 10) -> list[FlowRun]:
    """The deployment's next SCHEDULED runs, soonest first."""
    return list(
        FlowRun.objects.select_related("flow")
        .filter(deployment_id=deployment_id, state_type=StateType.SCHEDULED)
        .order_by("next_scheduled_start_time", "id")[:limit]
    )
