"""Run logging: `get_run_logger()`, `log_prints`, and a background shipper that sends records in batches.

Log records never block a task: the handler puts them on a queue, a daemon thread sends batches through the
client (HTTP or in-process), and each run flushes the queue when it ends. The same thread ships the task runs
the SDK ran without waiting for the server (see `TaskRunEngine.setup`): in each batch their records go first,
so a log line never arrives before the task run it belongs to.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.sdk.context import flow_run_context, get_run_context, task_run_context
from orchestrator.sdk.exceptions import MissingContextError

BATCH_SIZE = 500
BATCH_INTERVAL_SECONDS = 0.5
# While the server does not answer, a batch is sent again every RETRY_SECONDS, for GIVE_UP_SECONDS at most.
RETRY_SECONDS = 1.0
GIVE_UP_SECONDS = 300.0
_FLUSH = {"flush": True}  # a marker that ends the current batch at once (a flush() call puts its own)


class RunRecordShipper:
    """One daemon thread per client that ships queued log entries and task run records in batches."""

    def __init__(self, client: Any):
        self.client = client
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.pending = 0
        self.condition = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="orchestrator-log-shipper", daemon=True)
        self.thread.start()

    def put(self, entry: dict[str, Any]) -> None:
        with self.condition:
            self.pending += 1
        self.queue.put(entry)

    def put_task_run(self, record: dict[str, Any]) -> None:
        """A task run to record with the states it went through so far (`record["states"]`, State objects)."""
        self.put({"task_run_record": record})

    def put_task_run_state(self, task_run_id: str, state: Any) -> None:
        """A later state of a task run put here before."""
        self.put({"task_run_state": {"task_run": task_run_id, "state": state}})

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every entry queued before this call was sent (or the timeout passes). Entries other runs of
        the process queue meanwhile are not waited for: with many flows logging at once the queue is never empty."""
        with self.condition:
            if self.pending == 0:
                return
        sent = threading.Event()
        self.queue.put({"flush": True, "sent": sent})
        sent.wait(timeout)

    def _run(self) -> None:
        backlog: list[dict[str, Any]] = []  # what the server could not take yet, sent again first
        flushes: list[threading.Event] = []  # flush() calls whose entries were all taken from the queue
        failing_since: float | None = None
        while True:
            try:
                first = self.queue.get(timeout=RETRY_SECONDS if backlog else None)
            except queue.Empty:
                first = _FLUSH
            batch = list(backlog)
            if "flush" in first:
                _flush_taken(first, flushes)
            else:
                batch.append(first)
                deadline = time.monotonic() + BATCH_INTERVAL_SECONDS
                while len(batch) < BATCH_SIZE:
                    remaining = deadline - time.monotonic()
                    try:
                        item = self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if "flush" in item:
                        _flush_taken(item, flushes)
                        break
                    batch.append(item)
            if not batch:
                _flushes_done(flushes)
                continue
            unsent: list[dict[str, Any]] = []
            try:
                unsent = self._send(batch)
            finally:
                if unsent:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > GIVE_UP_SECONDS:
                        sys.stderr.write(
                            f"orchestrator: gave up on {len(unsent)} log line(s) and task run record(s) after "
                            f"{GIVE_UP_SECONDS:.0f} s without an answer from the server\n"
                        )
                        unsent, failing_since = [], None
                else:
                    failing_since = None
                backlog = unsent
                with self.condition:
                    self.pending -= sum(map(_weight, batch)) - sum(map(_weight, unsent))
                    self.condition.notify_all()
                if not backlog:  # everything taken before those flushes was sent (or given up on)
                    _flushes_done(flushes)

    def _send(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send a batch: task run records first, then log lines. Returns the items to send again (the server
        was unreachable or failed); a refusal (4xx) is reported on stderr and not retried."""
        records: dict[str, dict[str, Any]] = {}
        states: list[dict[str, Any]] = []
        logs: list[dict[str, Any]] = []
        resent: list[dict[str, Any]] = []  # log batches sent before whose answer never came
        record_items: list[dict[str, Any]] = []
        for item in batch:
            if "task_run_record" in item:
                record = item["task_run_record"]
                records[record["id"]] = {**record, "states": list(record["states"])}
                record_items.append(item)
            elif "task_run_state" in item:
                later = item["task_run_state"]
                if later["task_run"] in records:  # started and finished within one batch: one record
                    records[later["task_run"]]["states"].append(later["state"])
                else:
                    states.append(later)
                record_items.append(item)
            elif "log_batch" in item:
                resent.append(item)
            else:
                logs.append(item)
        if records or states:
            try:
                answers = self.client.record_task_runs(list(records.values()), states)
            except Exception as exc:  # like logs, records never break a run; the run's own result stands
                if _worth_retrying(exc):
                    return batch  # the logs may name these task runs: they wait too
                sys.stderr.write(f"orchestrator: could not record {len(records) + len(states)} task run(s): {exc}\n")
            else:
                refused = [a for a in [*answers[0], *answers[1]] if a.get("status") not in ("ACCEPT", "EXISTS")]
                if refused:
                    sys.stderr.write(
                        f"orchestrator: the server refused {len(refused)} task run record(s), e.g. {refused[0]}\n"
                    )
        # A batch of log lines keeps its key when it is sent again: the server stores a batch once, so lines whose
        # answer was lost (a server killed after its commit) are not written twice.
        if logs:
            resent.append({"log_batch": {"key": uuid.uuid4().hex, "entries": logs}})
        for index, item in enumerate(resent):
            if not self._ship_logs(item["log_batch"]):
                return resent[index:]
        return []

    def _ship_logs(self, log_batch: dict[str, Any]) -> bool:
        """Send one batch of log lines under its key; False when it is worth sending again later."""
        entries = log_batch["entries"]
        try:
            self.client.create_logs(entries, batch_key=log_batch["key"])
        except Exception as exc:  # logs must never break a run
            if _worth_retrying(exc):
                return False
            sys.stderr.write(f"orchestrator: could not ship {len(entries)} log line(s): {exc}\n")
        return True


def _flush_taken(marker: dict[str, Any], flushes: list[threading.Event]) -> None:
    if "sent" in marker:
        flushes.append(marker["sent"])


def _flushes_done(flushes: list[threading.Event]) -> None:
    for sent in flushes:
        sent.set()
    flushes.clear()


def _weight(item: dict[str, Any]) -> int:
    """How many queued entries an item of a batch stands for (a log batch kept for sending again holds many)."""
    log_batch = item.get("log_batch")
    return len(log_batch["entries"]) if log_batch is not None else 1


def _worth_retrying(exc: Exception) -> bool:
    """A refusal of the request itself (4xx) will not change; anything else (no server, 5xx) may."""
    from orchestrator.client.errors import ClientError

    return not (isinstance(exc, ClientError) and exc.is_refusal)


_shippers: dict[tuple[int, int], RunRecordShipper] = {}
_shippers_lock = threading.Lock()


def shipper_for(client: Any) -> RunRecordShipper:
    # By process too: a process forked from one that shipped (a worker's launcher, a Celery pool process)
    # inherits the dictionary but not the shipper's thread.
    key = (os.getpid(), id(client))
    shipper = _shippers.get(key)
    if shipper is None:
        with _shippers_lock:
            shipper = _shippers.get(key)
            if shipper is None:
                shipper = _shippers[key] = RunRecordShipper(client)
    return shipper


class RunLogHandler(logging.Handler):
    """Sends records that carry a run id to that run's log (through the shipper of the run's client)."""

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = getattr(record, "flow_run_id", None)
        if flow_run_id is None:
            return
        client = getattr(record, "client", None)
        if client is None:
            return
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        shipper_for(client).put(
            {
                "flow_run": flow_run_id,
                "task_run": getattr(record, "task_run_id", None),
                "name": record.name,
                "level": record.levelno,
                "message": message,
                "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            }
        )


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        run_name = getattr(record, "run_name", None)
        kind = getattr(record, "run_kind", None)
        prefix = f"{kind} {run_name!r} - " if run_name else ""
        text = f"{when} | {record.levelname:<7} | {prefix}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to sys.stderr as it is when a line is logged, not as it was when the logger was built: a program (or a
    test runner) that replaces or closes sys.stderr later still gets the lines, and never a closed file's error."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _build_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    if not logger.handlers:
        from orchestrator import config

        logger.setLevel((config.get("ORCHESTRATOR_LOGGING_LEVEL") or "INFO").upper())
        console = ConsoleHandler()
        console.setFormatter(ConsoleFormatter())
        api = RunLogHandler()
        api.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
        logger.addHandler(api)
    return logger


class RunLoggerAdapter(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def flow_run_logger(flow_run_context_value: Any) -> RunLoggerAdapter:
    return RunLoggerAdapter(
        _build_logger("orchestrator.flow_runs"),
        {
            "flow_run_id": flow_run_context_value.flow_run.id,
            "task_run_id": None,
            "run_name": flow_run_context_value.flow_run.name,
            "run_kind": "Flow run",
            "client": flow_run_context_value.client,
        },
    )


def task_run_logger(task_context: Any, flow_context: Any) -> RunLoggerAdapter:
    return RunLoggerAdapter(
        _build_logger("orchestrator.task_runs"),
        {
            "flow_run_id": flow_context.flow_run.id,
            "task_run_id": task_context.task_run.id,
            "run_name": task_context.task_run.name,
            "run_kind": "Task run",
            "client": flow_context.client,
        },
    )


def get_run_logger() -> RunLoggerAdapter:
    """The logger of the current task run or flow run; its lines are stored with the run."""
    flow_context = flow_run_context.get()
    task_context = task_run_context.get()
    if flow_context is None:
        raise MissingContextError("get_run_logger() was called outside a flow run or task run")
    if task_context is not None:
        return task_run_logger(task_context, flow_context)
    return flow_run_logger(flow_context)


# log_prints: while at least one run with log_prints=True executes in this process, builtins.print is
# `_run_aware_print`; it sends prints made inside such runs to the run's log and every other print to the print that
# was installed before (kept in `_print_before`). The last such run to end puts that print back, as Prefect does.
_print_patch_lock = threading.Lock()
_print_before: Any = builtins.print
_print_capturing_runs = 0


def _run_aware_print(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    context = get_run_context()
    if context is None or not context.log_prints or file not in (None, sys.stdout):
        _print_before(*args, sep=sep, end=end, file=file, flush=flush)
        return
    get_run_logger().info((sep if sep is not None else " ").join(str(arg) for arg in args))


@contextlib.contextmanager
def prints_logged(enabled: bool) -> Iterator[None]:
    """While the block runs (a flow or task run with log_prints=True), print() inside runs that log prints goes to
    the run logger; afterwards print is what it was before (unless someone replaced it meanwhile)."""
    global _print_before, _print_capturing_runs
    if not enabled:
        yield
        return
    with _print_patch_lock:
        if _print_capturing_runs == 0 and builtins.print is not _run_aware_print:
            _print_before = builtins.print
            builtins.print = _run_aware_print
        _print_capturing_runs += 1
    try:
        yield
    finally:
        with _print_patch_lock:
            _print_capturing_runs -= 1
            if _print_capturing_runs == 0 and builtins.print is _run_aware_print:
                builtins.print = _print_before
