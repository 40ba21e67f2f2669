"""Notification policies (which flow run state changes notify, through which channel block, with which message)
and their deliveries: the durable outbox the sender works through (docs/notifications.md)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.core.models import BaseModel

DEFAULT_MESSAGE_TEMPLATE = (
    "Flow run {flow_run_name} of flow {flow_name} entered {state_name} ({state_type}) at {state_time}: "
    "{state_message}\n{flow_run_url}"
)
# The block types a policy can send through.
CHANNEL_BLOCK_TYPES = ("webhook", "slack-webhook", "smtp")


class NotificationPolicy(BaseModel):
    """Empty filter lists match every run; a run must pass every non-empty one."""

    name = models.CharField(max_length=200, unique=True)
    is_active = models.BooleanField(default=True)
    state_types = models.JSONField(
        default=list, help_text="state types or state names, upper case: FAILED, CRASHED, LATE, AWAITINGRETRY"
    )
    tags = models.JSONField(default=list, blank=True, help_text="runs carrying any of these tags")
    flow_names = models.JSONField(default=list, blank=True, help_text="runs of these flows")
    deployments = models.JSONField(default=list, blank=True, help_text="runs of these deployments (ids or names)")
    work_pools = models.JSONField(default=list, blank=True, help_text="runs in these work pools")
    block = models.ForeignKey(
        "blocks.BlockDocument",
        on_delete=models.PROTECT,
        related_name="notification_policies",
        help_text="the channel: a webhook, slack-webhook or smtp block",
    )
    email_to = models.JSONField(default=list, blank=True, help_text="recipients (an smtp block only)")
    message_template = models.TextField(default=DEFAULT_MESSAGE_TEMPLATE)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "notification policies"

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class NotificationDelivery(models.Model):
    """One notification of one policy for one event. UNIQUE (policy, event_id): an event handled twice by the
    consumer never makes a second delivery. `context` holds what the message is made of, taken when the event was
    handled (the run may have moved on since)."""

    id = models.BigAutoField(primary_key=True)
    policy = models.ForeignKey(NotificationPolicy, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.BigIntegerField(help_text="the event stream's id; sent as the Idempotency-Key")
    flow_run_id = models.UUIDField(null=True, blank=True)
    context = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    claim = models.CharField(max_length=32, blank=True, default="", help_text="the token of the send in progress")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "notification deliveries"
        constraints = [
            models.UniqueConstraint(fields=["policy", "event_id"], name="notification_delivery_unique_event")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_delivery_due"),
            models.Index(fields=["policy", "status", "-id"], name="notification_delivery_policy"),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id} event {self.event_id} ({self.status})"
