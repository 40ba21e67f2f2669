"""`orchestrator flow-run ls|inspect|logs|cancel`: list flow runs, show one run with its state history, print its
logs, cancel it.

Rows are the API's JSON shapes (a run as `GET /api/flow_runs/{id}/` returns it, states as `.../states/`), read
through the client (orchestrator/client/): from the server when ORCHESTRATOR_API_URL is set, else in-process.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from orchestrator.client import NotFound, OrchestratorClient, get_client
from orchestrator.states import NAMED_STATES, TERMINAL_TYPES, StateType

DEFAULT_LIMIT = 20
FOLLOW_POLL_SECONDS = 0.5
TERMINAL_NAMES = {state_type.value for state_type in TERMINAL_TYPES}


def read_run(client: OrchestratorClient, run_id: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run (as `GET /api/flow_runs/{id}/` returns it) and its state history; CommandError when there is none."""
    try:
        return client.read_flow_run_json(str(run_id)), client.read_flow_run_states(str(run_id))
    except NotFound:
        raise CommandError(f"no flow run with id {run_id}") from None


def parse_states(values: list[str]) -> tuple[list[str], list[str]]:
    """Split --state values into state types (FAILED: every failed run) and state names (Late, TimedOut)."""
    types_by_key = {state_type.value.lower(): state_type.value for state_type in StateType}
    names_by_key = {name.lower(): name for name in NAMED_STATES}
    state_types, state_names = [], []
    for value in values:
        key = value.strip().lower()
        if key in types_by_key:
            state_types.append(types_by_key[key])
        elif key in names_by_key:
            state_names.append(names_by_key[key])
        else:
            known = ", ".join([*types_by_key.values(), *(n for n in NAMED_STATES if n.lower() not in types_by_key)])
            raise CommandError(f"unknown state {value!r}; use one of {known}")
    return state_types, state_names


def positive_limit(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        raise CommandError(f"--limit {value!r} is not a whole number") from None
    if limit < 1:
        raise CommandError(f"--limit must be at least 1, not {limit}")
    return limit


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def format_time(value: str | None, *, precise: bool = False) -> str:
    moment = parse_time(value)
    if moment is None:
        return "-"
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f" if precise else "%Y-%m-%d %H:%M:%S")
    return text[:-3] if precise else text


def run_duration(run: dict[str, Any], *, now: datetime) -> float | None:
    """Seconds spent running, counting the current attempt of a run that is still running."""
    total = float(run.get("total_run_time") or 0.0)
    state = run.get("state") or {}
    started = parse_time(state.get("timestamp"))
    if run.get("state_type") == StateType.RUNNING and started is not None:
        total += max(0.0, (now - started).total_seconds())
    if not total and not run.get("start_time"):
        return None
    return total


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_state(run: dict[str, Any]) -> str:
    name, state_type = run.get("state_name"), run.get("state_type")
    if not state_type:
        return "-"
    return name if name and name.upper() == state_type else f"{name} ({state_type})"


class Command(OrchestratorCommand):
    help = "List flow runs and inspect one."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{ls,inspect,logs,cancel}"
        )
        ls = actions.add_parser(
            "ls", help="list recent flow runs, newest first (scheduled runs still to come: --upcoming)"
        )
        ls.add_argument(
            "--state",
            action="append",
            default=[],
            metavar="S",
            help="a state type (failed: Failed and TimedOut) or name (Late); repeat for several",
        )
        ls.add_argument("--flow", metavar="F", help="only runs of the flow F (its name, or its function's name)")
        ls.add_argument(
            "--upcoming", action="store_true", help="the scheduled runs still to come, soonest first, instead"
        )
        ls.add_argument("--limit", default=str(DEFAULT_LIMIT), metavar="N", help=f"at most N runs ({DEFAULT_LIMIT})")
        inspect = actions.add_parser("inspect", help="show a flow run and its state history")
        inspect.add_argument("id", metavar="ID", help="the flow run's id")
        logs = actions.add_parser("logs", help="print a flow run's logs (and its tasks')")
        logs.add_argument("id", metavar="ID", help="the flow run's id")
        logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the run ends")
        cancel = actions.add_parser("cancel", help="cancel a flow run (its worker stops its process)")
        cancel.add_argument("id", metavar="ID", help="the flow run's id")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "ls":
            state_types, state_names = parse_states(options["state"])
            upcoming = bool(options["upcoming"])
            rows = get_client().read_flow_runs(
                state_types=state_types,
                state_names=state_names,
                flow_name=options["flow"],
                upcoming=upcoming,
                ordering="expected_start_time" if upcoming else "-created",
                limit=positive_limit(options["limit"]),
            )
            self.render_list(rows, upcoming=upcoming)
            return
        try:
            run_id = uuid.UUID(options["id"].strip())
        except ValueError:
            raise CommandError(f"{options['id']!r} is not a flow run id (ids are UUIDs)") from None
        client = get_client()
        if action == "cancel":
            self.cancel(client, run_id)
            return
        found = read_run(client, run_id)
        if action == "inspect":
            self.render_detail(*found)
            if found[0].get("state_type") not in TERMINAL_NAMES | {"RUNNING", "CANCELLING"}:
                self.render_waiting(client.read_flow_run_waiting(str(run_id)))
        else:
            self.print_logs(client, run_id, follow=options["follow"])

    def cancel(self, client: OrchestratorClient, run_id: uuid.UUID) -> None:
        """Propose Cancelling and print what the run became: Cancelled at once when it had not started, else
        Cancelling until its worker has stopped its process."""
        try:
            answer = client.propose_flow_run_state_json(str(run_id), {"type": StateType.CANCELLING.value})
        except NotFound:
            raise CommandError(f"no flow run with id {run_id}") from None
        state = answer.get("state") or {}
        label = format_state({"state_name": state.get("name"), "state_type": state.get("type")})
        if state.get("type") == StateType.CANCELLED:
            self.stdout.write(f"Flow run {run_id} cancelled: {label}")
        elif state.get("type") == StateType.CANCELLING:
            self.stdout.write(f"Flow run {run_id} is {label}: its worker stops its process, then it is Cancelled")
        else:
            reason = (answer.get("details") or {}).get("reason") or answer.get("status")
            raise CommandError(f"flow run {run_id} cannot be cancelled: {reason}")

    def print_logs(self, client: OrchestratorClient, run_id: uuid.UUID, *, follow: bool) -> None:
        """Print the run's log lines in time order; with follow, poll for new ones until the run is final."""
        seen: set[str] = set()
        since = None
        flow_run_name = client.read_flow_run_json(str(run_id)).get("name") or str(run_id)
        while True:
            for line in client.read_logs(flow_run_id=str(run_id), since=since):
                if line["id"] in seen:
                    continue
                seen.add(line["id"])
                since = line["timestamp"]
                level = logging.getLevelName(line["level"])
                # Which run wrote it: the task run's name, or the flow run's for the flow's own lines.
                source = line.get("task_run_name") or flow_run_name
                self.stdout.write(
                    f"{format_time(line['timestamp'], precise=True)} | {level:<7} | {source} | {line['message']}"
                )
            if not follow:
                return
            run_state = client.read_flow_run_json(str(run_id)).get("state") or {}
            if run_state.get("type") in TERMINAL_NAMES:
                # One more read: lines shipped just before the final state.
                follow = False
                continue
            self.stdout.flush()
            time.sleep(FOLLOW_POLL_SECONDS)

    def render_list(self, rows: list[dict[str, Any]], *, upcoming: bool = False) -> None:
        if not rows:
            self.stdout.write("no upcoming flow runs" if upcoming else "no flow runs")
            if not upcoming:
                self.stdout.write("(scheduled runs still to come: `orchestrator flow-run ls --upcoming`)")
            return
        now = datetime.now(UTC)
        self.print_table(
            ("id", "name", "flow", "state", "expected start (UTC)", "start (UTC)", "duration"),
            (
                (
                    row["id"],
                    row["name"],
                    row.get("flow_name"),
                    format_state(row),
                    format_time(row.get("expected_start_time")),
                    format_time(row.get("start_time")),
                    format_duration(run_duration(row, now=now)),
                )
                for row in rows
            ),
        )

    def render_detail(self, run: dict[str, Any], states: list[dict[str, Any]]) -> None:
        state = run.get("state") or {}
        fields = [
            ("id", run["id"]),
            ("name", run["name"]),
            ("flow", f"{run.get('flow_name')} ({run.get('flow')})"),
            ("state", format_state(run)),
            ("state message", state.get("message") or "-"),
            ("tags", ", ".join(run.get("tags") or []) or "-"),
            ("parameters", json.dumps(run.get("parameters") or {}, sort_keys=True)),
            ("run count", run.get("run_count", 0)),
            ("expected start (UTC)", format_time(run.get("expected_start_time"))),
            ("start (UTC)", format_time(run.get("start_time"))),
            ("end (UTC)", format_time(run.get("end_time"))),
            ("duration", format_duration(run_duration(run, now=datetime.now(UTC)))),
            ("start lateness", format_duration(run.get("estimated_start_time_delta") or 0.0)),
            ("deployment", run.get("deployment") or "-"),
            ("work pool", run.get("work_pool_name") or "-"),
            ("work queue", run.get("work_queue_name") or "-"),
            ("worker", run.get("worker_name") or "-"),
            ("process", run.get("infrastructure_pid") or "-"),
            ("parent task run", run.get("parent_task_run") or "-"),
            ("created (UTC)", format_time(run.get("created"))),
            ("updated (UTC)", format_time(run.get("updated"))),
        ]
        self.print_table(("field", "value"), fields, title=f"flow run {run['name']}")
        self.stdout.write("")
        self.print_table(
            ("time (UTC)", "type", "name", "message"),
            (
                (format_time(item.get("timestamp"), precise=True), item["type"], item["name"], item.get("message"))
                for item in states
            ),
            title="state history (oldest first)",
        )

    def render_waiting(self, answer: dict[str, Any]) -> None:
        """Why the run has not started (docs/waiting.md), one line per reason, in the order to act on them."""
        if answer.get("status") != "waiting":
            return
        self.stdout.write("")
        reasons = answer.get("reasons") or []
        if not reasons:
            self.stdout.write("waiting: nothing holds it; a worker takes it on its next poll")
            return
        self.stdout.write("why it is waiting:")
        for reason in reasons:
            self.stdout.write(f"  - [{reason['code']}] {reason['message']}")
