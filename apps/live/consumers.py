"""The live websockets. `/ws/flow-runs/` streams every flow run created or changed; `/ws/flow-runs/<id>/` streams
one run's changes, its task runs' changes and its new log lines. Messages are JSON texts
`{"type": "flow_run" | "task_run" | "log", "data": <the object as the REST API shows it>}`, encoded once by the
publisher (apps/live/publish.py) and forwarded as they are. docs/live.md says what a client gets and when."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.live.auth import scope_authenticate
from apps.live.layer import FLOW_RUNS_GROUP, flow_run_group, publish_loop_set
from apps.runs.models import FlowRun

# The close code for a run that does not exist (4000-4999 are the application's; 4404 reads as "not found").
CLOSE_NOT_FOUND = 4404


class LiveConsumer(AsyncWebsocketConsumer):
    """Authenticates the handshake, joins its groups, and forwards the publisher's messages."""

    joined: list[str]

    async def connect(self) -> None:
        self.joined = []
        if await scope_authenticate(self.scope) is None:
            await self.close()  # before accepting: the handshake is refused with 403
            return
        # The publisher hands this process's messages to the layer on the loop serving the connections.
        publish_loop_set(asyncio.get_running_loop())
        await self.join()

    async def join(self) -> None:
        raise NotImplementedError

    async def add_to_group(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The stream is one-way: what a client sends is ignored."""

    async def live_message(self, message: dict[str, Any]) -> None:
        """A message of the publisher (channel layer type `live.message`): its text, already JSON."""
        await self.send(text_data=message["text"])


class FlowRunsConsumer(LiveConsumer):
    """`/ws/flow-runs/`: every flow run that is created or changes state. Consumers join their group before they
    accept: once the client's socket is open, nothing committed afterwards is missed (a page opens the socket,
    then reads the REST API)."""

    async def join(self) -> None:
        await self.add_to_group(FLOW_RUNS_GROUP)
        await self.accept()


class FlowRunConsumer(LiveConsumer):
    """`/ws/flow-runs/<id>/`: one flow run, its task runs and its log lines. An unknown id is accepted and closed
    with 4404 and a reason, so a page can tell it from a network failure (a refused handshake only says 403)."""

    async def join(self) -> None:
        raw_id = self.scope["url_route"]["kwargs"]["flow_run_id"]
        flow_run_id = await _existing_flow_run_id(raw_id)
        if flow_run_id is None:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND, reason=f"no flow run with id {raw_id}"[:120])
            return
        await self.add_to_group(flow_run_group(flow_run_id))
        await self.accept()


@database_sync_to_async
def _existing_flow_run_id(raw_id: str) -> uuid.UUID | None:
    try:
        flow_run_id = uuid.UUID(raw_id)
    except ValueError:
        return None
    return flow_run_id if FlowRun.objects.filter(pk=flow_run_id).exists() else None
