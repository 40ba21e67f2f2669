from django.contrib import admin

from apps.orchestration.models import CacheEntry


@admin.register(CacheEntry)
class CacheEntryAdmin(admin.ModelAdmin):
    list_display = ["cache_key", "expiration", "created"]
    search_fields = ["cache_key"]
    raw_id_fields = ["task_run_state"]
