"""Admin for runs: read-mostly, with the full state history inline (states change only through the engine)."""

from django.contrib import admin

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


class RunAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "state_name",
        "state_type",
        "expected_start_time",
        "start_time",
        "end_time",
        "run_count",
    ]
    list_filter = ["state_type", "state_name"]
    search_fields = ["name", "id"]
    date_hierarchy = "created"
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
    list_filter = ["state_type", "state_name", "work_pool_name"]
    inlines = [FlowRunStateInline]

    def view_on_site(self, run: FlowRun) -> str:
        """The "View on site" button opens the live run page (apps/ui)."""
        return f"/ui/flow-runs/{run.pk}/"


@admin.register(TaskRun)
class TaskRunAdmin(RunAdmin):
    list_display = ["name", "task_key", "flow_run", *RunAdmin.list_display[1:]]
    list_select_related = ["flow_run"]
    inlines = [TaskRunStateInline]
