"""Admin for work pools: a pool's page shows its queues and the command that starts a worker for it; workers
are read-only (they write their own rows by heartbeating)."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.html import format_html

from apps.core.admin import RefusedDeleteAdminMixin
from apps.work_pools.models import DEFAULT_QUEUE_NAME, Worker, WorkPool, WorkQueue


class WorkQueueFormSet(BaseInlineFormSet):
    """The default queue takes every run no other queue claims: it can be changed, not renamed or deleted."""

    def clean(self) -> None:
        super().clean()
        for form in self.forms:
            instance = form.instance
            if instance.pk is None or form.initial.get("name") != DEFAULT_QUEUE_NAME:
                continue
            if self.can_delete and self._should_delete_form(form):
                raise ValidationError("the default queue cannot be deleted")
            if form.cleaned_data.get("name") != DEFAULT_QUEUE_NAME:
                raise ValidationError("the default queue cannot be renamed")


class WorkQueueInline(admin.TabularInline):
    model = WorkQueue
    formset = WorkQueueFormSet
    extra = 0
    fields = ["name", "priority", "concurrency_limit", "paused", "description"]


class WorkerInline(admin.TabularInline):
    model = Worker
    extra = 0
    can_delete = False
    fields = ["name", "last_heartbeat_at", "status"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WorkPool)
class WorkPoolAdmin(RefusedDeleteAdminMixin, admin.ModelAdmin):
    # Deleting a pool that active deployments use is refused with the reason (apps/deployments/receivers.py).
    list_display = ["name", "type", "concurrency_limit", "paused", "updated"]
    list_filter = ["type", "paused"]
    search_fields = ["name"]
    readonly_fields = ["worker_command_to_copy", "created", "updated"]
    fields = ["name", "type", "description", "concurrency_limit", "paused", "worker_command_to_copy"]
    inlines = [WorkQueueInline, WorkerInline]

    def view_on_site(self, pool: WorkPool) -> str:
        """The "View on site" button opens the pool on the live work pools page (apps/ui)."""
        return f"/ui/work-pools/#pool-{pool.pk}"

    @admin.display(description="Start a worker")
    def worker_command_to_copy(self, pool: WorkPool) -> str:
        if not pool.pk:
            return "(save the pool first)"
        return format_html("<code style='user-select: all'>{}</code>", pool.worker_command)

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Every pool has its default queue, as the API and the CLI create it.
        WorkQueue.objects.get_or_create(pool=form.instance, name=DEFAULT_QUEUE_NAME)


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["name", "pool", "last_heartbeat_at", "status"]
    list_filter = ["pool"]
    search_fields = ["name", "pool__name"]
    readonly_fields = ["name", "pool", "last_heartbeat_at", "status", "created", "updated"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
