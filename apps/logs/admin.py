"""Admin for log lines: a table of millions of rows (apps/core/admin.py keeps its changelist from counting them)."""

from django.contrib import admin

from apps.core.admin import IndexedValuesListFilter, LargeTableAdmin
from apps.logs.models import Log


@admin.register(Log)
class LogAdmin(LargeTableAdmin):
    list_display = ["timestamp", "level", "name", "flow_run", "task_run", "message"]
    list_select_related = ["flow_run", "task_run"]
    list_filter = [("level", IndexedValuesListFilter)]
    # A search of the messages would read every line: an id finds a run's lines through their indexes.
    search_fields = ["flow_run", "task_run"]
    id_search_fields = ("flow_run", "task_run")
    search_help_text = "A flow run's or a task run's id: its log lines."
    raw_id_fields = ["flow_run", "task_run"]
    ordering = ["-timestamp"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
