"""The publisher: turns batches of the event stream into websocket messages for the groups that have members.

For each batch (apps/events/runner.py hands over up to 500 events in commit order) it asks the channel layer which
of the batch's groups have members, reads the objects those groups need with one query per kind (flow runs, task
runs, log lines; log lines only of watched runs), encodes each object once, and sends the messages in the order
of the events. An object changed several times in one batch is sent once, as it is now (its REST shape), at the
place of its last change. Embedded, each server process publishes to its own in-memory layer; with Redis, one
durable consumer publishes each event once for every process (apps/live/apps.py; docs/live.md).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import uuid
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any, TypeVar

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db.models import Q
from rest_framework.utils.encoders import JSONEncoder

from apps.events.models import ConsumerCursor
from apps.events.stream import StreamEvent
from apps.live.layer import FLOW_RUNS_GROUP, MESSAGE_TYPE, PUBLISHER_NAME, flow_run_group, publishing_loop
from apps.logs.api.serializers import LogSerializer
from apps.logs.models import Log
from apps.logs.selectors import LOG_FIELDS
from apps.logs.services import LOGS_WRITTEN
from apps.runs.api.serializers import FlowRunSerializer, TaskRunSerializer
from apps.runs.models import FlowRun, TaskRun

FLOW_RUN_CHANGED = "flow_run.state_changed"
TASK_RUN_CHANGED = "task_run.state_changed"
# How long the publisher waits for the loop to hand a batch's messages to the layer.
SEND_TIMEOUT_SECONDS = 10.0
# Log batches whose id ranges are read in one query (an OR of ranges; SQLite bounds an expression's depth).
RANGES_PER_QUERY = 100

T = TypeVar("T")


def _on_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(SEND_TIMEOUT_SECONDS)


_redis_cursor_checked = False


def _forget_the_redis_publisher_cursor() -> None:
    """Embedded, the publisher keeps no cursor; one left by an earlier run with Redis would make a later switch back
    to Redis replay everything since then. Removed once per process: recreated at the tail, it replays nothing."""
    global _redis_cursor_checked
    if not _redis_cursor_checked:
        ConsumerCursor.objects.filter(name=PUBLISHER_NAME).delete()
        _redis_cursor_checked = True


def live_events_publish(events: list[StreamEvent]) -> int:
    """Publish a batch of events to the websocket groups with members; returns how many messages were sent."""
    if settings.LIVE_REDIS_URL is None:
        _forget_the_redis_publisher_cursor()
    layer = get_channel_layer()
    if layer is None:
        return 0
    if isinstance(layer, InMemoryChannelLayer) and not layer.groups:
        # No connection in this process (the usual case: an SDK or a worker writing, nobody watching): nothing to
        # read or send, and no trip to the loop per batch. Reading whether the dict is empty is safe off the loop.
        return 0
    loop = publishing_loop(layer)
    if loop is None:
        return 0
    flow_runs: dict[str, int] = {}  # flow run id -> position of its last event in the batch
    task_runs: dict[str, tuple[int, str]] = {}  # task run id -> (position of its last event, its flow run id)
    log_batches: list[tuple[int, StreamEvent]] = []
    for position, event in enumerate(events):
        if event.name == FLOW_RUN_CHANGED:
            flow_runs[str(event.resource_id)] = position
        elif event.name == TASK_RUN_CHANGED:
            flow_run_id = event.payload.get("flow_run_id")
            if flow_run_id:
                task_runs[str(event.resource_id)] = (position, flow_run_id)
        elif event.name == LOGS_WRITTEN:
            log_batches.append((position, event))
    candidates = {flow_run_group(run_id) for run_id in flow_runs}
    candidates.update(flow_run_group(flow_run_id) for _, flow_run_id in task_runs.values())
    candidates.update(flow_run_group(run_id) for _, event in log_batches for run_id in event.payload["flow_run_ids"])
    if flow_runs:
        candidates.add(FLOW_RUNS_GROUP)
    if not candidates:
        return 0
    watched = _on_loop(loop, _groups_with_members(layer, sorted(candidates)))
    if not watched:
        return 0
    messages = [
        *_flow_run_messages(flow_runs, watched),
        *_task_run_messages(task_runs, watched),
        *_log_messages(log_batches, watched),
    ]
    messages.sort(key=lambda message: message[0])
    return _on_loop(loop, _send(layer, [(groups, text) for _, groups, text in messages]))


# A message to send: (its place in the batch, the groups it goes to, its JSON text).
Message = tuple[tuple[int, int], list[str], str]


def _encode(kind: str, data: Any) -> str:
    """The message's JSON text, encoded as the REST API's renderer does (UUIDs, times, decimals)."""
    return json.dumps({"type": kind, "data": data}, cls=JSONEncoder, ensure_ascii=False, separators=(",", ":"))


def _flow_run_messages(flow_runs: dict[str, int], watched: set[str]) -> list[Message]:
    wanted = [run_id for run_id in flow_runs if FLOW_RUNS_GROUP in watched or flow_run_group(run_id) in watched]
    if not wanted:
        return []
    messages: list[Message] = []
    for run in FlowRun.objects.select_related("flow").filter(pk__in=wanted):  # a run deleted since is left out
        run_id = str(run.pk)
        groups = [group for group in (FLOW_RUNS_GROUP, flow_run_group(run_id)) if group in watched]
        messages.append(((flow_runs[run_id], 0), groups, _encode("flow_run", FlowRunSerializer(run).data)))
    return messages


def _task_run_messages(task_runs: dict[str, tuple[int, str]], watched: set[str]) -> list[Message]:
    wanted = [run_id for run_id, (_, flow_run_id) in task_runs.items() if flow_run_group(flow_run_id) in watched]
    if not wanted:
        return []
    messages: list[Message] = []
    for run in TaskRun.objects.filter(pk__in=wanted):
        position, flow_run_id = task_runs[str(run.pk)]
        messages.append(
            ((position, 0), [flow_run_group(flow_run_id)], _encode("task_run", TaskRunSerializer(run).data))
        )
    return messages


def _log_messages(log_batches: list[tuple[int, StreamEvent]], watched: set[str]) -> list[Message]:
    """The new lines of watched runs, read by the id ranges of their batches (apps/logs/services.py)."""
    batches = []  # (first id, last id, position, watched flow run ids)
    for position, event in log_batches:
        run_ids = [run_id for run_id in event.payload["flow_run_ids"] if flow_run_group(run_id) in watched]
        if run_ids:
            first, last = uuid.UUID(event.payload["first_id"]), uuid.UUID(event.payload["last_id"])
            batches.append((first, last, position, run_ids))
    messages: list[Message] = []
    for start in range(0, len(batches), RANGES_PER_QUERY):
        chunk = sorted(batches[start : start + RANGES_PER_QUERY])
        ranges = Q()
        watched_runs: set[str] = set()
        for first, last, _, ids in chunk:
            ranges |= Q(pk__gte=first, pk__lte=last)
            watched_runs.update(ids)
        lines = (
            Log.objects.filter(ranges, flow_run_id__in=watched_runs)
            .select_related("task_run")
            .only(*LOG_FIELDS)
            .order_by("pk")
        )
        firsts = [first for first, *_ in chunk]
        for number, line in enumerate(lines):
            position = chunk[bisect.bisect_right(firsts, line.pk) - 1][2]
            messages.append(
                ((position, number), [flow_run_group(line.flow_run_id)], _encode("log", LogSerializer(line).data))
            )
    return messages


async def _groups_with_members(layer: Any, groups: list[str]) -> set[str]:
    """Which of these groups have members now (on the loop: the in-memory layer's state belongs to it)."""
    if isinstance(layer, InMemoryChannelLayer):
        return {group for group in groups if layer.groups.get(group)}
    group_key = getattr(layer, "_group_key", None)
    if group_key is None:  # a layer we cannot ask: send to every group
        return set(groups)
    # channels_redis keeps a group as a sorted set of its channels; one pipeline of EXISTS per Redis host.
    by_host: dict[int, list[str]] = defaultdict(list)
    for group in groups:
        by_host[layer.consistent_hash(group)].append(group)
    watched: set[str] = set()
    for host, host_groups in by_host.items():
        async with layer.connection(host).pipeline(transaction=False) as pipe:
            for group in host_groups:
                pipe.exists(group_key(group))
            answers = await pipe.execute()
        watched.update(group for group, exists in zip(host_groups, answers, strict=True) if exists)
    return watched


async def _send(layer: Any, messages: list[tuple[list[str], str]]) -> int:
    sent = 0
    for groups, text in messages:
        for group in groups:
            await layer.group_send(group, {"type": MESSAGE_TYPE, "text": text})
            sent += 1
    return sent
