"""Helpers for the websocket tests: an event loop on a thread of its own (the consumers and the in-memory channel
layer live there, while the test body, the API client and the publisher run in the test's thread, as the server's
Daphne loop and its event runner thread do), and a session."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client

from tests.support.users import user_with_role

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-websocket-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what is left (consumers of sockets a test did not close), then stop the loop."""

        async def cancel_the_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # The consumers' queries ran on asgiref's one thread for sync code: close its connections there (a
            # PostgreSQL test database cannot be dropped while they are open).
            await sync_to_async(connections.close_all)()

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def session_cookie(*, staff: bool = True, username: str = "watcher", role: str | None = None) -> bytes:
    """A `Cookie` header value with the session of a user logged in through Django's auth: staff (a Viewer) by
    default, or in the group `role`."""
    user = user_with_role(username, role, is_staff=staff)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()
