"""Keyset pagination without a COUNT query: pages stay fast however many rows there are, and a client walking
the `next` links sees every row exactly once even while rows are being created.

A page's `next` (and `previous`) link carries an opaque `cursor`: the sort key of the page's last (first) row,
plus its id, which makes the order total. The next page is the rows after that key, so rows created meanwhile
at the head of a newest-first list neither repeat nor push rows past the client, as `limit/offset` did.
`?offset=N` still works for a first jump (its links continue with cursors). Nulls sort after every value in
ascending order and before every value in descending order, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Model, Q, QuerySet
from django.db.models.expressions import OrderBy
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,30}")
FORWARD, BACKWARD = "n", "p"


def _bounded_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
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


def sort_key(queryset: QuerySet[Any]) -> list[tuple[str, bool]]:
    """The list's order as (field name, descending) pairs, ending with the primary key so that it is total."""
    ordering = list(queryset.query.order_by) or list(queryset.model._meta.ordering or [])
    key: list[tuple[str, bool]] = []
    for item in ordering:
        if not isinstance(item, str):
            raise TypeError(f"keyset pagination needs field names to order by, not {item!r}")
        descending = item.startswith("-")
        name = item.lstrip("-")
        name = "pk" if name in ("pk", "id") else name
        if all(existing != name for existing, _ in key):
            key.append((name, descending))
    if all(name != "pk" for name, _ in key):
        key.append(("pk", key[-1][1] if key else False))
    return key


def _nullable(model: type[Model], name: str) -> bool:
    if name == "pk":
        return False
    try:
        return bool(model._meta.get_field(name).null)
    except FieldDoesNotExist:
        return True


def _ordered(queryset: QuerySet[Any], key: list[tuple[str, bool]], backward: bool) -> QuerySet[Any]:
    """The queryset in `key` order (reversed when paging backward), with nulls placed as the module says."""
    expressions: list[OrderBy] = []
    for name, descending in key:
        # Reading backward reverses each field's direction and its nulls' place with it, so nulls always stand
        # first in what is read in descending order and last in ascending order. Only a nullable field gets the
        # NULLS modifier: on SQLite it would keep the database from reading a non-null field's index in order.
        nulls = _nullable(queryset.model, name)
        if descending != backward:
            expressions.append(F(name).desc(nulls_first=True) if nulls else F(name).desc())
        else:
            expressions.append(F(name).asc(nulls_last=True) if nulls else F(name).asc())
    return queryset.order_by(*expressions)


def _after(key: list[tuple[str, bool]], values: list[Any], backward: bool) -> Q:
    """Rows strictly after the row with `values` in `key` order (before it, reading backward)."""
    condition = Q(pk__in=[])  # nothing
    equal_so_far = Q()
    for (name, descending), value in zip(key, values, strict=True):
        later_is_smaller = descending != backward
        if value is None:
            # Nulls come first in descending order and last in ascending order.
            beyond = Q(**{f"{name}__isnull": False}) if later_is_smaller else Q(pk__in=[])
            same = Q(**{f"{name}__isnull": True})
        else:
            lookup = "lt" if later_is_smaller else "gt"
            beyond = Q(**{f"{name}__{lookup}": value})
            if not later_is_smaller:
                beyond |= Q(**{f"{name}__isnull": True})
            same = Q(**{name: value})
        condition |= equal_so_far & beyond
        equal_so_far &= same
    return condition


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _encode(values: list[Any], direction: str) -> str:
    raw = json.dumps({"v": [_jsonable(value) for value in values], "d": direction}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, model: type[Model], key: list[tuple[str, bool]]) -> tuple[list[Any], str]:
    """The sort key values and direction a cursor holds, converted to the fields' types; a 400 if malformed."""
    invalid = ValidationError({"cursor": ["invalid cursor: use the `next` or `previous` link of a page"]})
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        values, direction = payload["v"], payload["d"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise invalid from None
    if direction not in (FORWARD, BACKWARD) or not isinstance(values, list) or len(values) != len(key):
        raise invalid
    converted = []
    for (name, _), value in zip(key, values, strict=True):
        field = model._meta.pk if name == "pk" else None
        try:
            field = field or model._meta.get_field(name)
            converted.append(None if value is None else field.to_python(value))
        except (FieldDoesNotExist, DjangoValidationError, TypeError):
            raise invalid from None
    return converted, direction


class KeysetPagination(BasePagination):
    """`?limit=N` and the `cursor` of a page's links (or `?offset=M` to start further in); the response is
    {"next", "previous", "results"}."""

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any]:
        self.request = request
        # A limit of 0 would return a `next` link pointing at the same page forever.
        self.limit = _bounded_int(
            request, "limit", default=settings.API_DEFAULT_PAGE_SIZE, minimum=1, maximum=settings.API_MAX_PAGE_SIZE
        )
        self.key = sort_key(queryset)
        cursor = request.query_params.get("cursor")
        self.offset = 0
        self.backward = False
        if cursor:
            if request.query_params.get("offset") not in (None, ""):
                raise ValidationError({"offset": ["give either offset or cursor, not both"]})
            values, direction = _decode(cursor, queryset.model, self.key)
            self.backward = direction == BACKWARD
            queryset = queryset.filter(_after(self.key, values, self.backward))
        else:
            self.offset = _bounded_int(request, "offset", default=0, minimum=0, maximum=2**31)
        ordered = _ordered(queryset, self.key, self.backward)
        rows = list(ordered[self.offset : self.offset + self.limit + 1])
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        if self.backward:
            rows.reverse()
        # Reading forward: more rows after this page; backward: more before it. A page reached by a cursor has
        # rows on the side it came from.
        self.has_next = more if not self.backward else True
        self.has_previous = (more if self.backward else bool(cursor)) or self.offset > 0
        self.rows = rows
        return rows

    def _key_values(self, row: Any) -> list[Any]:
        return [row.pk if name == "pk" else getattr(row, name) for name, _ in self.key]

    def _link(self, cursor: str) -> str:
        url = replace_query_param(self.request.build_absolute_uri(), "limit", self.limit)
        return replace_query_param(remove_query_param(url, "offset"), "cursor", cursor)

    def get_paginated_response(self, data: Any) -> Response:
        next_link = previous_link = None
        if self.rows and self.has_next:
            next_link = self._link(_encode(self._key_values(self.rows[-1]), FORWARD))
        if self.rows and self.has_previous:
            previous_link = self._link(_encode(self._key_values(self.rows[0]), BACKWARD))
        elif not self.rows and self.offset > 0:  # past the end of an offset jump: back to the start
            previous_link = remove_query_param(self.request.build_absolute_uri(), "offset")
        return Response({"next": next_link, "previous": previous_link, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE},
            },
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "opaque: the `next` or `previous` link of a page carries it",
                "schema": {"type": "string"},
            },
            {"name": "offset", "required": False, "in": "query", "schema": {"type": "integer", "minimum": 0}},
        ]
