"""Limit/offset pagination without a COUNT query: pages stay fast however many runs there are."""

from __future__ import annotations

import re

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,30}")


def _bounded_int(request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """A query parameter as an int: absent means `default`, above `maximum` is capped, below `minimum` is a 400."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise ValidationError({name: ["must be a whole number"]})
    value = int(raw)
    if value < minimum:
        raise ValidationError({name: [f"must be {minimum} or more"]})
    return min(value, maximum)


class LimitOffsetPagination(BasePagination):
    """`?limit=N&offset=M`; the response is {"next", "previous", "results"}."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        # A limit of 0 would return a `next` link pointing at the same page forever.
        self.limit = _bounded_int(
            request, "limit", default=settings.API_DEFAULT_PAGE_SIZE, minimum=1, maximum=settings.API_MAX_PAGE_SIZE
        )
        self.offset = _bounded_int(request, "offset", default=0, minimum=0, maximum=2**31)
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
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE},
            },
            {"name": "offset", "required": False, "in": "query", "schema": {"type": "integer", "minimum": 0}},
        ]
