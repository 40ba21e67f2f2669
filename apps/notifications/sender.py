"""Sending the deliveries of the durable outbox: claim a batch with one conditional UPDATE that marks them with a
token, send them outside any transaction (several at once), record the outcomes (sent; retried after a doubling
delay; failed after the last attempt).

A daemon thread of each server process (`start_server_sender`, next to the event runner) sends what is due, woken
at once by its own process's new deliveries and polling every ORCHESTRATOR_NOTIFICATIONS_POLL_SECONDS for the
others' and for retries; the `notifications` server service calls `deliveries_send_due` too. A claim lasts for a
few send timeouts: a process killed mid-send leaves a claim that expires and the delivery is sent again (at least
once; the Idempotency-Key lets a receiver drop the repeat). docs/notifications.md.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from apps.notifications.channels import ChannelError, channel_send
from apps.notifications.messages import message_render
from apps.notifications.models import DeliveryStatus, NotificationDelivery

logger = logging.getLogger("apps.notifications.sender")

# Due deliveries claimed at once (one UPDATE, one read); the loop goes on until none is due (no cap per pass).
SEND_BATCH = 50
# Sends in flight at once per process.
SEND_THREADS = 8
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


def deliveries_claim(*, delivery_ids: list[int]) -> list[NotificationDelivery]:
    """Take those of the deliveries that are still pending and due, in one conditional UPDATE that marks them with
    a new claim token: the rows carrying the token are ours, whatever another process claimed meanwhile. The claim
    moves next_attempt_at past the send, so an unfinished send (a killed process) becomes due again."""
    now = timezone.now()
    lease = timedelta(seconds=CLAIM_TIMEOUTS * settings.ORCHESTRATOR_NOTIFICATIONS_TIMEOUT_SECONDS)
    token = uuid.uuid4().hex
    claimed = NotificationDelivery.objects.filter(
        pk__in=delivery_ids, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(claim=token, next_attempt_at=now + lease, attempts=F("attempts") + 1)
    if not claimed:
        return []
    return list(NotificationDelivery.objects.select_related("policy", "policy__block").filter(claim=token))


def _send(delivery: NotificationDelivery) -> str | None:
    """Send one claimed delivery (no database access: the policy and its block came with it); the error or None."""
    policy = delivery.policy
    context = {**delivery.context, "policy_name": policy.name}
    try:
        channel_send(
            block=policy.block,
            context=context,
            message=message_render(policy.message_template, context),
            policy_name=policy.name,
            email_to=list(policy.email_to),
            idempotency_key=str(delivery.event_id),
        )
    except ChannelError as exc:
        return str(exc)
    except Exception as exc:  # a bug must not lose the delivery: it is retried and its error shown
        return f"{type(exc).__name__}: {exc}"
    return None


def deliveries_send(*, deliveries: list[NotificationDelivery]) -> int:
    """Send claimed deliveries, several at once (a slow receiver does not hold up the others), and record the
    outcomes, conditionally on each claim still being ours (a late finish of an expired claim changes nothing).
    Returns how many were sent."""
    if len(deliveries) == 1:
        errors = [_send(deliveries[0])]
    else:
        errors = list(_pool().map(_send, deliveries))
    sent = [delivery for delivery, error in zip(deliveries, errors, strict=True) if error is None]
    for claim in {delivery.claim for delivery in sent}:
        NotificationDelivery.objects.filter(pk__in=[d.pk for d in sent if d.claim == claim], claim=claim).update(
            status=DeliveryStatus.SENT, sent_at=timezone.now(), last_error=""
        )
    for delivery, error in zip(deliveries, errors, strict=True):
        if error is not None:
            delivery_record_failure(delivery=delivery, error=error)
    return len(sent)


def delivery_record_failure(*, delivery: NotificationDelivery, error: str) -> None:
    error = " ".join(error.split())[:1000]
    mine = NotificationDelivery.objects.filter(pk=delivery.pk, claim=delivery.claim, status=DeliveryStatus.PENDING)
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


_pool_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _pool_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="notification-send")
        return _executor


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
        sent += deliveries_send(deliveries=deliveries_claim(delivery_ids=due))
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
