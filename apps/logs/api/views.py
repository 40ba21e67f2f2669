"""Log endpoints: bulk create (a JSON list, or one object) and a filtered, paginated list."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.filters import DateTimeFilter, FilterSet
from apps.core.errors import NotFound
from apps.logs import services
from apps.logs.api.serializers import MAX_BATCH, LogCreateSerializer, LogSerializer
from apps.logs.models import Log
from apps.logs.selectors import LOG_FIELDS
from apps.runs.models import FlowRun, TaskRun

MAX_BATCH_KEY_LENGTH = 200


class LogFilterSet(FilterSet):
    flow_run = django_filters.UUIDFilter(field_name="flow_run_id")
    task_run = django_filters.UUIDFilter(field_name="task_run_id")
    level__gte = django_filters.NumberFilter(field_name="level", lookup_expr="gte")
    level__lte = django_filters.NumberFilter(field_name="level", lookup_expr="lte")
    timestamp__gte = DateTimeFilter(field_name="timestamp", lookup_expr="gte")
    timestamp__lte = DateTimeFilter(field_name="timestamp", lookup_expr="lte")
    timestamp__gt = DateTimeFilter(field_name="timestamp", lookup_expr="gt")

    class Meta:
        model = Log
        fields: list[str] = []


class LogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = Log.objects.select_related("task_run").only(*LOG_FIELDS).order_by("timestamp", "created")
    serializer_class = LogSerializer
    filterset_class = LogFilterSet
    ordering_fields = ["timestamp", "level"]

    @extend_schema(request=LogCreateSerializer(many=True), responses={201: dict})
    def create(self, request: Request) -> Response:
        items = request.data if isinstance(request.data, list) else [request.data]
        if len(items) > MAX_BATCH:
            raise ValidationError({"body": [f"at most {MAX_BATCH} logs per request"]})
        serializer = LogCreateSerializer(data=items, many=True)
        serializer.is_valid(raise_exception=True)
        entries = [dict(item) for item in serializer.validated_data]
        _check_runs_exist(entries)
        for entry in entries:
            entry["flow_run_id"] = entry.pop("flow_run", None)
            entry["task_run_id"] = entry.pop("task_run", None)
        created = services.logs_create(entries=entries, batch_key=_batch_key(request))
        return Response({"created": created}, status=status.HTTP_201_CREATED)


def _batch_key(request: Request) -> str | None:
    """The batch's `Idempotency-Key` header: a batch sent again under the same key is stored once."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_BATCH_KEY_LENGTH:
        raise ValidationError(
            {"Idempotency-Key": [f"give a non-empty key of at most {MAX_BATCH_KEY_LENGTH} characters, or none"]}
        )
    return key


def _check_runs_exist(entries: list[dict]) -> None:
    for field, model in (("flow_run", FlowRun), ("task_run", TaskRun)):
        ids = {entry[field] for entry in entries if entry.get(field)}
        if ids:
            missing = ids - set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
            if missing:
                raise NotFound(f"no {field.replace('_', ' ')} with id {sorted(map(str, missing))[0]}", field=field)
