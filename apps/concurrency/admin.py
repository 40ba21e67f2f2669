from django.contrib import admin

from apps.concurrency.models import ConcurrencyLease, ConcurrencyLimit, GlobalConcurrencyLimit
from apps.concurrency.selectors import holders_by_limit


class HoldersMixin:
    lease_field = "limit"

    @admin.display(description="slots in use")
    def slots_in_use(self, obj: ConcurrencyLimit | GlobalConcurrencyLimit) -> int:
        return sum(lease.slots for lease in holders_by_limit(field=self.lease_field, ids=[obj.pk])[obj.pk])

    @admin.display(description="held by")
    def holders(self, obj: ConcurrencyLimit | GlobalConcurrencyLimit) -> str:
        leases = holders_by_limit(field=self.lease_field, ids=[obj.pk])[obj.pk]
        return ", ".join(f"{lease.holder_kind} {lease.holder_id} ({lease.slots})" for lease in leases) or "nobody"


@admin.register(ConcurrencyLimit)
class ConcurrencyLimitAdmin(HoldersMixin, admin.ModelAdmin):
    list_display = ["tag", "limit", "slots_in_use"]
    search_fields = ["tag"]
    readonly_fields = ["holders"]


@admin.register(GlobalConcurrencyLimit)
class GlobalConcurrencyLimitAdmin(HoldersMixin, admin.ModelAdmin):
    lease_field = "global_limit"
    list_display = ["name", "limit", "slot_decay_per_second", "slots_in_use"]
    search_fields = ["name"]
    readonly_fields = ["holders"]


@admin.register(ConcurrencyLease)
class ConcurrencyLeaseAdmin(admin.ModelAdmin):
    """Read-only: leases are taken and freed by runs and clients, and expire on their own."""

    list_display = ["id", "limit", "global_limit", "holder_kind", "holder_id", "slots", "expires_at", "decaying"]
    list_filter = ["holder_kind", "decaying"]
    search_fields = ["holder_id", "limit__tag", "global_limit__name"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
