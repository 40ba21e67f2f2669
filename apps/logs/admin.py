from django.contrib import admin

from apps.logs.models import Log


@admin.register(Log)
class LogAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "level", "name", "flow_run", "task_run", "message"]
    list_filter = ["level"]
    search_fields = ["message"]
    raw_id_fields = ["flow_run", "task_run"]
    ordering = ["-timestamp"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
