"""Sending the deliveries of the durable outbox: claim one with a conditional UPDATE, send it outside any
transaction, record the outcome (sent; retried after a doubling delay; failed after the last attempt).

A daemon thread of each server process (`start_server_sender`, next to the event runner) sends what is due, woken
at once by its own process's new deliveries and polling every ORCHESTRATOR_NOTIFICATIONS_POLL_SECONDS for the
others' and for retries; the `notifications` server service calls `deliveries_send_due` too. A claim lasts for a
few send timeouts: a process killed mid-send leaves a claim that expires and the delivery is sent again (at least
once; the Idempotency-Key lets a receiver drop the repeat). docs/notifications.md.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from apps.notifications.channels import ChannelError, channel_send
from apps.notifications.messages import message_render
from apps.notifications.models import DeliveryStatus, NotificationDelivery

logger = logging.getLogger("apps.notifications.sender")

# Due deliveries read per query; the loop goes on until none is due (no cap per pass).
SEND_BATCH = 200
# A claim outlives the longest send (an SMTP conversation is several calls, each with the timeout).
CLAIM_TIMEOUTS = 3

deliveries_added = threading.Event()


def sender_wake() -> None:
    """Called after a commit that added deliveries: this process's sender looks at once."""
    deliveries_added.set()


def retry_delay_seconds(attempts: int) -> float:
    """The wait after the `attempts`-th failed attempt: RETRY_SECONDS doubled each time, at most RETRY_MAX."""
    first = settings.ORCHESTRATOR_NOTIFICATIONS_RETRY_SECONDS
    return float(min(settings.ORCHESTRATOR_NOTIFICATIONS_RETRY_MAX_SECONDS, first * 2 ** max(0, attempts - 1)))


def delivery_claim(*, delivery_id: int) -> NotificationDelivery | None:
    """Take the delivery if it is pending and due: rows changed == 1 means no other process has it. The claim
    moves next_attempt_at past the send, so an unfinished send (a killed process) becomes due again."""
    now = timezone.now()
    lease = timedelta(seconds=CLAIM_TIMEOUTS * settings.ORCHESTRATOR_NOTIFICATIONS_TIMEOUT_SECONDS)
    claimed = NotificationDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + lease, attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    return NotificationDelivery.objects.select_related("policy", "policy__block").get(pk=delivery_id)


def delivery_send(*, delivery: NotificationDelivery) -> bool:
    """Send a claimed delivery and record the outcome; True when it was sent."""
    policy = delivery.policy
    context = {**delivery.context, "policy_name": policy.name}
    try:
        message = message_render(policy.message_template, context)
        channel_send(
            block=policy.block,
            context=context,
            message=message,
            policy_name=policy.name,
            email_to=list(policy.email_to),
            idempotency_key=str(delivery.event_id),
        )
    except (ChannelError, KeyError, ValueError) as exc:
        delivery_record_failure(delivery=delivery, error=str(exc) if isinstance(exc, ChannelError) else repr(exc))
        return False
    # Conditional on the claim still being ours (attempts unchanged): a late finish of an expired claim is ignored.
    NotificationDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(
        status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error=""
    )
    return True


def delivery_record_failure(*, delivery: NotificationDelivery, error: str) -> None:
    error = " ".join(error.split())[:1000]
    mine = NotificationDelivery.objects.filter(
        pk=delivery.pk, attempts=delivery.attempts, status=DeliveryStatus.PENDING
    )
    if delivery.attempts >= settings.ORCHESTRATOR_NOTIFICATIONS_ATTEMPTS:
        mine.update(status=DeliveryStatus.FAILED, last_error=error)
        logger.warning(
            "notification %s of policy %r failed after %d attempts: %s",
            delivery.event_id,
            delivery.policy.name,
            delivery.attempts,
            error,
        )
    else:
        retry_at = timezone.now() + timedelta(seconds=retry_delay_seconds(delivery.attempts))
        mine.update(next_attempt_at=retry_at, last_error=error)


def deliveries_send_due() -> int:
    """Send every delivery due now (the `notifications` service and the sender thread); returns how many were
    sent. Deliveries another process claims first are left to it."""
    sent = 0
    after = 0
    while True:
        due = list(
            NotificationDelivery.objects.filter(
                status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now(), pk__gt=after
            )
            .order_by("id")
            .values_list("id", flat=True)[:SEND_BATCH]
        )
        if not due:
            return sent
        for delivery_id in due:
            delivery = delivery_claim(delivery_id=delivery_id)
            if delivery is not None and delivery_send(delivery=delivery):
                sent += 1
        after = due[-1]


class NotificationSender:
    """The sender thread of a server process."""

    def __init__(self, *, poll_seconds: float | None = None) -> None:
        self.poll_seconds = poll_seconds or settings.ORCHESTRATOR_NOTIFICATIONS_POLL_SECONDS
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_forever(self) -> None:
        while not self._stop.is_set():
            deliveries_added.clear()
            try:
                deliveries_send_due()
            except Exception as exc:  # the database is down: try again on the next pass
                logger.warning("notification sender pass failed (%s: %s)", type(exc).__name__, exc)
                close_old_connections()
            deliveries_added.wait(self.poll_seconds)
        connection.close()

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run_forever, name="notification-sender", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deliveries_added.set()
        if self._thread is not None:
            self._thread.join(timeout)


def start_server_sender() -> NotificationSender:
    """The server process's sender (orchestrator/server.py starts it in each worker, next to the event runner)."""
    sender = NotificationSender()
    sender.start()
    return sender
