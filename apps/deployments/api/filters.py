"""Filters of the deployment list."""

from __future__ import annotations

import django_filters

from apps.core.api.filters import CommaListFilter, FilterSet
from apps.deployments.models import Deployment
from apps.runs.selectors import filter_by_tags


class TagsFilter(CommaListFilter):
    """`?tags=etl,nightly`: deployments carrying all of these tags."""

    def filter(self, qs, value):
        return filter_by_tags(qs, value) if value else qs


class DeploymentFilterSet(FilterSet):
    flow = django_filters.UUIDFilter(field_name="flow_id")
    flow_name = django_filters.CharFilter(field_name="flow__name")
    name = django_filters.CharFilter(field_name="name")
    name__icontains = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    paused = django_filters.BooleanFilter(field_name="paused")
    work_pool_name = django_filters.CharFilter(field_name="work_pool_name")
    work_queue_name = django_filters.CharFilter(field_name="work_queue_name")
    tags = TagsFilter()

    class Meta:
        model = Deployment
        fields: list[str] = []
