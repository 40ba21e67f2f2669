from django.contrib import admin

from apps.events.models import ConsumerCursor, Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "occurred", "name", "resource_type", "resource_id"]
    list_filter = ["name", "resource_type"]
    search_fields = ["resource_id"]
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
