"""Limit/offset pagination without a COUNT query: pages stay fast however many runs there are."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


def _non_negative_int(request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationError({name: [f"{raw!r} is not an integer"]}) from exc
    if value < 0:
        raise ValidationError({name: ["must be 0 or more"]})
    return min(value, maximum)


class LimitOffsetPagination(BasePagination):
    """`?limit=N&offset=M`; the response is {"next", "previous", "results"}."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = _non_negative_int(request, "limit", settings.API_DEFAULT_PAGE_SIZE, settings.API_MAX_PAGE_SIZE)
        self.offset = _non_negative_int(request, "offset", 0, 2**31)
        rows = list(queryset[self.offset : self.offset + self.limit + 1])
        self.has_next = len(rows) > self.limit
        return rows[: self.limit]

    def get_paginated_response(self, data):
        return Response({"next": self._next_link(), "previous": self._previous_link(), "results": data})

    def _next_link(self) -> str | None:
        if not self.has_next:
            return None
        url = replace_query_param(self.request.build_absolute_uri(), "limit", self.limit)
        return replace_query_param(url, "offset", self.offset + self.limit)

    def _previous_link(self) -> str | None:
        if self.offset <= 0:
            return None
        url = replace_query_param(self.request.build_absolute_uri(), "limit", self.limit)
        previous = max(0, self.offset - self.limit)
        return remove_query_param(url, "offset") if previous == 0 else replace_query_param(url, "offset", previous)

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "limit", "required": False, "in": "query", "schema": {"type": "integer"}},
            {"name": "offset", "required": False, "in": "query", "schema": {"type": "integer"}},
        ]
