"""The process worker: polls a work pool over HTTP and runs each claimed flow run in a subprocess of its own.

One thread, one loop (docs/workers.md, "the claim protocol"). Each turn it:
- reaps the subprocesses that ended, and proposes Crashed for a run that ended without a final state
  (or Cancelled for one it was asked to cancel);
- polls every ORCHESTRATOR_WORKER_POLL_SECONDS for runs due before now + ORCHESTRATOR_WORKER_PREFETCH_SECONDS,
  at most its free slots, and holds them in a heap until their expected start time;
- claims each run as it comes due (SCHEDULED -> PENDING through the engine: ACCEPT means it is ours, anything
  else means another worker took it or it moved on) and starts the run's process (forked by the worker's
  launcher, see launcher.py: `orchestrator.workers.execute` in a session and process group of its own), then
  records `worker_name` and `infrastructure_pid` on the run;
- heartbeats every ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS while it has runs, and stops the process group of each
  run the answer lists as cancelling (SIGTERM, SIGKILL after ORCHESTRATOR_WORKER_KILL_GRACE_SECONDS).
Between turns it sleeps until the next thing is due; a run's process ending (the launcher reports it) or a stop
signal wakes it.

The server being unreachable costs one line and a retry on the next turn; reports it could not send (a crash,
a cancellation) are kept and sent when the server answers again. SIGTERM or Ctrl+C stops claiming and waits for
the runs in progress; a second one kills their process groups and marks them Crashed; a third exits without
waiting for an unreachable server.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator import config
from orchestrator.client.errors import ClientError, NotFound
from orchestrator.states import TERMINAL_TYPES, Cancelled, Crashed, Pending, State, StateType
from orchestrator.workers.execute import WORKER_PID_VARIABLE, exit_description
from orchestrator.workers.launcher import ForkServer, LauncherError

logger = logging.getLogger("orchestrator.worker")

# Runs asked for per poll when the worker has no --limit.
UNLIMITED_RUNS_PER_POLL = 100
# Longest sleep between turns with runs in progress (a safety net: SIGCHLD normally wakes the loop).
BUSY_TICK_SECONDS = 0.5


class WorkerError(Exception):
    """The worker cannot start; the message is one line (an unknown pool, no API URL, an unreachable server)."""


@dataclass(order=True)
class HeldRun:
    """A polled run waiting for its expected start time (ordered by that time, then by the server's order)."""

    due: float  # time.monotonic() at which to claim it
    sequence: int
    run: dict[str, Any] = field(compare=False)


@dataclass
class ActiveRun:
    """A claimed run and the process executing it (the leader of its own process group)."""

    id: str
    label: str
    pid: int
    launcher_generation: int
    cancelling: bool = False
    kill_at: float | None = None
    stopped_by_worker: bool = False


@dataclass
class PendingReport:
    """A final state to propose for a run whose process ended, kept until the server takes it."""

    run_id: str
    label: str
    state: State
    # Only propose when the run is not final already (the child may have ended it properly).
    only_if_unfinished: bool = True


def _label(run: dict[str, Any]) -> str:
    flow = f" of {run['flow_name']}" if run.get("flow_name") else ""
    return f"flow run {run.get('name')!r} ({run['id']}){flow}"


class ProcessWorker:
    """Runs the flow runs of one work pool (optionally some of its queues) in subprocesses; see the module."""

    def __init__(
        self,
        *,
        pool: str,
        queues: list[str] | None = None,
        limit: int | None = None,
        name: str | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        from orchestrator.client import OrchestratorClient

        api_url = config.get("ORCHESTRATOR_API_URL")
        if not api_url:
            raise WorkerError(
                "ORCHESTRATOR_API_URL is not set: a worker talks to a server "
                "(e.g. `orchestrator config set ORCHESTRATOR_API_URL=http://127.0.0.1:4200/api`)"
            )
        if limit is not None and limit < 1:
            raise WorkerError(f"--limit must be at least 1 (got {limit})")
        self.api_url = api_url
        self.api_key = config.get("ORCHESTRATOR_API_KEY")
        self.pool = pool
        self.queues = list(queues or [])
        self.limit = limit
        self.hostname = socket.gethostname()
        self.name = name or f"{self.hostname}-{os.getpid()}"
        self.poll_seconds = float(config.get("ORCHESTRATOR_WORKER_POLL_SECONDS") or 1)
        self.prefetch_seconds = float(config.get("ORCHESTRATOR_WORKER_PREFETCH_SECONDS") or 10)
        self.heartbeat_seconds = float(config.get("ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS") or 2)
        self.kill_grace_seconds = float(config.get("ORCHESTRATOR_WORKER_KILL_GRACE_SECONDS") or 3)
        # Writes that must not be lost (claims, final states) retry with backoff; the poll and the heartbeat
        # are simply sent again on the next turn.
        self.client = OrchestratorClient(api_url, self.api_key)
        self.poll_client = OrchestratorClient(api_url, self.api_key, retries=0)
        self._echo = echo or (lambda line: print(line, flush=True))
        self._wake = threading.Event()
        self.launcher = ForkServer(self._child_env(), on_exit=self._wake.set)
        self.held: list[HeldRun] = []
        self.held_ids: set[str] = set()
        self.active: dict[str, ActiveRun] = {}
        self.reports: list[PendingReport] = []
        self.stopping = False
        self.exit_code = 0
        self.signals_received = 0
        self._sequence = itertools.count()
        self._next_poll = 0.0
        self._next_heartbeat = 0.0
        self._unreachable: str | None = None

    # -- start and stop ---------------------------------------------------------------------------------------
    def check_pool(self) -> dict[str, Any]:
        """The pool as the server has it; WorkerError when it or one of the worker's queues does not exist, or
        the server cannot be reached."""
        try:
            pool = self.client.read_work_pool(self.pool)
            for queue in self.queues:
                try:
                    self.client.read_work_queue(self.pool, queue)
                except NotFound:
                    raise WorkerError(f"work queue {queue!r} not found in work pool {self.pool!r}") from None
        except NotFound:
            raise WorkerError(f"work pool {self.pool!r} not found") from None
        except ClientError as exc:  # unreachable after the client's retries, a wrong URL, a failing server
            raise WorkerError(str(exc)) from None
        return pool

    def echo(self, message: str) -> None:
        self._echo(f"{datetime.now().strftime('%H:%M:%S')} {message}")

    def request_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        """A stop signal: the first stops claiming, the second kills the runs in progress, a third exits even if
        the server has not been told how they ended (the zombies service will)."""
        self.signals_received += 1
        if self.signals_received == 1:
            self.stopping = True
        self._wake.set()

    def _on_child_exit(self, signum: int, frame: Any) -> None:
        self._wake.set()

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Work until stopped (see the module docstring); returns the exit code (0)."""
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGCHLD, self._on_child_exit)
        queues = ", ".join(self.queues) if self.queues else "all"
        limit = self.limit if self.limit else "none"
        self.launcher.start()  # it warms up while the worker polls
        self.echo(f"Worker {self.name!r} started: pool {self.pool!r}, queues: {queues}, limit: {limit}")
        announced_stop = killed = False
        try:
            while True:
                self._wake.clear()
                now = time.monotonic()
                self._reap()
                if self.stopping and not announced_stop:
                    announced_stop = True
                    self._drop_held()
                    if self.active:
                        self.echo(
                            f"Stopping: waiting for {len(self.active)} flow run(s) to finish "
                            "(send the signal again, or Ctrl+C, to stop them now)"
                        )
                if self.signals_received >= 2 and not killed:
                    killed = True
                    self._kill_all()
                self._enforce_kills(now)
                self._send_reports()
                if self.stopping and not self.active and (not self.reports or self.signals_received >= 3):
                    break  # a third signal does not wait for an unreachable server to take the reports
                if not self.stopping and now >= self._next_poll:
                    self._poll()
                    self._next_poll = time.monotonic() + self.poll_seconds
                if self.active and time.monotonic() >= self._next_heartbeat:
                    self._heartbeat()
                    self._next_heartbeat = time.monotonic() + self.heartbeat_seconds
                if not self.stopping:
                    self._start_due_runs()
                self._wake.wait(self._sleep_seconds())
        finally:
            self.launcher.close()
            self.client.close()
            self.poll_client.close()
        self.echo(f"Worker {self.name!r} stopped.")
        return self.exit_code

    def _sleep_seconds(self) -> float:
        now = time.monotonic()
        moments = [self._next_poll] if not self.stopping else []
        if self.active:
            moments.append(self._next_heartbeat)
            moments.append(now + BUSY_TICK_SECONDS)
            moments.extend(run.kill_at for run in self.active.values() if run.kill_at is not None)
        if self.held and not self.stopping:
            moments.append(self.held[0].due)
        if self.reports:
            moments.append(now + self.poll_seconds)
        if not moments:
            moments.append(now + self.poll_seconds)
        return max(0.0, min(moments) - now)

    # -- polling and claiming ---------------------------------------------------------------------------------
    def free_slots(self) -> int:
        if self.limit is None:
            return UNLIMITED_RUNS_PER_POLL
        return max(0, self.limit - len(self.active))

    def _poll(self) -> None:
        free = self.free_slots()
        if free == 0:
            return  # nothing to take; with runs in progress, the heartbeat keeps the worker online
        wall_now = datetime.now(UTC)
        try:
            runs = self.poll_client.get_scheduled_flow_runs(
                self.pool,
                scheduled_before=wall_now + timedelta(seconds=self.prefetch_seconds),
                limit=free,
                work_queue_names=self.queues,
                worker_name=self.name,
            )
        except NotFound:
            self._pool_gone()
            return
        except Exception as exc:
            self._server_problem("polling", exc)
            return
        self._server_answered()
        mono_now = time.monotonic()
        for run in runs:
            run_id = str(run["id"])
            if run_id in self.active or run_id in self.held_ids:
                continue
            due = mono_now
            # A retry's next start time, else the scheduled one.
            start = run.get("next_scheduled_start_time") or run.get("expected_start_time")
            if start:
                due = max(mono_now, mono_now + (datetime.fromisoformat(start) - wall_now).total_seconds())
            heapq.heappush(self.held, HeldRun(due, next(self._sequence), run))
            self.held_ids.add(run_id)

    def _pool_gone(self) -> None:
        """The pool was deleted under the worker: polling a 404 every second helps nobody. Stop claiming, let the
        runs in progress finish, and exit non-zero so a supervisor notices."""
        if self.exit_code == 0:
            self.echo(
                f"error: work pool {self.pool!r} no longer exists (deleted?); stopping. Create it again or start "
                "the worker on another pool"
            )
        self.exit_code = 1
        self.stopping = True
        self._wake.set()

    def _drop_held(self) -> None:
        """Forget the runs waiting for their time (they stay Scheduled for another worker)."""
        self.held.clear()
        self.held_ids.clear()

    def _start_due_runs(self) -> None:
        started: list[ActiveRun] = []
        while self.held and self.held[0].due <= time.monotonic() and not self.stopping:
            held = heapq.heappop(self.held)
            self.held_ids.discard(str(held.run["id"]))
            if self.limit is not None and len(self.active) >= self.limit:
                continue  # no slot: it stays Scheduled and comes back in a later poll
            run = self._claim(held)
            if run is not None:
                started.append(run)
        # Bookkeeping after every due run has started: a batch of runs does not wait for each other's PATCH.
        for run in started:
            try:
                self.client.update_flow_run(
                    run.id, {"worker_name": self.name, "infrastructure_pid": f"{self.hostname}:{run.pid}"}
                )
            except Exception as exc:  # the run goes on; the heartbeat still names it
                logger.warning("could not record the worker of %s: %s", run.id, exc)

    def _claim(self, held: HeldRun) -> ActiveRun | None:
        """Claim the run through the engine and start its process; the run if it is now ours and started."""
        run = held.run
        run_id = str(run["id"])
        try:
            answer = self.client.set_flow_run_state(run_id, Pending(message=f"Claimed by worker {self.name!r}"))
        except Exception as exc:
            self._server_problem("claiming a run", exc)
            return None
        if answer.status == "WAIT" and answer.delay_seconds <= self.prefetch_seconds:
            # Not yet (its time, by the server's clock, or a concurrency limit): try again after the delay.
            logger.debug("claim of %s: WAIT %.2fs (%s)", run_id, answer.delay_seconds, answer.reason)
            held.due = time.monotonic() + max(answer.delay_seconds, 0.05)
            heapq.heappush(self.held, held)
            self.held_ids.add(run_id)
            return None
        if answer.status != "ACCEPT":
            logger.debug("claim of %s: %s (%s)", run_id, answer.status, answer.reason)
            return None
        return self._launch(run_id, _label(run))

    def _child_env(self) -> dict[str, str]:
        """The environment of the launcher and so of every run's process: the worker's, with its API settings."""
        env = dict(os.environ)
        env.update(ORCHESTRATOR_API_URL=self.api_url, PYTHONUNBUFFERED="1", **{WORKER_PID_VARIABLE: str(os.getpid())})
        if self.api_key:
            env["ORCHESTRATOR_API_KEY"] = self.api_key
        return env

    def _launch(self, run_id: str, label: str) -> ActiveRun | None:
        try:
            pid = self.launcher.launch(run_id)
        except (LauncherError, OSError) as exc:
            message = f"worker {self.name!r} could not start the run's process: {exc}"
            self.echo(f"Could not start {label}: {exc}")
            self.reports.append(PendingReport(run_id, label, Crashed(message=message)))
            return None
        run = ActiveRun(id=run_id, label=label, pid=pid, launcher_generation=self.launcher.generation)
        self.active[run_id] = run
        self.echo(f"Started {label} in process {pid}")
        return run

    # -- watching ---------------------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        try:
            answer = self.poll_client.send_worker_heartbeat(
                self.pool, worker_name=self.name, flow_run_ids=list(self.active)
            )
        except Exception as exc:
            self._server_problem("sending a heartbeat", exc)
            return
        self._server_answered()
        for run_id in answer.get("cancelling") or []:
            run = self.active.get(str(run_id))
            if run is not None and not run.cancelling:
                self._cancel(run)

    def _cancel(self, run: ActiveRun) -> None:
        run.cancelling = True
        run.kill_at = time.monotonic() + self.kill_grace_seconds
        self.echo(f"Cancelling {run.label}: SIGTERM to process group {run.pid}")
        self._signal_group(run, signal.SIGTERM)

    def _signal_group(self, run: ActiveRun, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.pid, sig)  # the run's process leads its own session: the group's id is its pid

    def _enforce_kills(self, now: float) -> None:
        for run in self.active.values():
            if run.kill_at is not None and now >= run.kill_at:
                self.echo(f"{run.label} did not stop within {self.kill_grace_seconds:g}s: SIGKILL")
                self._signal_group(run, signal.SIGKILL)
                run.kill_at = None

    def _kill_all(self) -> None:
        for run in self.active.values():
            run.stopped_by_worker = True
            self._signal_group(run, signal.SIGKILL)
        if self.active:
            self.echo(f"Killed {len(self.active)} flow run(s)")

    def _reap(self) -> None:
        for run_id, run in list(self.active.items()):
            code = self.launcher.exit_code(run.pid)
            if code is None and not self.launcher.ended(run.launcher_generation):
                continue
            if code is None:  # the launcher died, and its children with it (PR_SET_PDEATHSIG)
                code = -signal.SIGKILL
            del self.active[run_id]
            if run.cancelling or run.stopped_by_worker:
                self._signal_group(run, signal.SIGKILL)  # whatever the flow started in its group goes too
            if run.cancelling:
                message = f"Cancelled by worker {self.name!r}: the run's process {exit_description(code)}"
                self.reports.append(PendingReport(run_id, run.label, Cancelled(message=message)))
            elif run.stopped_by_worker:
                message = f"worker {self.name!r} was stopped while the run was running"
                self.reports.append(PendingReport(run_id, run.label, Crashed(message=message)))
            else:
                message = f"the flow run's process {exit_description(code)}"
                self.reports.append(PendingReport(run_id, run.label, Crashed(message=message)))

    def _send_reports(self) -> None:
        """Report the ends of finished processes: print the run's final state, or propose one if it has none."""
        waiting: list[PendingReport] = []
        for report in self.reports:
            try:
                self._send_report(report)
            except Exception as exc:
                self._server_problem("reporting a finished run", exc)
                waiting.append(report)
        self.reports = waiting

    def _send_report(self, report: PendingReport) -> None:
        state = self.client.read_flow_run(report.run_id).state
        if state is not None and state.type in TERMINAL_TYPES:
            self.echo(f"Finished {report.label}: {state.name}")
            return
        proposal = report.state
        if state is not None and state.type == StateType.CANCELLING and proposal.type != StateType.CANCELLED:
            # Asked to cancel after its process ended on its own: the cancellation wins.
            proposal = Cancelled(message=f"{proposal.message}; it was being cancelled")
        answer = self.client.set_flow_run_state(report.run_id, proposal)
        final = answer.state.name if answer.state is not None else proposal.name
        detail = f" ({proposal.message})" if answer.status == "ACCEPT" else f" ({answer.status}: {answer.reason})"
        self.echo(f"Finished {report.label}: {final}{detail}")

    # -- the server's health ----------------------------------------------------------------------------------
    def _server_problem(self, doing: str, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ClientError) else str(exc)
        if self._unreachable is None:
            self.echo(f"Problem {doing} ({text}); retrying every {self.poll_seconds:g}s")
        else:
            logger.debug("still failing: %s: %s", doing, text)
        self._unreachable = text

    def _server_answered(self) -> None:
        if self._unreachable is not None:
            self._unreachable = None
            self.echo("The API answers again")
