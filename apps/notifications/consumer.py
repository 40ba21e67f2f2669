"""The `notifications` event consumer: it turns flow run state changes into pending deliveries, one per matching
policy, in the transaction that moves its cursor, and wakes this process's sender once that commits. It sends
nothing itself (docs/notifications.md)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.events.stream import StreamEvent
from apps.notifications import sender
from apps.notifications.messages import state_keys
from apps.notifications.models import NotificationDelivery, NotificationPolicy
from apps.runs.models import FlowRun

NOTIFICATIONS_CONSUMER = "notifications"
STATE_CHANGED = "flow_run.state_changed"
# How long a process trusts its copy of the active policies' state keys (another process may change them).
POLICY_KEYS_TTL_SECONDS = 1.0

_keys_lock = threading.Lock()
_active_keys: tuple[float, frozenset[str]] | None = None


def active_state_keys() -> frozenset[str]:
    """The state keys some active policy names, read at most once a second per process."""
    global _active_keys
    with _keys_lock:
        now = time.monotonic()
        if _active_keys is None or now - _active_keys[0] > POLICY_KEYS_TTL_SECONDS:
            keys: set[str] = set()
            for listed in NotificationPolicy.objects.filter(is_active=True).values_list("state_types", flat=True):
                keys.update(listed)
            _active_keys = (now, frozenset(keys))
        return _active_keys[1]


def policies_changed() -> None:
    """Forget this process's copy of the active policies' keys (a policy was written here)."""
    global _active_keys
    with _keys_lock:
        _active_keys = None


def _event_keys(event: StreamEvent) -> frozenset[str]:
    state = event.payload.get("state") or {}
    return state_keys(state.get("type"), state.get("name"))


def may_notify(event: StreamEvent) -> bool:
    """The events the consumer acts on: a flow run's state change to a state some active policy names. Batches
    without one are stepped over without a write (docs/events.md)."""
    if event.resource_type != "flow_run" or event.name != STATE_CHANGED:
        return False
    return bool(_event_keys(event) & active_state_keys())


def policy_matches(policy: NotificationPolicy, *, keys: frozenset[str], run: dict[str, Any]) -> bool:
    """Whether the state change (its keys) of the run (`_runs` values) is one the policy notifies on."""
    if not keys & set(policy.state_types):
        return False
    if policy.tags and not set(policy.tags) & set(run["tags"] or []):
        return False
    if policy.flow_names and run["flow__name"] not in policy.flow_names:
        return False
    if policy.deployments:
        deployment_id = str(run["deployment_id"]) if run["deployment_id"] else None
        if deployment_id not in policy.deployments and run["deployment__name"] not in policy.deployments:
            return False
    return not policy.work_pools or run["work_pool_name"] in policy.work_pools


def _runs(run_ids: set[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = FlowRun.objects.filter(pk__in=run_ids).values(
        "id", "name", "tags", "work_pool_name", "flow__name", "deployment_id", "deployment__name"
    )
    return {row["id"]: row for row in rows}


def delivery_context(*, event_id: int | str, run: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """What a notification of this state change says (the template's placeholders, less the policy's name)."""
    return {
        "event_id": str(event_id),
        "flow_run_id": str(run["id"]),
        "flow_run_name": run["name"],
        "flow_run_url": f"{settings.ORCHESTRATOR_UI_URL}/ui/flow-runs/{run['id']}/",
        "flow_name": run["flow__name"],
        "deployment_name": run["deployment__name"] or "",
        "work_pool_name": run["work_pool_name"] or "",
        "tags": ", ".join(run["tags"] or []),
        "state_type": state.get("type") or "",
        "state_name": state.get("name") or "",
        "state_message": state.get("message") or "",
        "state_time": state.get("timestamp") or "",
    }


def deliveries_enqueue(events: list[StreamEvent]) -> int:
    """The consumer's handler: a pending delivery per (matching policy, event). Idempotent: UNIQUE (policy,
    event_id) and ignore_conflicts make a batch handled twice add nothing. Returns the deliveries written."""
    wanted = [event for event in events if may_notify(event)]
    if not wanted:
        return 0
    policies = list(NotificationPolicy.objects.filter(is_active=True))
    runs = _runs({event.resource_id for event in wanted})
    now = timezone.now()
    deliveries = []
    for event in wanted:
        run = runs.get(event.resource_id)
        if run is None:  # deleted since
            continue
        keys = _event_keys(event)
        for policy in policies:
            if policy_matches(policy, keys=keys, run=run):
                context = delivery_context(event_id=event.id, run=run, state=event.payload.get("state") or {})
                deliveries.append(
                    NotificationDelivery(
                        policy=policy,
                        event_id=event.id,
                        flow_run_id=run["id"],
                        context=context,
                        next_attempt_at=now,
                        created=now,
                    )
                )
    if deliveries:
        NotificationDelivery.objects.bulk_create(deliveries, ignore_conflicts=True, batch_size=500)
        transaction.on_commit(sender.sender_wake)
    return len(deliveries)
