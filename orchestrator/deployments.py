"""`from orchestrator.deployments import run_deployment`: start a run of a deployment and wait for its end.

`run_deployment("etl/nightly", parameters={"day": "2026-01-01"})` waits until the run is final and returns
it (`.state` tells how it ended); `timeout=0` returns the Scheduled run at once.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from orchestrator.client import RunInfo, get_client

POLL_SECONDS = 1.0

__all__ = ["run_deployment"]


def run_deployment(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    timeout: float | None = None,
    poll_interval: float = POLL_SECONDS,
    tags: list[str] | None = None,
    scheduled_time: datetime | None = None,
) -> RunInfo:
    """Create an ad hoc run of the deployment `name` ("flow/deployment", or its id), its parameters checked
    against the deployment's schema, and wait (polling) until it is final or `timeout` seconds pass
    (None: no limit; 0: do not wait). Returns the run as last read: `.state` tells where it is."""
    from orchestrator.sdk.parameters import jsonable

    client = get_client()
    deployment = client.read_deployment(name)
    run = client.create_flow_run_from_deployment(
        deployment["id"], parameters=jsonable(parameters or {}), tags=tags, scheduled_time=scheduled_time
    )
    if timeout is not None and timeout <= 0:
        return run
    deadline = None if timeout is None else time.monotonic() + timeout
    while run.state is None or not run.state.is_final():
        if deadline is not None and time.monotonic() >= deadline:
            return run
        pause = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)
        run = client.read_flow_run(run.id)
    return run
