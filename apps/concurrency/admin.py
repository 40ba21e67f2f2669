from django.contrib import admin

from apps.concurrency.models import ConcurrencyLimit


@admin.register(ConcurrencyLimit)
class ConcurrencyLimitAdmin(admin.ModelAdmin):
    list_display = ["tag", "limit", "slots_in_use"]
    search_fields = ["tag"]
    readonly_fields = ["active_slots"]

    @admin.display(description="slots in use")
    def slots_in_use(self, obj: ConcurrencyLimit) -> int:
        return len(obj.active_slots)
