"""`flow.deploy()` and `flow.serve()`: register a deployment, and run its runs in this process.

Both build the API's deployment body from the flow: its name, the entrypoint (`path/file.py:function`,
relative to the working directory when it is under it) and a JSON schema of its parameters derived from the
function's signature (pydantic), so the server can check parameters before a run starts.

`serve` then loops until Ctrl+C: it asks the server to create the deployment's upcoming scheduled runs
(what the scheduler service does, so it works without Celery Beat), looks for runs of this deployment that
are due, claims each one through the engine (SCHEDULED -> PENDING; an ABORT means another process took it)
and executes the flow for that existing run on a thread of its own.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator import config
from orchestrator.client import RunInfo, get_client
from orchestrator.sdk.parameters import jsonable
from orchestrator.states import Crashed, Pending

logger = logging.getLogger("orchestrator.serve")

# How often `serve` asks for the deployment's upcoming runs to be created (seconds).
SCHEDULE_EVERY_SECONDS = 30.0


def parameter_schema(fn: Any) -> dict[str, Any]:
    """A JSON schema (draft 2020-12) of the function's parameters, from their type hints and defaults.

    A parameter whose type has no JSON schema is accepted as any value; `**kwargs` allows other names."""
    import pydantic

    from orchestrator.sdk.parameters import _type_hints

    hints = _type_hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    definitions: dict[str, Any] = {}
    open_ended = False
    for position, (name, parameter) in enumerate(inspect.signature(fn).parameters.items()):
        if parameter.kind == parameter.VAR_KEYWORD:
            open_ended = True
            continue
        if parameter.kind == parameter.VAR_POSITIONAL:
            continue
        schema: dict[str, Any] = {}
        if name in hints:
            try:
                schema = pydantic.TypeAdapter(hints[name]).json_schema(ref_template="#/$defs/{model}")
            except Exception:  # arbitrary classes have no JSON schema: any value passes
                schema = {}
        definitions.update(schema.pop("$defs", {}))
        schema = {"title": name, "position": position, **schema}
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
        else:
            default = jsonable(parameter.default)
            if not isinstance(default, str) or isinstance(parameter.default, str):
                schema["default"] = default
        properties[name] = schema
    result: dict[str, Any] = {
        "title": "Parameters",
        "type": "object",
        "properties": properties,
        "required": required,
    }
    if not open_ended:
        result["additionalProperties"] = False
    if definitions:
        result["$defs"] = definitions
    return result


def source_file_of(fn: Any) -> Path:
    """The file that defines `fn`, resolved."""
    return Path(inspect.getsourcefile(fn) or inspect.getfile(fn)).resolve()


def entrypoint_of(fn: Any) -> tuple[str, str]:
    """(entrypoint, path): `file.py:function` relative to the working directory when the file is under it."""
    source = source_file_of(fn)
    base = Path.cwd().resolve()
    try:
        relative = source.relative_to(base)
        return f"{relative.as_posix()}:{fn.__name__}", str(base)
    except ValueError:
        return f"{source.as_posix()}:{fn.__name__}", str(source.parent)


def schedules_body(
    *,
    cron: str | None = None,
    interval: float | timedelta | None = None,
    rrule: str | None = None,
    timezone: str | None = None,
    anchor_date: datetime | str | None = None,
) -> list[dict[str, Any]]:
    """The `schedules` list of a deployment body from the keyword arguments (at most one kind)."""
    given = [kind for kind, value in (("cron", cron), ("interval", interval), ("rrule", rrule)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of cron, interval and rrule (got {', '.join(given)})")
    if not given:
        return []
    schedule: dict[str, Any]
    if cron is not None:
        schedule = {"cron": cron}
    elif rrule is not None:
        schedule = {"rrule": rrule}
    else:
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
        schedule = {"interval": seconds}
        if anchor_date is not None:
            schedule["anchor_date"] = anchor_date.isoformat() if isinstance(anchor_date, datetime) else anchor_date
    if timezone is not None:
        schedule["timezone"] = timezone
    return [{"schedule": schedule, "active": True}]


def deployment_body(
    flow: Any,
    *,
    name: str,
    work_pool_name: str | None = None,
    work_queue_name: str | None = None,
    parameters: dict[str, Any] | None = None,
    schedules: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
    version: str | None = None,
    paused: bool = False,
    concurrency_limit: int | None = None,
    collision_strategy: str | None = None,
    entrypoint: str | None = None,
    path: str | None = None,
    storage_block: str | None = None,
    storage_path: str | None = None,
) -> dict[str, Any]:
    """The API body registering `flow` as deployment `name`: a redeploy states the whole deployment.

    With `storage_path` (the prefix `code_upload` put the flow's folder under) the entrypoint is relative to that
    folder and there is no local `path`: a worker runs the code from its copy of the prefix."""
    derived_entrypoint, derived_path = entrypoint_of(flow.fn)
    if storage_path:
        derived_entrypoint, derived_path = f"{source_file_of(flow.fn).name}:{flow.fn.__name__}", ""
    body: dict[str, Any] = {
        "flow_name": flow.name,
        "name": name,
        "entrypoint": entrypoint or derived_entrypoint,
        "path": path or derived_path or None,
        "parameters": jsonable(parameters or {}),
        "parameter_openapi_schema": parameter_schema(flow.fn),
        "tags": list(tags or []),
        "description": description if description is not None else flow.description,
        "version": version if version is not None else flow.version,
        "work_pool_name": work_pool_name,
        "work_queue_name": work_queue_name,
        "paused": paused,
        "concurrency_limit": concurrency_limit,
        "storage_block": storage_block,
        "storage_path": storage_path,
        "schedules": schedules or [],
        # The flow's retries apply to the deployment's runs too (the engine reads them from each run).
        "empirical_policy": {"retries": flow.retries or 0, "retry_delay": flow.retry_delay_seconds or 0},
    }
    if collision_strategy is not None:
        body["collision_strategy"] = collision_strategy
    return body


def deploy(
    flow: Any,
    *,
    name: str,
    work_pool_name: str | None = None,
    cron: str | None = None,
    interval: float | timedelta | None = None,
    rrule: str | None = None,
    timezone: str | None = None,
    anchor_date: datetime | str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Register (or update) the deployment for workers of `work_pool_name`; returns it as the API shows it.

    With `storage_block="remote-file-system/code"` the flow's folder is uploaded there first (code_storage)."""
    schedules = schedules_body(cron=cron, interval=interval, rrule=rrule, timezone=timezone, anchor_date=anchor_date)
    if options.get("storage_block") and not options.get("storage_path"):
        from orchestrator.sdk.code_storage import code_upload, storage_block_load

        block = storage_block_load(options["storage_block"])
        options["storage_path"] = code_upload(block=block, folder=source_file_of(flow.fn).parent).prefix
    body = deployment_body(flow, name=name, work_pool_name=work_pool_name, schedules=schedules, **options)
    return get_client().create_deployment(body)


class Runner:
    """Runs the due runs of one deployment in this process until stopped (see the module docstring)."""

    def __init__(self, flow: Any, deployment: dict[str, Any], *, limit: int | None = None) -> None:
        self.flow = flow
        self.deployment = deployment
        self.client = get_client()
        self.poll_seconds = float(config.get("ORCHESTRATOR_SERVE_POLL_SECONDS") or 2)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=limit or 8, thread_name_prefix="serve")
        self.running: dict[str, concurrent.futures.Future] = {}
        self.stopping = threading.Event()
        self._last_scheduled = float("-inf")

    def poll_once(self) -> list[str]:
        """Create upcoming runs when due, then claim and start the due ones; returns the ids started."""
        now = time.monotonic()
        if now - self._last_scheduled >= SCHEDULE_EVERY_SECONDS:
            self.client.schedule_deployment_runs(self.deployment["id"])
            self._last_scheduled = now
        self.running = {run_id: future for run_id, future in self.running.items() if not future.done()}
        started = []
        due = self.client.read_deployment_runs_due(
            self.deployment["id"], before=datetime.now(UTC) + timedelta(seconds=0.5), limit=10
        )
        for run in due:
            if run.id in self.running or self.stopping.is_set():
                continue
            claimed = self.client.set_flow_run_state(run.id, Pending(message="Claimed by flow.serve()"))
            if claimed.status != "ACCEPT":  # ABORT: another process took it; REJECT: it moved on
                continue
            print(f"Running flow run {run.name!r} ({run.id}) of {self.flow.name}/{self.deployment['name']}", flush=True)
            self.running[run.id] = self.pool.submit(self._execute, run)
            started.append(run.id)
        return started

    def _execute(self, run: RunInfo) -> None:
        from orchestrator.sdk.engine import run_flow_async, run_flow_sync

        try:
            if inspect.iscoroutinefunction(self.flow.fn):
                import asyncio

                state = asyncio.run(
                    run_flow_async(self.flow, (), dict(run.parameters), return_state=True, flow_run_id=run.id)
                )
            else:
                state = run_flow_sync(self.flow, (), dict(run.parameters), return_state=True, flow_run_id=run.id)
            print(f"Flow run {run.name!r} finished in state {state.name}", flush=True)
        except Exception as exc:  # the engine records the run's outcome; this process keeps serving
            logger.error("flow run %s could not be executed: %s", run.id, exc)

    def run_forever(self) -> None:
        """Poll until Ctrl+C; then wait for the runs in progress (a second Ctrl+C marks them Crashed)."""
        try:
            while True:
                try:
                    self.poll_once()
                except Exception as exc:  # the server may be restarting: keep trying
                    logger.warning("serve: polling failed: %s", exc)
                time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            self.stop()

    def stop(self) -> None:
        self.stopping.set()
        in_progress = {run_id: future for run_id, future in self.running.items() if not future.done()}
        if in_progress:
            print(
                f"Stopping: waiting for {len(in_progress)} flow run(s) to finish (Ctrl+C again to stop now)",
                flush=True,
            )
            try:
                concurrent.futures.wait(list(in_progress.values()))
            except KeyboardInterrupt:
                for run_id in in_progress:
                    self.client.set_flow_run_state(
                        run_id, Crashed(message="flow.serve() was stopped while the run was running"), force=True
                    )
                self.pool.shutdown(wait=False, cancel_futures=True)
                print("Stopped.", flush=True)
                return
        self.pool.shutdown(wait=True, cancel_futures=True)
        print("Stopped.", flush=True)


def serve(
    flow: Any,
    *,
    name: str,
    cron: str | None = None,
    interval: float | timedelta | None = None,
    rrule: str | None = None,
    timezone: str | None = None,
    anchor_date: datetime | str | None = None,
    parameters: dict[str, Any] | None = None,
    limit: int | None = None,
    **options: Any,
) -> None:
    """Register the deployment (no work pool: this process runs it) and run its scheduled and ad hoc runs
    here until Ctrl+C."""
    schedules = schedules_body(cron=cron, interval=interval, rrule=rrule, timezone=timezone, anchor_date=anchor_date)
    body = deployment_body(flow, name=name, parameters=parameters, schedules=schedules, **options)
    deployment = get_client().create_deployment(body)
    print(f"Serving deployment {flow.name}/{name} ({deployment['id']}); press Ctrl+C to stop.", flush=True)
    print(f"Run it once now: orchestrator deployment run '{flow.name}/{name}'", flush=True)
    Runner(flow, deployment, limit=limit).run_forever()
