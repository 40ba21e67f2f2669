"""Filters the run lists offer; each one is backed by an index (see runs/models.py)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.core.api.filters import CommaListFilter, DateTimeFilter, FilterSet
from apps.runs.models import FlowRun, TaskRun
from apps.runs.selectors import filter_by_tags
from orchestrator.states import StateType


class TagsFilter(CommaListFilter):
    """`?tags=etl,nightly`: runs carrying all of these tags."""

    def filter(self, qs, value):
        return filter_by_tags(qs, value) if value else qs


class RunFilterSet(FilterSet):
    state_type = CommaListFilter(field_name="state_type", choices=[t.value for t in StateType])
    state_name = CommaListFilter(field_name="state_name")
    tags = TagsFilter()
    name__icontains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    name = django_filters.CharFilter(field_name="name")
    expected_start_time__gte = DateTimeFilter(field_name="expected_start_time", lookup_expr="gte")
    expected_start_time__lte = DateTimeFilter(field_name="expected_start_time", lookup_expr="lte")
    start_time__gte = DateTimeFilter(field_name="start_time", lookup_expr="gte")
    start_time__lte = DateTimeFilter(field_name="start_time", lookup_expr="lte")
    created__gte = DateTimeFilter(field_name="created", lookup_expr="gte")
    created__lte = DateTimeFilter(field_name="created", lookup_expr="lte")


def flow_name_filter(queryset: QuerySet[FlowRun], name: str, value: str) -> QuerySet[FlowRun]:
    """A flow's name, or the function's name it was made from (`direct_sleep` finds flow `direct-sleep`)."""
    if not value:
        return queryset
    return queryset.filter(Q(flow__name=value) | Q(flow__name=value.replace("_", "-")))


def upcoming_filter(queryset: QuerySet[FlowRun], name: str, value: str) -> QuerySet[FlowRun]:
    """`upcoming=true`: Scheduled runs whose time has not come; `false`: every other run (recent activity)."""
    if not value:
        return queryset
    upcoming = Q(state_type=StateType.SCHEDULED, next_scheduled_start_time__gt=timezone.now())
    return queryset.filter(upcoming) if value == "true" else queryset.exclude(upcoming)


class FlowRunFilterSet(RunFilterSet):
    flow = django_filters.UUIDFilter(field_name="flow_id")
    flow_name = django_filters.CharFilter(method=flow_name_filter)
    # A choice, not a BooleanFilter: that one ignores a value it cannot read instead of refusing it.
    upcoming = django_filters.ChoiceFilter(choices=[("true", "true"), ("false", "false")], method=upcoming_filter)
    deployment = django_filters.UUIDFilter(field_name="deployment_id")
    work_pool = django_filters.CharFilter(field_name="work_pool_name")
    work_queue = django_filters.CharFilter(field_name="work_queue_name")
    parent_task_run = django_filters.UUIDFilter(field_name="parent_task_run_id")
    parent_flow_run = django_filters.UUIDFilter(field_name="parent_task_run__flow_run_id")
    idempotency_key = django_filters.CharFilter(field_name="idempotency_key")

    class Meta:
        model = FlowRun
        fields: list[str] = []


class TaskRunFilterSet(RunFilterSet):
    flow_run = django_filters.UUIDFilter(field_name="flow_run_id")
    task_key = django_filters.CharFilter(field_name="task_key")
    cache_key = django_filters.CharFilter(field_name="cache_key")

    class Meta:
        model = TaskRun
        fields: list[str] = []
