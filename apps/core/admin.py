"""Admin plumbing for the tables that grow without bound (runs, task runs, logs, events): pages that never count
the whole table and list filters whose choices come from an index, not from a scan (docs/ui.md, "Scale")."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.options import ShowFacets
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe


class LargeTablePaginator(Paginator):
    """A paginator whose count costs at most `count_limit` index entries.

    An unfiltered list on PostgreSQL shows the planner's estimate of the table's rows (`pg_class.reltuples`, kept
    by ANALYZE and autovacuum); any other list counts up to `count_limit + 1` rows and, beyond that, reports
    "more than `count_limit`" (the pages after that are reached by narrowing the filters). `count_is_exact`
    tells the page which of the two it shows.
    """

    count_limit = 1_000

    def __init__(self, object_list: Any, per_page: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.count_is_exact = True
        self.count_is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        estimate = _planner_estimate(queryset)
        if estimate is not None and estimate > self.count_limit:
            self.count_is_exact, self.count_is_estimate = False, True
            return estimate
        counted = queryset.order_by()[: self.count_limit + 1].count()
        if counted > self.count_limit:
            self.count_is_exact = False
        return counted

    def get_elided_page_range(self, number: int | str = 1, *, on_each_side: int = 3, on_ends: int = 2) -> Any:
        """The stock range when the count is exact; otherwise no last pages (the true last page is unknown)."""
        if self.count_is_exact:
            return super().get_elided_page_range(number, on_each_side=on_each_side, on_ends=on_ends)
        current = self.validate_number(number)
        near = range(max(1, current - on_each_side), min(current + on_each_side, self.num_pages) + 1)
        pages: list[int | str] = [page for page in range(1, on_ends + 1) if page < near.start]
        if pages and near.start > on_ends + 1:
            pages.append(self.ELLIPSIS)
        pages.extend(near)
        if near.stop <= self.num_pages or not self.count_is_estimate:
            pages.append(self.ELLIPSIS)
        return pages


def _planner_estimate(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of an unfiltered queryset's rows, or None (another database, a filter, no statistics)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql" or queryset.query.where or queryset.query.is_sliced:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    # -1: never analysed.
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


def indexed_distinct_values(queryset: QuerySet[Any], column: str, limit: int = 100) -> list[Any]:
    """The distinct non-null values of `column` in the queryset's table, in order, read by a loose index scan:
    one index seek per value (a recursive query, the same on SQLite and PostgreSQL) instead of a scan of every
    row. The column must lead an index."""
    connection = connections[queryset.db]
    quote = connection.ops.quote_name
    table, column = quote(queryset.model._meta.db_table), quote(column)
    sql = (
        f"WITH RECURSIVE found(value) AS ("
        f" SELECT MIN({column}) FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value) FROM found"
        f" WHERE found.value IS NOT NULL"
        f") SELECT value FROM found WHERE value IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class IndexedValuesListFilter(admin.AllValuesFieldListFilter):
    """The admin's list of a field's values, read from the index the field leads (see indexed_distinct_values)
    rather than by `SELECT DISTINCT` over the whole table. Lists every value in the table, as the stock filter
    does for an unfiltered queryset."""

    def __init__(self, field: Any, request: Any, params: Any, model: Any, model_admin: Any, field_path: str) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        queryset = model._default_manager.all()
        values: list[Any] = [field.to_python(value) for value in indexed_distinct_values(queryset, field.column)]
        if field.null and queryset.filter(**{f"{field.name}__isnull": True}).exists():
            values.append(None)
        self.lookup_choices = values


def starts_with(queryset: QuerySet[Any], field_name: str, prefix: str) -> QuerySet[Any]:
    """Rows whose `field_name` starts with `prefix` (case-sensitive), read from an index on the field.

    SQLite reads a range of its (binary-ordered) index: [prefix, prefix + the last code point). PostgreSQL's
    ordinary index follows the database's collation, where a range is not a prefix; LIKE 'prefix%' uses the
    field's `varchar_pattern_ops` index instead (the migration that adds it is PostgreSQL-only)."""
    if connections[queryset.db].vendor == "postgresql":
        return queryset.filter(**{f"{field_name}__startswith": prefix})
    return queryset.filter(**{f"{field_name}__gte": prefix, f"{field_name}__lt": prefix + "\U0010ffff"})


class LargeTableAdmin(admin.ModelAdmin):
    """A changelist for a table of millions of rows: no full COUNT, no facet counts, and a search that reads
    indexes only: an id (exact, in `id_search_fields`) or the start of `prefix_search_field`. A substring search
    (`icontains`, the admin's default) reads every row."""

    paginator = LargeTablePaginator
    # Rendering a row costs more than reading it (about 2 ms each in the admin's templates): 50 a page.
    list_per_page = 50
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    id_search_fields: tuple[str, ...] = ("pk",)
    prefix_search_field: str | None = None

    def get_search_results(self, request: Any, queryset: QuerySet[Any], search_term: str) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        try:
            identifier = uuid.UUID(term)
        except ValueError:
            identifier = None
        if identifier is not None:
            matches = Q()
            for field_name in self.id_search_fields:
                matches |= Q(**{field_name: identifier})
            return queryset.filter(matches), False
        if self.prefix_search_field:
            return starts_with(queryset, self.prefix_search_field, term), False
        return queryset.none(), False

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> str:
        # The stock checkbox renders a form widget template per row: a fifth of a 100-row page's time.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="Select {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            obj,
        )


class RefusedDeleteAdminMixin:
    """Deleting happens one object at a time, from its page; a delete the domain refuses (an OrchestratorError,
    e.g. a Conflict naming what still uses the object) goes back to the object's page with the reason."""

    def get_actions(self, request: Any) -> dict:
        actions = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request: Any, object_id: str, extra_context: dict | None = None) -> Any:
        from django.contrib import messages
        from django.http import HttpResponseRedirect
        from django.urls import reverse

        from apps.core.errors import OrchestratorError

        try:
            return super().delete_view(request, object_id, extra_context)  # type: ignore[misc]
        except OrchestratorError as exc:
            self.message_user(request, exc.message, messages.ERROR)  # type: ignore[attr-defined]
            meta = self.model._meta  # type: ignore[attr-defined]
            return HttpResponseRedirect(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[object_id]))
