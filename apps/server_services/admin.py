"""Admin: service runs are read-only history; intervals are edited on Beat's entries (Periodic tasks)."""

from django.contrib import admin

from apps.server_services.models import ServiceRun, ServiceSchedule


@admin.register(ServiceRun)
class ServiceRunAdmin(admin.ModelAdmin):
    list_display = ["service", "started_at", "duration_seconds", "result", "error", "trigger"]
    list_filter = ["service", "trigger"]
    search_fields = ["service", "error"]
    date_hierarchy = "started_at"
    ordering = ["-started_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ServiceSchedule)
class ServiceScheduleAdmin(admin.ModelAdmin):
    """Which Beat entry belongs to which service; change the interval on the entry itself."""

    list_display = ["service", "periodic_task", "interval_seconds"]
    readonly_fields = ["service", "periodic_task", "interval_seconds"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
