"""API keys in the admin: created with a form (the key is shown once, in the message after saving), revoked with
an action; a key's secret is never shown again, nor its hash."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts import services
from apps.accounts.models import ApiKey, Scope


class ApiKeyCreateForm(forms.ModelForm):
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=services.MAX_EXPIRY_DAYS, required=False, help_text="empty: the key never expires"
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scope", "owner"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scope", "owner", "status", "expires_at", "last_used_at", "created"]
    list_filter = ["scope"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = ["name", "prefix", "scope", "owner", "expires_at", "last_used_at", "revoked_at", "created"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "scope", "owner", "expires_in_days"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # a key cannot be changed, only revoked
        api_key, secret = services.api_key_create(
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"] or Scope.WRITE,
            owner=form.cleaned_data.get("owner"),
            expires_in_days=form.cleaned_data.get("expires_in_days"),
        )
        obj.pk = api_key.pk
        obj.refresh_from_db()
        messages.warning(request, f"The key {api_key.name!r} is {secret} — copy it now: it is not shown again.")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row stays for the record

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        names = [key.name for key in queryset.filter(revoked_at__isnull=True)]
        for name in names:
            services.api_key_revoke(name=name)
        self.message_user(request, f"Revoked {len(names)} key{'s' if len(names) != 1 else ''}.", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_apikey")
