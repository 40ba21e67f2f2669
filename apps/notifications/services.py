"""Writing notification policies (every field checked, errors naming it), sending a test notification, and
retrying failed deliveries."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.blocks.models import BlockDocument
from apps.core.errors import Conflict, InvalidInput, NotFound, OrchestratorError
from apps.notifications.channels import ChannelError, channel_send
from apps.notifications.consumer import policies_changed
from apps.notifications.messages import STATE_KEYS, message_render, template_problem
from apps.notifications.models import (
    CHANNEL_BLOCK_TYPES,
    DEFAULT_MESSAGE_TEMPLATE,
    DeliveryStatus,
    NotificationDelivery,
    NotificationPolicy,
)
from apps.notifications.sender import sender_wake

POLICY_FIELDS = (
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
)


class ChannelFailed(OrchestratorError):
    """A test notification the channel refused or could not take: the server worked, the channel did not."""

    status_code = 502
    code = "channel_failed"


def block_for_channel(*, slug: str) -> BlockDocument:
    """The block `TYPE/NAME` a policy sends through (InvalidInput naming `block` if it is missing or no channel)."""
    block_type, _, name = slug.partition("/")
    if not name:
        raise InvalidInput(f"{slug!r} does not name a block: use TYPE/NAME, e.g. webhook/ops", field="block")
    if block_type not in CHANNEL_BLOCK_TYPES:
        raise InvalidInput(
            f"block type {block_type!r} cannot send notifications; use one of {', '.join(CHANNEL_BLOCK_TYPES)}",
            field="block",
        )
    block = BlockDocument.objects.filter(block_type=block_type, name=name).first()
    if block is None:
        raise InvalidInput(f"no block {slug!r}; create it first (API, admin or SDK)", field="block")
    return block


def notification_policy_check(*, policy: NotificationPolicy) -> None:
    """InvalidInput naming the first field the policy cannot have (the API and the admin's form both ask)."""
    unknown = [key for key in policy.state_types if key not in STATE_KEYS]
    if not policy.state_types:
        raise InvalidInput("name at least one state type, e.g. FAILED", field="state_types")
    if unknown:
        raise InvalidInput(
            f"unknown state type {unknown[0]!r}; use a state type or a state name in upper case: "
            f"{', '.join(sorted(STATE_KEYS))}",
            field="state_types",
        )
    if policy.block.block_type not in CHANNEL_BLOCK_TYPES:
        raise InvalidInput(
            f"block {policy.block.slug} cannot send notifications; use a {', '.join(CHANNEL_BLOCK_TYPES)} block",
            field="block",
        )
    if policy.block.block_type == "smtp" and not policy.email_to:
        raise InvalidInput("an smtp block needs at least one address in email_to", field="email_to")
    bad_address = next((address for address in policy.email_to if "@" not in address.strip("@")), None)
    if bad_address is not None:
        raise InvalidInput(f"{bad_address!r} is not an email address", field="email_to")
    problem = template_problem(policy.message_template)
    if problem:
        raise InvalidInput(problem, field="message_template")


def state_types_normalise(values: list[str]) -> list[str]:
    """Upper case, without repeats: `failed` and `Late` are FAILED and LATE."""
    return list(dict.fromkeys(str(value).strip().upper() for value in values))


def _save(policy: NotificationPolicy) -> NotificationPolicy:
    notification_policy_check(policy=policy)
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError:
        raise Conflict(f"a notification policy named {policy.name!r} exists", field="name") from None
    transaction.on_commit(policies_changed)
    return policy


def notification_policy_create(
    *,
    name: str,
    state_types: list[str],
    block: BlockDocument,
    tags: list[str] | None = None,
    flow_names: list[str] | None = None,
    deployments: list[str] | None = None,
    work_pools: list[str] | None = None,
    email_to: list[str] | None = None,
    message_template: str | None = None,
    is_active: bool = True,
) -> NotificationPolicy:
    policy = NotificationPolicy(
        name=name,
        state_types=state_types_normalise(state_types),
        block=block,
        tags=list(tags or []),
        flow_names=list(flow_names or []),
        deployments=list(deployments or []),
        work_pools=list(work_pools or []),
        email_to=list(email_to or []),
        message_template=message_template or DEFAULT_MESSAGE_TEMPLATE,
        is_active=is_active,
    )
    return _save(policy)


def notification_policy_update(*, policy: NotificationPolicy, changes: dict[str, Any]) -> NotificationPolicy:
    """Change the given fields (the names of POLICY_FIELDS), checked as on create."""
    for field, value in changes.items():
        if field not in POLICY_FIELDS:
            raise InvalidInput("unknown field", field=field)
        if field == "state_types":
            value = state_types_normalise(value)
        setattr(policy, field, value)
    return _save(policy)


def notification_policy_delete(*, policy: NotificationPolicy) -> None:
    policy.delete()
    transaction.on_commit(policies_changed)


def notification_policy_test(*, policy: NotificationPolicy) -> dict[str, Any]:
    """Send a test notification through the policy's channel now; ChannelFailed (502) with the channel's error."""
    run_id = uuid.uuid4()
    context = {
        "event_id": f"test-{run_id}",
        "flow_run_id": str(run_id),
        "flow_run_name": "test-notification",
        "flow_run_url": f"{settings.ORCHESTRATOR_UI_URL}/ui/flow-runs/{run_id}/",
        "flow_name": "test",
        "deployment_name": "",
        "work_pool_name": "",
        "tags": "",
        "state_type": "FAILED",
        "state_name": "Failed",
        "state_message": f"a test of notification policy {policy.name!r}",
        "state_time": timezone.now().isoformat(),
        "policy_name": policy.name,
    }
    message = message_render(policy.message_template, context)
    try:
        outcome = channel_send(
            block=policy.block,
            context=context,
            message=message,
            policy_name=policy.name,
            email_to=list(policy.email_to),
            idempotency_key=context["event_id"],
        )
    except ChannelError as exc:
        raise ChannelFailed(f"test notification of {policy.name!r} not sent: {exc}", field="block") from None
    return {"policy": policy.name, "sent": True, "channel": policy.block.slug, "result": outcome, "message": message}


def notification_delivery_retry(*, delivery: NotificationDelivery) -> NotificationDelivery:
    """Send a failed delivery again, with every attempt of a new cycle."""
    changed = NotificationDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.FAILED).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    if not changed:
        raise NotFound(f"delivery {delivery.pk} is not failed")
    transaction.on_commit(sender_wake)
    delivery.refresh_from_db()
    return delivery
