"""Reads of notification policies and deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.notifications.models import NotificationDelivery, NotificationPolicy


def notification_policies_all() -> QuerySet[NotificationPolicy]:
    return NotificationPolicy.objects.select_related("block")


def notification_policy_require(*, name: str) -> NotificationPolicy:
    policy = notification_policies_all().filter(name=name).first()
    if policy is None:
        raise NotFound(f"no notification policy named {name[:200]!r}")
    return policy


def notification_deliveries_filter(
    *, policy: str | None = None, status: str | None = None
) -> QuerySet[NotificationDelivery]:
    """Deliveries, newest first; `policy` is a policy's name or id."""
    deliveries = NotificationDelivery.objects.select_related("policy")
    if policy:
        deliveries = deliveries.filter(policy__name=policy) | deliveries.filter(policy__id=_uuid_or_none(policy))
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries.order_by("-id")


def _uuid_or_none(value: str) -> str | None:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
