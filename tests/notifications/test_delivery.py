"""Sending from the outbox to real receivers on loopback: the webhook with its Idempotency-Key, retries after 500s,
a delivery failed after the last attempt (in the admin with its error), mail through aiosmtpd, the Slack payload,
and the send-test action."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.blocks.services import block_document_create
from apps.notifications.models import DeliveryStatus, NotificationDelivery
from apps.notifications.sender import deliveries_claim, deliveries_send_due, delivery_record_failure
from apps.notifications.services import notification_policy_create
from tests.notifications.receivers import HttpReceiver, http_receiver, smtp_receiver, wait_until
from tests.notifications.support import enqueue_everything, fail_run

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as running:
        yield running


@pytest.fixture
def hook(receiver: HttpReceiver, settings) -> HttpReceiver:
    settings.ORCHESTRATOR_NOTIFICATIONS_ATTEMPTS = 3
    settings.ORCHESTRATOR_NOTIFICATIONS_RETRY_SECONDS = 0.05
    settings.ORCHESTRATOR_NOTIFICATIONS_TIMEOUT_SECONDS = 5
    settings.ORCHESTRATOR_UI_URL = "https://orchestrator.example.com"
    receiver.reset()
    return receiver


def send_until_settled(timeout: float = 10.0) -> None:
    """Run the sender (as the thread does) until no delivery is pending."""

    def settled() -> bool:
        deliveries_send_due()
        return not NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING).exists()

    wait_until(settled, timeout, lambda: str(list(NotificationDelivery.objects.values("status", "attempts"))))


def webhook_policy(receiver: HttpReceiver, **fields: object):
    block, _ = block_document_create(
        block_type="webhook", name="ops", data={"url": receiver.url, "headers": {"Authorization": "Bearer t0ken"}}
    )
    return notification_policy_create(name="failures", state_types=["FAILED"], block=block, **fields)  # type: ignore[arg-type]


def test_webhook_arrives_with_the_event_id_as_idempotency_key(hook: HttpReceiver) -> None:
    webhook_policy(hook)
    run = fail_run(flow="load")
    assert enqueue_everything() == 1
    send_until_settled()
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 1, "")
    [request] = hook.requests
    assert request.headers["Idempotency-Key"] == str(delivery.event_id)
    assert request.headers["Authorization"] == "Bearer t0ken"  # the block's secret header
    body = request.body
    assert body["flow_run"]["id"] == str(run.id) and body["flow_run"]["flow"] == "load"
    assert body["flow_run"]["url"] == f"https://orchestrator.example.com/ui/flow-runs/{run.id}/"
    assert body["state"]["type"] == "FAILED" and body["state"]["message"] == "boom"
    assert body["policy"] == "failures" and f"Flow run {run.name} of flow load entered Failed" in body["message"]


def test_retried_after_two_500s_and_delivered_once(hook: HttpReceiver) -> None:
    hook.reset(fail_first=2)
    webhook_policy(hook)
    fail_run()
    enqueue_everything()
    send_until_settled()
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 3)
    assert [request.headers["Idempotency-Key"] for request in hook.requests] == [str(delivery.event_id)] * 3


def test_always_failing_is_kept_failed_with_its_error_and_shown_in_the_admin(
    hook: HttpReceiver, admin_client: Client
) -> None:
    hook.reset(always_fail=True)
    webhook_policy(hook)
    fail_run()
    enqueue_everything()
    send_until_settled()
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)
    assert delivery.last_error == f"webhook POST {hook.url} answered 500: receiver down"
    page = admin_client.get("/admin/notifications/notificationdelivery/?status__exact=failed")
    assert page.status_code == 200 and "answered 500: receiver down" in page.content.decode()
    # "retry now" puts it back in the outbox with a new cycle of attempts.
    hook.reset()
    admin_client.post(
        "/admin/notifications/notificationdelivery/",
        {"action": "retry_now", "_selected_action": [delivery.pk]},
    )
    send_until_settled()
    assert NotificationDelivery.objects.get().status == DeliveryStatus.SENT and len(hook.requests) == 1


def test_email_arrives_in_the_smtp_server() -> None:
    with smtp_receiver() as mailbox:
        block, _ = block_document_create(
            block_type="smtp",
            name="mail",
            data={"host": mailbox.host, "port": mailbox.port, "tls": False, "from_address": "orchestrator@example.com"},
        )
        notification_policy_create(
            name="mail-failures",
            state_types=["FAILED"],
            block=block,
            email_to=["oncall@example.com"],
            message_template="{flow_run_name} failed: {state_message}",
        )
        run = fail_run()
        enqueue_everything()
        send_until_settled()
        wait_until(lambda: len(mailbox.messages) == 1, 5, lambda: str(mailbox.messages))
        recipients, mail = mailbox.messages[0]
        assert recipients == ["oncall@example.com"]
        assert mail["Subject"] == f"Flow run {run.name} is Failed"
        assert mail.get_payload().strip() == f"{run.name} failed: boom"


def test_slack_payload_is_text(hook: HttpReceiver) -> None:
    block, _ = block_document_create(block_type="slack-webhook", name="team", data={"url": hook.url})
    notification_policy_create(name="slack", state_types=["FAILED"], block=block, message_template="{flow_run_name}!")
    run = fail_run()
    enqueue_everything()
    send_until_settled()
    assert [request.body for request in hook.requests] == [{"text": f"{run.name}!"}]


def test_send_test_through_the_api_and_the_admin(hook: HttpReceiver, admin_client: Client, api: APIClient) -> None:
    """200 with what was sent; a channel that fails is a 502 `channel_failed` naming its error, never a 500."""
    webhook_policy(hook)
    answer = api.post("/api/notification_policies/failures/test/")
    assert answer.status_code == 200 and answer.json()["sent"] is True
    assert hook.requests[0].body["flow_run"]["name"] == "test-notification"
    hook.reset(always_fail=True)
    refused = api.post("/api/notification_policies/failures/test/")
    assert refused.status_code == 502 and refused.json()["error"] == "channel_failed"
    assert "answered 500: receiver down" in refused.json()["message"]
    policy_id = api.get("/api/notification_policies/failures/").json()["id"]
    page = admin_client.post(
        "/admin/notifications/notificationpolicy/",
        {"action": "send_test", "_selected_action": [policy_id]},
        follow=True,
    )
    assert "answered 500: receiver down" in page.content.decode()


def test_deliveries_api_lists_by_policy_and_status(hook: HttpReceiver, api: APIClient) -> None:
    webhook_policy(hook)
    fail_run()
    enqueue_everything()
    send_until_settled()
    rows = api.get("/api/notification_deliveries/?policy=failures&status=sent").json()["results"]
    assert len(rows) == 1 and rows[0]["attempts"] == 1 and rows[0]["policy"] == "failures"
    assert api.get("/api/notification_deliveries/?status=failed").json()["results"] == []


def test_an_expired_claim_is_sent_again_and_the_late_finisher_changes_nothing(hook: HttpReceiver) -> None:
    """At least once: a process killed mid-send leaves a claim that expires; its late outcome is ignored."""
    webhook_policy(hook)
    fail_run()
    enqueue_everything()
    [first] = deliveries_claim(delivery_ids=list(NotificationDelivery.objects.values_list("id", flat=True)))
    assert deliveries_claim(delivery_ids=[first.pk]) == []  # taken: nobody else gets it meanwhile
    NotificationDelivery.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())  # the claim expired
    send_until_settled()
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts, len(hook.requests)) == (DeliveryStatus.SENT, 2, 1)
    delivery_record_failure(delivery=first, error="the first process's late failure")
    assert NotificationDelivery.objects.get().status == DeliveryStatus.SENT


def test_retention_deletes_old_sent_and_failed_deliveries_not_pending_ones(hook: HttpReceiver, settings) -> None:
    from apps.server_services.retention import retention_delete_expired

    webhook_policy(hook)
    for _ in range(3):
        fail_run()
    enqueue_everything()
    ids = list(NotificationDelivery.objects.order_by("id").values_list("id", flat=True))
    old = timezone.now() - timedelta(days=settings.RETENTION_DAYS + 1)
    NotificationDelivery.objects.filter(pk=ids[0]).update(status=DeliveryStatus.SENT, created=old)
    NotificationDelivery.objects.filter(pk=ids[1]).update(status=DeliveryStatus.FAILED, created=old)
    NotificationDelivery.objects.filter(pk=ids[2]).update(created=old)  # pending: still owed
    assert retention_delete_expired()["notification_deliveries"] == 2
    assert list(NotificationDelivery.objects.values_list("id", flat=True)) == [ids[2]]
