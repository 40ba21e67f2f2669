from django.contrib import admin
from django.http import HttpRequest

from apps.orchestration.models import CacheEntry, Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred", "name", "resource_type", "resource_id", "published_at", "attempts"]
    list_filter = ["name", "resource_type"]
    search_fields = ["resource_id"]
    ordering = ["-occurred"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


@admin.register(CacheEntry)
class CacheEntryAdmin(admin.ModelAdmin):
    list_display = ["cache_key", "expiration", "created"]
    search_fields = ["cache_key"]
    raw_id_fields = ["task_run_state"]
