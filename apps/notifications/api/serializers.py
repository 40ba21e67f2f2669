"""Notification policy and delivery serializers: a policy names its channel block as `TYPE/NAME`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.api.serializers import NameField, StrictSerializerMixin, TagsField
from apps.notifications.models import DeliveryStatus, NotificationDelivery, NotificationPolicy

MAX_ITEMS = 100


def _names(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=MAX_ITEMS, required=False, **kwargs
    )


class NotificationPolicySerializer(serializers.ModelSerializer):
    block = serializers.CharField(source="block.slug", read_only=True)

    class Meta:
        model = NotificationPolicy
        fields = [
            "id",
            "name",
            "is_active",
            "state_types",
            "tags",
            "flow_names",
            "deployments",
            "work_pools",
            "block",
            "email_to",
            "message_template",
            "created",
            "updated",
        ]
        read_only_fields = fields


class NotificationPolicyWriteSerializer(StrictSerializerMixin, serializers.Serializer):
    """What a client sends; the service checks the rest (state types, block type, template) and names the field."""

    name = NameField()
    is_active = serializers.BooleanField(required=False)
    state_types = serializers.ListField(child=serializers.CharField(max_length=32), min_length=1, max_length=MAX_ITEMS)
    tags = TagsField()
    flow_names = _names()
    deployments = _names()
    work_pools = _names()
    block = serializers.CharField(max_length=400, help_text="the channel block as TYPE/NAME, e.g. webhook/ops")
    email_to = serializers.ListField(child=serializers.CharField(max_length=320), max_length=MAX_ITEMS, required=False)
    message_template = serializers.CharField(max_length=10_000, required=False, trim_whitespace=False)


class NotificationDeliverySerializer(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy.name", read_only=True)

    class Meta:
        model = NotificationDelivery
        fields = [
            "id",
            "policy",
            "event_id",
            "flow_run_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "sent_at",
            "created",
            "context",
        ]
        read_only_fields = fields


class NotificationTestResultSerializer(serializers.Serializer):
    policy = serializers.CharField()
    sent = serializers.BooleanField()
    channel = serializers.CharField()
    result = serializers.CharField()
    message = serializers.CharField()


class DeliveryFilterSerializer(serializers.Serializer):
    policy = serializers.CharField(required=False, max_length=200)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)
