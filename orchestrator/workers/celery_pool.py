"""The celery pool type, worker side (docs/workers.md, "Celery pools").

`orchestrator worker start --pool P` on a celery pool becomes a Celery worker (`celery -A orchestrator.celery
worker`, prefork, `--limit` processes) consuming the pool's queue `pool-P`. It needs what the server has: the
database (ORCHESTRATOR_DATABASE_URL) and the broker (ORCHESTRATOR_BROKER_URL); it does not talk to the API.

Each message is the task `orchestrator.work_pools.execute_flow_run(RUN_ID)` (apps/work_pools/tasks.py), sent
when the run is due; its body is `execute_flow_run` here:
1. a run that is not Scheduled any more is left alone (a second delivery, a cancelled run); a run of a paused
   pool or queue is left too, and the `celery_dispatch` service sends it again after the resume;
2. the Celery worker heartbeats as a Worker of the pool (`celery-PID@HOST`, its Celery node name) and claims the
   run SCHEDULED -> PENDING through the engine in-process: ABORT or REJECT means someone else has it; WAIT (a
   concurrency limit) sends the task again after the delay;
3. the run is executed in a child forked from the Celery process (warm: Django, the SDK and pydantic are loaded;
   nothing to start), in a session of its own: the child loads the flow from the deployment's path and
   entrypoint, or from its storage block's code fetched into the cache (orchestrator/workers/loading.py; a broken
   entrypoint or an unreachable storage fails the run naming it) and runs it against
   the run through the SDK's in-process client, straight into the database. The user's code never runs in the
   Celery process itself, so whatever it imports, changes (the working directory) or crashes stays in the child;
4. while the child runs, the task heartbeats and reads the run's state every ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS:
   a Cancelling run's process group gets SIGTERM, SIGKILL after ORCHESTRATOR_WORKER_KILL_GRACE_SECONDS, and the
   run is proposed Cancelled; a child that ends without a final state makes the run Crashed (the retry rule may
   make it AwaitingRetry, which is sent again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from orchestrator import config
from orchestrator.workers.execute import exit_description, run_forked_child
from orchestrator.workers.loading import CodeLocation

logger = logging.getLogger("orchestrator.worker")

# Celery processes of a pool's worker without --limit: each runs one flow run at a time.
DEFAULT_CONCURRENCY = 4
CELERY_APP = "orchestrator.celery"
# How often the wait for a run's process looks at it when the kernel cannot notify us (no pidfd).
POLL_CHILD_SECONDS = 0.05


class CeleryWorkerError(Exception):
    """A celery pool's worker cannot start; the message is one line."""


@dataclass
class Outcome:
    """What the task did with a run; `retry_in`: send the task again after that many seconds."""

    message: str
    retry_in: float | None = None


# -- `orchestrator worker start --pool P` on a celery pool --------------------------------------------------------
def pool_type(name: str) -> str | None:
    """The type of the pool named `name`, from the server when ORCHESTRATOR_API_URL is set, else from the
    database; None when it cannot be told (the process worker then reports what is wrong)."""
    api_url = config.get("ORCHESTRATOR_API_URL")
    if api_url:
        from orchestrator.client import OrchestratorClient

        client = OrchestratorClient(api_url, config.get("ORCHESTRATOR_API_KEY"), retries=0)
        try:
            return client.read_work_pool(name).get("type")
        except Exception:  # 404, unreachable: the process worker says so
            return None
        finally:
            client.close()
    return _database_pool_type(name)


def _database_pool_type(name: str) -> str | None:
    from django.db import DatabaseError

    from apps.work_pools.models import WorkPool

    try:
        return WorkPool.objects.filter(name=name).values_list("type", flat=True).first()
    except DatabaseError:  # no schema here: not a server's database
        return None


def node_name(name: str | None) -> str:
    """The Celery node name, which is also the worker's name in the pool: NAME@HOST (default celery-PID@HOST)."""
    if name and "@" in name:
        return name
    return f"{name or f'celery-{os.getpid()}'}@{socket.gethostname()}"


def worker_command(*, pool: str, concurrency: int, node: str) -> list[str]:
    """`celery worker` consuming only the pool's queue (the services' queue is the server's own worker's)."""
    from apps.work_pools.dispatch import celery_queue_name

    return [
        sys.executable,
        "-W",
        "ignore:You're running the worker with superuser privileges",
        "-m",
        "celery",
        "--quiet",
        "--skip-checks",
        "-A",
        CELERY_APP,
        "worker",
        "--queues",
        celery_queue_name(pool),
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--hostname",
        node,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]


def start_worker(
    *, pool: str, queues: list[str], limit: int | None, name: str | None, echo: Callable[[str], None]
) -> NoReturn:
    """Replace this process with a Celery worker for the celery pool `pool` (CeleryWorkerError when it cannot)."""
    from django.conf import settings

    from apps.core.management.base import database_label, mask_url_password
    from apps.work_pools.dispatch import celery_queue_name
    from apps.work_pools.models import WorkPoolType

    if queues:
        raise CeleryWorkerError(
            f"work pool {pool!r} is a celery pool: its runs go to one Celery queue, {celery_queue_name(pool)!r}; "
            "--queue applies to process pools only"
        )
    if limit is not None and limit < 1:
        raise CeleryWorkerError(f"--limit must be at least 1 (got {limit})")
    found = _database_pool_type(pool)
    if found is None:
        raise CeleryWorkerError(
            f"work pool {pool!r} is a celery pool, but the database this worker uses ({database_label()}) has no "
            "such pool: a celery pool's worker uses the server's database and broker; set ORCHESTRATOR_DATABASE_URL "
            "and ORCHESTRATOR_BROKER_URL as the server has them"
        )
    if found != WorkPoolType.CELERY:
        raise CeleryWorkerError(f"work pool {pool!r} is a {found} pool, not a celery pool")
    concurrency = limit or DEFAULT_CONCURRENCY
    node = node_name(name)
    if settings.SERVICES_EMBEDDED_BROKER:
        broker = "embedded broker (this machine and ORCHESTRATOR_HOME only)"
    else:
        broker = f"broker {mask_url_password(settings.CELERY_BROKER_URL)}"
    echo(
        f"Celery worker {node!r} starting for celery pool {pool!r}: queue {celery_queue_name(pool)!r}, "
        f"concurrency {concurrency}, {broker}"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    command = worker_command(pool=pool, concurrency=concurrency, node=node)
    os.execv(command[0], command)


def announce_ready(*, hostname: str, pools: list[str]) -> None:
    """Once the Celery worker consumes its queue: heartbeat as a worker of each pool (so `work-pool inspect`
    lists it) and say so on stdout."""
    from django.db import DatabaseError, connections

    from apps.work_pools.models import WorkPool
    from apps.work_pools.services import worker_heartbeat

    try:
        for pool in WorkPool.objects.filter(name__in=pools):
            worker_heartbeat(pool=pool, name=hostname)
    except DatabaseError as exc:
        logger.warning("could not record worker %s: %s", hostname, exc)
    finally:
        connections.close_all()  # the Celery process forks its pool processes: it keeps no connection open
    stamp = time.strftime("%H:%M:%S")
    if sys.__stdout__ is not None:  # None when Python started without a standard output
        sys.__stdout__.write(f"{stamp} Celery worker {hostname!r} ready: pool {', '.join(map(repr, pools))}\n")
        sys.__stdout__.flush()


def warm_up() -> None:
    """Import and build, once per Celery process, what a run's process needs (forked children inherit it)."""
    import orchestrator.sdk.engine  # noqa: F401
    import orchestrator.sdk.logging  # noqa: F401
    import orchestrator.workers.loading  # noqa: F401
    from orchestrator.sdk.parameters import validate_parameters

    def typed(number: int = 0, text: str = "") -> None:
        return None

    validate_parameters(typed, {"number": 1})  # pydantic's model machinery


# -- the task's body ----------------------------------------------------------------------------------------------
def execute_flow_run(*, flow_run_id: str, worker_name: str) -> Outcome:
    """Claim the flow run and run it in a child process, watching it until it ends (see the module docstring)."""
    from apps.work_pools.services import flow_run_claim_for_celery

    claim = flow_run_claim_for_celery(flow_run_id=flow_run_id, worker_name=worker_name)
    if claim.run is None:
        return Outcome(claim.message, retry_in=claim.retry_in)
    return _run(claim.run, claim.pool, worker_name)


def _run(run, pool, worker_name: str) -> Outcome:
    """Fork the run's process, record it on the run, watch it, and settle the run's state once it ends."""
    from django.db import DatabaseError, connections

    from apps.deployments.models import Deployment
    from apps.runs.services import flow_run_update

    label = f"flow run {run.name!r} ({run.id})"
    parent_pid = os.getpid()
    previous_sigchld = signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # so that waitpid() sees our child
    try:
        # Read here, where the connection is warm; the child inherits the values.
        deployment = Deployment.objects.filter(pk=run.deployment_id) if run.deployment_id else Deployment.objects.none()
        code_location = _code_location(deployment.values("entrypoint", "path", "storage_block", "storage_path").first())
        connections.close_all()  # the child opens its own connections; it inherits none of ours
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    except (OSError, DatabaseError) as exc:  # claimed but not started: say so rather than wait for `zombies`
        signal.signal(signal.SIGCHLD, previous_sigchld)
        return _settle(run.id, label, None, False, worker_name, reason=f"could not start the run's process: {exc}")
    if pid == 0:
        _child(str(run.id), code_location, parent_pid)
    try:
        try:
            flow_run_update(run=run, worker_name=worker_name, infrastructure_pid=f"{socket.gethostname()}:{pid}")
        except DatabaseError as exc:  # deleted meanwhile, or the database is busy: the run goes on
            logger.warning("could not record the worker of %s: %s", label, exc)
        logger.info("Started %s in process %s", label, pid)
        code, cancelling = _watch(run.id, pid, pool, worker_name, label)
    finally:
        signal.signal(signal.SIGCHLD, previous_sigchld)
    return _settle(run.id, label, code, cancelling, worker_name)


def _watch(run_id, pid: int, pool, worker_name: str, label: str) -> tuple[int, bool]:
    """Wait for the run's process; heartbeat meanwhile and stop it if the run is being cancelled. Returns (exit
    code as subprocess gives it, whether it was stopped for a cancellation)."""
    from django.db import DatabaseError

    from apps.work_pools.selectors import flow_run_state_type
    from apps.work_pools.services import worker_heartbeat
    from orchestrator.states import StateType

    interval = float(config.get("ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS") or 2)
    grace = float(config.get("ORCHESTRATOR_WORKER_KILL_GRACE_SECONDS") or 3)
    pidfd = _pidfd(pid)
    cancelling = False
    kill_at: float | None = None
    next_look = time.monotonic() + interval
    try:
        while True:
            deadline = min(next_look, kill_at) if kill_at is not None else next_look
            status = _wait(pid, pidfd, max(0.0, deadline - time.monotonic()))
            if status is not None:
                break
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                logger.warning("%s did not stop within %gs: SIGKILL", label, grace)
                _signal_group(pid, signal.SIGKILL)
                kill_at = None
            if now < next_look:
                continue
            next_look = now + interval
            try:
                worker_heartbeat(pool=pool, name=worker_name)
                state_type = flow_run_state_type(run_id=run_id)
            except DatabaseError as exc:  # busy or unreachable: the next look tries again
                logger.warning("could not heartbeat while running %s: %s", label, exc)
                continue
            if not cancelling and state_type in (StateType.CANCELLING, StateType.CANCELLED, None):
                cancelling = True
                kill_at = now + grace
                logger.info("Cancelling %s: SIGTERM to process group %s", label, pid)
                _signal_group(pid, signal.SIGTERM)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    if cancelling:
        _signal_group(pid, signal.SIGKILL)  # whatever the flow started in its group goes too
    return os.waitstatus_to_exitcode(status), cancelling


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+: poll instead
        return None


def _wait(pid: int, pidfd: int | None, timeout: float) -> int | None:
    """The wait status once the process ended within `timeout` seconds, else None."""
    if pidfd is not None:
        with contextlib.suppress(InterruptedError):
            select.select([pidfd], [], [], timeout)
        done, status = os.waitpid(pid, os.WNOHANG)
        return status if done else None
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(POLL_CHILD_SECONDS, max(0.0, deadline - time.monotonic())))


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the run's process leads its own session: the group's id is its pid


def _settle(
    run_id, label: str, code: int | None, cancelling: bool, worker_name: str, *, reason: str | None = None
) -> Outcome:
    """After the run's process ended (or could not start: `reason`), the server side settles the run's state."""
    from apps.work_pools.services import flow_run_settle_after_process

    if reason is not None:
        ended = reason
    elif code is not None:
        ended = f"the flow run's process {exit_description(code)}"
    else:
        raise ValueError("_settle needs the process's exit code or the reason it could not start")
    message = flow_run_settle_after_process(
        run_id=run_id,
        label=label,
        ended=ended,
        cancelling=cancelling,
        worker_name=worker_name,
        could_not_start=reason is not None,
    )
    logger.info("Finished %s", message)
    return Outcome(message)


# -- the run's process --------------------------------------------------------------------------------------------
def _child(flow_run_id: str, code_location: CodeLocation | None, parent_pid: int) -> NoReturn:
    """The body of the forked child: become the run's process, run the flow, exit (never returns)."""

    def body() -> int:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # The flow's prints and the SDK's console lines go to the worker's output as they are, not through the
        # Celery process's redirection into its log.
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        os.setsid()
        from orchestrator.workers.execute import die_with_parent

        die_with_parent(parent_pid)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        import atexit

        atexit._clear()  # the Celery process's exit functions are not this run's
        return run_in_process(flow_run_id, code_location)

    run_forked_child(body)


def _code_location(fields: dict | None) -> CodeLocation | None:
    return CodeLocation.of(fields) if fields is not None else None


def run_in_process(flow_run_id: str, code_location: CodeLocation | None) -> int:
    """Load the run's flow from its deployment's code location (None: the run has no deployment) and run it
    against the run, recording through the database in this process; returns the exit code of
    orchestrator.workers.execute (0 ran, 1 could not be loaded)."""
    from orchestrator.client import use_in_process_client
    from orchestrator.states import Failed
    from orchestrator.workers.execute import LOAD_FAILED_EXIT_CODE, run_flow
    from orchestrator.workers.loading import FlowLoadError, deployment_flow_load

    client = use_in_process_client()
    try:
        if code_location is None:
            message = f"flow run {flow_run_id} has no deployment: nothing says which code to run"
            client.set_flow_run_state(flow_run_id, Failed(message=message))
            return LOAD_FAILED_EXIT_CODE
        run = client.read_flow_run(flow_run_id)
        try:
            flow, folder = deployment_flow_load(code_location)
        except FlowLoadError as exc:
            sys.stderr.write(f"error: {exc}\n")
            client.set_flow_run_state(flow_run_id, Failed(message=str(exc)))
            return LOAD_FAILED_EXIT_CODE
        if folder:
            os.chdir(folder)  # the flow's relative paths mean what they meant where it was deployed
        run_flow(flow, run)
        return 0
    finally:
        client.close()  # closes the database connections it opened, cleanly
