"""Notification policies (with a "send test" action) and their deliveries (read-only, "retry now" for failed ones)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.roles import OPERATOR, role_allows
from apps.core.errors import OrchestratorError
from apps.notifications import services
from apps.notifications.models import DeliveryStatus, NotificationDelivery, NotificationPolicy


class NotificationPolicyForm(forms.ModelForm):
    class Meta:
        model = NotificationPolicy
        fields = list(services.POLICY_FIELDS)

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        if isinstance(cleaned.get("state_types"), list):
            cleaned["state_types"] = services.state_types_normalise(cleaned["state_types"])
        for field in ("state_types", "tags", "flow_names", "deployments", "work_pools", "email_to"):
            if field in cleaned and not isinstance(cleaned[field], list):
                self.add_error(field, "must be a JSON list of strings")
        if self.errors or cleaned.get("block") is None:
            return cleaned
        policy = NotificationPolicy(**{field: cleaned.get(field) for field in services.POLICY_FIELDS})
        try:
            services.notification_policy_check(policy=policy)
        except OrchestratorError as exc:
            raise ValidationError({exc.field or NON_FIELD_ERRORS: exc.message}) from None
        return cleaned


@admin.register(NotificationPolicy)
class NotificationPolicyAdmin(admin.ModelAdmin):
    form = NotificationPolicyForm
    list_display = ["name", "is_active", "state_types", "block", "updated"]
    list_filter = ["is_active", "block__block_type"]
    search_fields = ["name"]
    actions = ["send_test"]

    def has_send_test_permission(self, request: HttpRequest) -> bool:
        return role_allows(request.user, OPERATOR)

    def save_model(self, request: HttpRequest, obj: NotificationPolicy, form, change: bool) -> None:
        changes = {field: getattr(obj, field) for field in services.POLICY_FIELDS}
        services.notification_policy_update(policy=obj, changes=changes)  # the form has run the same checks

    @admin.action(description="Send a test notification", permissions=["send_test"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotificationPolicy]) -> None:
        for policy in queryset.select_related("block"):
            try:
                result = services.notification_policy_test(policy=policy)
            except OrchestratorError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"test notification of {policy.name!r} sent: {result['result']}")


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "policy", "event_id", "flow_run_id", "status", "attempts", "last_error", "sent_at", "created"]
    list_filter = ["status", "policy"]
    search_fields = ["flow_run_id", "event_id", "last_error"]
    actions = ["retry_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: NotificationDelivery | None = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """An Operator (who retries runs) may retry deliveries; a Viewer may not."""
        return role_allows(request.user, OPERATOR)

    @admin.action(description="Retry the failed deliveries now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[NotificationDelivery]) -> None:
        retried = 0
        for delivery in queryset.filter(status=DeliveryStatus.FAILED):
            services.notification_delivery_retry(delivery=delivery)
            retried += 1
        messages.info(request, f"{retried} failed deliver{'y' if retried == 1 else 'ies'} will be sent again")
