"""Admin: service runs are read-only history; intervals are edited on Beat's entries (Periodic tasks)."""

from django.contrib import admin

from apps.server_services.models import ServiceLease, ServiceRun, ServiceSchedule


@admin.register(ServiceRun)
class ServiceRunAdmin(admin.ModelAdmin):
    list_display = ["service", "started_at", "duration_seconds", "result", "error", "skipped", "runner", "trigger"]
    list_filter = ["service", "trigger", "skipped"]
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


@admin.register(ServiceLease)
class ServiceLeaseAdmin(admin.ModelAdmin):
    """SQLite's leases (docs/services.md, "Leadership"): which process runs a service's pass, until when."""

    list_display = ["service", "holder", "expires_at"]
    readonly_fields = ["service", "holder", "expires_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
