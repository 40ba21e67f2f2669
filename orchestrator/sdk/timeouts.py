"""Run a call with a time limit, for sync and async code."""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.sdk.exceptions import RunTimeout


def _raise_in_thread(thread: threading.Thread, exception: type[BaseException]) -> None:
    """Ask a thread to stop by raising `exception` in it at its next bytecode (best effort)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exception))


class _Abandoned(BaseException):
    """Raised inside a timed-out worker thread so it unwinds instead of running on unseen."""


def call_with_timeout(fn: Callable[[], Any], timeout: float | None, description: str) -> Any:
    """Call `fn()`; after `timeout` seconds raise RunTimeout and stop the call's thread.

    The call runs in a helper thread that carries the caller's context, so a blocking call (sleep, I/O)
    is bounded too; the helper is interrupted at its next Python instruction.
    """
    if not timeout:
        return fn()
    import contextvars

    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = context.run(fn)
        except _Abandoned:
            pass
        except BaseException as exc:  # handed back to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"orchestrator-timeout-{description}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _raise_in_thread(thread, _Abandoned)
        raise RunTimeout(f"{description} exceeded timeout of {timeout:g} second(s)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def await_with_timeout(awaitable: Awaitable[Any], timeout: float | None, description: str) -> Any:
    if not timeout:
        return await awaitable
    try:
        async with asyncio.timeout(timeout) as scope:
            return await awaitable
    except TimeoutError as exc:
        if scope.expired():
            raise RunTimeout(f"{description} exceeded timeout of {timeout:g} second(s)") from exc
        raise
