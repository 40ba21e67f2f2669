"""Admin for the event stream (a table of millions of rows: apps/core/admin.py keeps it from counting them)."""

from django.contrib import admin

from apps.core.admin import IndexedValuesListFilter, LargeTableAdmin
from apps.events.models import ConsumerCursor, Event


@admin.register(Event)
class EventAdmin(LargeTableAdmin):
    list_display = ["id", "occurred", "name", "resource_type", "resource_id"]
    list_filter = [("name", IndexedValuesListFilter), ("resource_type", IndexedValuesListFilter)]
    search_fields = ["resource_id"]
    id_search_fields = ("resource_id",)
    search_help_text = "A run's id: its events."
    ordering = ["-id"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConsumerCursor)
class ConsumerCursorAdmin(admin.ModelAdmin):
    """Where each durable consumer is; deleting a row makes its consumer start again from the oldest event."""

    list_display = ["name", "transaction_id", "event_id", "handled", "updated", "last_error"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
