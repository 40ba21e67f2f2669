from django.contrib import admin

from apps.flows.models import Flow


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ["name", "created", "updated"]
    search_fields = ["name"]
