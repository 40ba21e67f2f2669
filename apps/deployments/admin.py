"""Admin for deployments and their schedules (changes here do not reschedule: use the API or the CLI)."""

from django.contrib import admin

from apps.deployments.models import Deployment, DeploymentSchedule


class DeploymentScheduleInline(admin.TabularInline):
    model = DeploymentSchedule
    extra = 0
    fields = ["schedule", "active", "created"]
    readonly_fields = ["created"]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["name", "flow", "work_pool_name", "paused", "updated"]
    list_filter = ["paused", "work_pool_name"]
    search_fields = ["name", "flow__name"]
    inlines = [DeploymentScheduleInline]
