"""Admin for runs: read-mostly, with the full state history inline (states change only through the engine).

The run tables hold millions of rows: the changelists never count them all, read their filters' choices from
indexes, and every filter has an index that also serves the newest-first order (apps/core/admin.py)."""

from django.contrib import admin

from apps.core.admin import IndexedValuesListFilter, LargeTableAdmin
from apps.runs.models import FlowRun, FlowRunState, TaskRun, TaskRunState


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class FlowRunStateInline(ReadOnlyInline):
    model = FlowRunState
    fields = ["timestamp", "type", "name", "message", "state_details"]
    readonly_fields = fields
    ordering = ["timestamp", "created"]


class TaskRunStateInline(ReadOnlyInline):
    model = TaskRunState
    fields = ["timestamp", "type", "name", "message", "state_details"]
    readonly_fields = fields
    ordering = ["timestamp", "created"]


class RunAdmin(LargeTableAdmin):
    list_display = [
        "name",
        "state_name",
        "state_type",
        "expected_start_time",
        "start_time",
        "end_time",
        "run_count",
    ]
    list_filter = [("created", admin.DateFieldListFilter), "state_type", ("state_name", IndexedValuesListFilter)]
    search_fields = ["name", "id"]  # see LargeTableAdmin.get_search_results
    prefix_search_field: str | None = "name"
    search_help_text = "A run's id, or the start of its name (case-sensitive)."
    # No date_hierarchy: its year and month links read every row's date; the "created" filter reads none.
    ordering = ["-created"]
    editable = ["name", "tags"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name not in self.editable]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(FlowRun)
class FlowRunAdmin(RunAdmin):
    list_display = ["name", "flow", *RunAdmin.list_display[1:]]
    list_select_related = ["flow"]
    list_filter = [*RunAdmin.list_filter, ("work_pool_name", IndexedValuesListFilter)]
    inlines = [FlowRunStateInline]

    def view_on_site(self, run: FlowRun) -> str:
        """The "View on site" button opens the live run page (apps/ui)."""
        return f"/ui/flow-runs/{run.pk}/"


@admin.register(TaskRun)
class TaskRunAdmin(RunAdmin):
    list_display = ["name", "task_key", "flow_run", *RunAdmin.list_display[1:]]
    list_select_related = ["flow_run"]
    # Task runs have no index on their name (it would slow their inserts, the busiest of all): an id searches.
    search_fields = ["id", "flow_run"]
    prefix_search_field = None
    id_search_fields = ("pk", "flow_run")
    search_help_text = "A task run's id, or its flow run's id (all its task runs)."
    inlines = [TaskRunStateInline]
