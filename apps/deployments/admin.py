"""Admin for deployments. Schedules and pausing change which runs exist, so they are changed through the
services (the API, the CLI, or the actions here), never by editing rows that would skip rescheduling."""

from django.contrib import admin, messages

from apps.deployments import services
from apps.deployments.models import Deployment, DeploymentSchedule


class DeploymentScheduleInline(admin.TabularInline):
    model = DeploymentSchedule
    extra = 0
    can_delete = False
    fields = ["schedule", "active", "created"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["name", "flow", "work_pool_name", "paused", "updated"]
    list_filter = ["paused", "work_pool_name"]
    search_fields = ["name", "flow__name"]
    # The code prefix is what `deploy --storage` uploaded: edited by hand it would name code that is not there.
    readonly_fields = [
        "flow",
        "name",
        "paused",
        "storage_path",
        "parameters",
        "parameter_openapi_schema",
        "created",
        "updated",
    ]
    inlines = [DeploymentScheduleInline]
    actions = ["pause_deployments", "resume_deployments"]

    def view_on_site(self, deployment: Deployment) -> str:
        """The "View on site" button opens the live page of the deployment (apps/ui)."""
        return f"/ui/deployments/{deployment.pk}/"

    @admin.action(description="Pause the selected deployments (their waiting scheduled runs are removed)")
    def pause_deployments(self, request, queryset) -> None:
        for deployment in queryset:
            services.deployment_pause(deployment=deployment)
        self.message_user(request, f"{queryset.count()} deployment(s) paused", messages.SUCCESS)

    @admin.action(description="Resume the selected deployments")
    def resume_deployments(self, request, queryset) -> None:
        for deployment in queryset:
            services.deployment_resume(deployment=deployment)
        self.message_user(request, f"{queryset.count()} deployment(s) resumed", messages.SUCCESS)
